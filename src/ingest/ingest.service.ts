import { touchLastSeen } from '../devices/device.repository.js';
import { retryingConflicts } from './conflict-retry.js';
import { AppError, badRequest } from '../http/app-error.js';
import type { FilePart } from './multipart-parts.js';
import type { TimestampRange } from './point-line.js';
import { PointScanner, type PointCallback } from './point-scanner.js';
import { countSeriesOfDevice, createSeries, findSeriesId } from './points.repository.js';
import { MonthSet } from './partition-months.js';
import type { IngestBackend, SeriesWriter, UploadTransaction } from './upload-transaction.js';

export interface SeriesCounts {
  stored: number;
  duplicates: number;
}

export interface IngestSummary {
  series: Record<string, SeriesCounts>;
  stored: number;
  duplicates: number;
}

export interface IngestOptions {
  maxLineBytes: number;
  timestampRange: TimestampRange;
  /** Series one device may have in all; a part that would create one more refuses the upload. */
  maxSeriesPerDevice: number;
}

const SERIES_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}$/;

/**
 * One series of a batch, whatever the channel: a multipart file part (parsed
 * as it streams in) or the points of JSON messages. `feed` hands every point
 * to `add` in order and awaits `flush` between chunks of input (backpressure);
 * it resolves to the number of points it gave, or throws to refuse the batch.
 */
export interface SeriesInput {
  name: string;
  feed(add: PointCallback, flush: () => Promise<void>): Promise<number>;
  /** Called once the input is done with, read whole or not. */
  release?(): void;
}

/**
 * Points of a batch's first series held in memory while the batch may still
 * be stored by one statement (`IngestBackend.storeSingleSeries`): about 32 KB.
 */
const SINGLE_STATEMENT_POINTS = 2000;

/**
 * THE write path of fleetgate: every channel (multipart upload, JSON
 * messages, WebSocket) stores its points through this function. One batch is
 * one transaction: each series is written while its input is still being
 * read, any refusal rolls the whole batch back, so a batch stores all of its
 * new points or none. The transaction opens once there is something to write,
 * so a client that never sends a series holds no database connection. The
 * common batch, one small series the device already has, is held until the
 * input ends and then stored by one statement, its own transaction (see
 * single-statement.ts). `empty` is the refusal for a batch without any series.
 */
export async function ingestBatch(
  backend: IngestBackend,
  deviceId: number,
  inputs: AsyncIterable<SeriesInput> | Iterable<SeriesInput>,
  options: Pick<IngestOptions, 'maxSeriesPerDevice'>,
  empty: () => AppError = () => badRequest('empty_upload', 'the upload contains no file parts'),
): Promise<IngestSummary> {
  // Series names come from the client: a Map, so that "__proto__" or
  // "constructor" are names like any other and cannot touch a prototype.
  const perSeries = new Map<string, SeriesCounts>();
  let stored = 0;
  let duplicates = 0;
  const count = (name: string, counts: SeriesCounts) => {
    const total = perSeries.get(name) ?? { stored: 0, duplicates: 0 };
    perSeries.set(name, total);
    total.stored += counts.stored;
    total.duplicates += counts.duplicates;
    stored += counts.stored;
    duplicates += counts.duplicates;
  };
  // fromEntries defines own properties; it never invokes the __proto__ setter.
  const summary = () => ({ series: Object.fromEntries(perSeries), stored, duplicates });
  let trx: UploadTransaction | undefined;
  // Every transaction of a batch takes the device's row lock before it writes
  // anything (see UploadTransaction.lockDevice): concurrent batches of one
  // device then write one after the other, and two of them never hold point
  // rows the other one needs (a deadlock, which a streamed batch could not
  // survive: its input cannot be read twice).
  const open = async () => {
    if (trx) return trx;
    const t = await backend.begin(deviceId);
    trx = t;
    await t.lockDevice();
    return t;
  };
  const writerOf = async (name: string) => {
    const t = await open();
    return t.seriesWriter(await seriesOf(t, deviceId, name, options.maxSeriesPerDevice));
  };
  const iterator = iteratorOf(inputs);
  let exhausted = false;
  const next = async () => {
    const result = await iterator.next();
    exhausted = result.done === true;
    return result;
  };
  try {
    let input = await next();
    if (input.done) throw empty();
    const first = input.value;
    assertSeriesName(first.name);
    const firstResult = await feedFirstSeries(first, () => writerOf(first.name));
    input = await next();
    if (firstResult instanceof HeldPoints && input.done) {
      // The whole batch is this one series, in memory: a try the database
      // aborted for a deadlock stored nothing, and is made again.
      const held = firstResult;
      const months = held.months.take();
      const n = await retryingConflicts(async () => {
        try {
          const single = backend.storeSingleSeries
            ? await backend.storeSingleSeries(
                deviceId,
                first.name,
                held.epochMs,
                held.values,
                months,
              )
            : null;
          if (single !== null) return single;
          const writer = await writerOf(first.name);
          held.replay(writer);
          const stored = await writer.finish();
          const t = await open();
          await touchLastSeen(t.db, deviceId);
          await t.commit();
          return stored;
        } catch (err) {
          await trx?.rollback().catch(() => undefined);
          trx = undefined;
          throw err;
        }
      });
      count(first.name, { stored: n, duplicates: held.size - n });
      return summary();
    }
    if (firstResult instanceof HeldPoints) {
      const held = firstResult;
      const writer = await writerOf(first.name);
      held.replay(writer);
      const n = await writer.finish();
      count(first.name, { stored: n, duplicates: held.size - n });
    } else {
      count(first.name, firstResult);
    }
    while (!input.done) {
      assertSeriesName(input.value.name);
      const t = await open();
      const seriesId = await seriesOf(t, deviceId, input.value.name, options.maxSeriesPerDevice);
      count(input.value.name, await ingestSeries(t, seriesId, input.value));
      input = await next();
    }
    const t = await open();
    await touchLastSeen(t.db, deviceId);
    await t.commit();
    return summary();
  } catch (err) {
    await trx?.rollback().catch(() => undefined);
    // As `for await` would on a throw: lets the input's generator clean up.
    if (!exhausted) await Promise.resolve(iterator.return?.()).catch(() => undefined);
    throw err;
  }
}

function iteratorOf<T>(inputs: AsyncIterable<T> | Iterable<T>): AsyncIterator<T> | Iterator<T> {
  return Symbol.asyncIterator in inputs
    ? inputs[Symbol.asyncIterator]()
    : (inputs as Iterable<T>)[Symbol.iterator]();
}

/** The points of a small series, in arrival order, before anything is written. */
class HeldPoints {
  readonly epochMs: number[] = [];
  readonly values: number[] = [];
  readonly months = new MonthSet();

  get size(): number {
    return this.epochMs.length;
  }

  add(epochMs: number, value: number): void {
    this.epochMs.push(epochMs);
    this.values.push(value);
    this.months.add(epochMs);
  }

  replay(writer: SeriesWriter): void {
    for (let i = 0; i < this.epochMs.length; i++) writer.add(this.epochMs[i]!, this.values[i]!);
  }
}

/**
 * Reads the first series of a batch: held while it stays within
 * SINGLE_STATEMENT_POINTS, else written from then on through `startWriting`
 * as it streams in (the held points first), like every later series.
 */
async function feedFirstSeries(
  input: SeriesInput,
  startWriting: () => Promise<SeriesWriter>,
): Promise<HeldPoints | SeriesCounts> {
  const held = new HeldPoints();
  const state: { writer: SeriesWriter | undefined } = { writer: undefined };
  let points: number;
  try {
    points = await input.feed(
      (epochMs, value) =>
        state.writer ? state.writer.add(epochMs, value) : held.add(epochMs, value),
      async () => {
        if (!state.writer) {
          if (held.size <= SINGLE_STATEMENT_POINTS) return;
          state.writer = await startWriting();
          held.replay(state.writer);
        }
        await state.writer.flushIfFull();
      },
    );
  } catch (err) {
    await state.writer?.abort();
    throw err;
  } finally {
    input.release?.();
  }
  if (!state.writer) return held;
  const stored = await state.writer.finish();
  return { stored, duplicates: points - stored };
}

/** A multipart upload: one series per file part, its lines parsed as they stream in. */
export function ingestUpload(
  backend: IngestBackend,
  deviceId: number,
  parts: AsyncIterable<FilePart>,
  options: IngestOptions,
): Promise<IngestSummary> {
  return ingestBatch(backend, deviceId, partInputs(parts, options), options);
}

async function* partInputs(
  parts: AsyncIterable<FilePart>,
  options: IngestOptions,
): AsyncGenerator<SeriesInput> {
  for await (const part of parts) yield partInput(part, options);
}

function partInput(part: FilePart, options: IngestOptions): SeriesInput {
  return {
    name: part.name,
    async feed(add, flush) {
      const scanner = new PointScanner(part.name, options, add);
      for await (const chunk of part.stream) {
        scanner.push(chunk as Buffer);
        await flush();
      }
      scanner.end();
      if (scanner.points === 0) {
        throw badRequest('empty_series', `part "${part.name}" contains no data lines`, {
          part: part.name,
        });
      }
      return scanner.points;
    },
    release: () => part.stream.resume(),
  };
}

/**
 * The id of the device's series `name`, created if new and the device has
 * fewer than `max` series. Looked up and counted under the device's row lock
 * (taken when the transaction opened), so concurrent uploads of one device
 * cannot together go over the cap nor create one name twice.
 */
async function seriesOf(
  trx: UploadTransaction,
  deviceId: number,
  name: string,
  max: number,
): Promise<number> {
  await trx.lockDevice();
  const existing = await findSeriesId(trx.db, deviceId, name);
  if (existing !== undefined) return existing;
  const count = await countSeriesOfDevice(trx.db, deviceId);
  if (count >= max) {
    throw new AppError(
      422,
      'too_many_series',
      `part "${name}" would be a new series, but the device already has ${count} series, the most allowed (FLEETGATE_MAX_SERIES_PER_DEVICE=${max}); nothing of this upload was stored`,
      { part: name, limit: max },
    );
  }
  return createSeries(trx.db, deviceId, name);
}

/** 1-128 of A-Z a-z 0-9 _ . : / -, starting with a letter, digit or `_`. */
export function isSeriesName(name: string): boolean {
  return SERIES_NAME.test(name);
}

function assertSeriesName(name: string) {
  if (!SERIES_NAME.test(name)) {
    throw badRequest(
      'invalid_series_name',
      `part "${name.slice(0, 64)}" is not a valid series name (1-128 of A-Z a-z 0-9 _ . : / -)`,
      { part: name.slice(0, 128) },
    );
  }
}

async function ingestSeries(
  trx: UploadTransaction,
  seriesId: number,
  input: SeriesInput,
): Promise<SeriesCounts> {
  const writer = trx.seriesWriter(seriesId);
  let points: number;
  try {
    points = await input.feed(
      (epochMs, value) => writer.add(epochMs, value),
      () => writer.flushIfFull(),
    );
  } catch (err) {
    await writer.abort();
    throw err;
  } finally {
    input.release?.();
  }
  const stored = await writer.finish();
  return { stored, duplicates: points - stored };
}

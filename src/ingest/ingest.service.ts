import { touchLastSeen } from '../devices/device.repository.js';
import { AppError, badRequest } from '../http/app-error.js';
import type { FilePart } from './multipart-parts.js';
import type { TimestampRange } from './point-line.js';
import { PointScanner, type PointCallback } from './point-scanner.js';
import { countSeriesOfDevice, createSeries, findSeriesId } from './points.repository.js';
import type { IngestBackend, UploadTransaction } from './upload-transaction.js';

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
 * THE write path of fleetgate: every channel (multipart upload, JSON
 * messages, WebSocket) stores its points through this function. One batch is
 * one transaction: each series is written while its input is still being
 * read, any refusal rolls the whole batch back, so a batch stores all of its
 * new points or none. The transaction opens at the first series, so a client
 * that never sends one holds no database connection. `empty` is the refusal
 * for a batch without any series.
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
  let trx: UploadTransaction | undefined;
  try {
    for await (const input of inputs) {
      assertSeriesName(input.name);
      trx ??= await backend.begin(deviceId);
      const seriesId = await seriesOf(trx, deviceId, input.name, options.maxSeriesPerDevice);
      const counts = await ingestSeries(trx, seriesId, input);
      const total = perSeries.get(input.name) ?? { stored: 0, duplicates: 0 };
      perSeries.set(input.name, total);
      total.stored += counts.stored;
      total.duplicates += counts.duplicates;
      stored += counts.stored;
      duplicates += counts.duplicates;
    }
    if (!trx) throw empty();
    await touchLastSeen(trx.db, deviceId);
    await trx.commit();
    // fromEntries defines own properties; it never invokes the __proto__ setter.
    return { series: Object.fromEntries(perSeries), stored, duplicates };
  } catch (err) {
    await trx?.rollback().catch(() => undefined);
    throw err;
  }
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
 * fewer than `max` series. The count is taken under the device's row lock, so
 * concurrent uploads of one device cannot together go over the cap.
 */
async function seriesOf(
  trx: UploadTransaction,
  deviceId: number,
  name: string,
  max: number,
): Promise<number> {
  const existing = await findSeriesId(trx.db, deviceId, name);
  if (existing !== undefined) return existing;
  await trx.lockDevice();
  // A concurrent upload may have created it while this one waited for the lock.
  const raced = await findSeriesId(trx.db, deviceId, name);
  if (raced !== undefined) return raced;
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

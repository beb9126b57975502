import { touchLastSeen } from '../devices/device.repository.js';
import { AppError, badRequest } from '../http/app-error.js';
import type { FilePart } from './multipart-parts.js';
import type { TimestampRange } from './point-line.js';
import { PointScanner } from './point-scanner.js';
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
 * Stores every point of an upload in one transaction, streaming: each part is
 * parsed chunk by chunk and written while the rest is still arriving. Any bad
 * line rolls the whole upload back, so a request either stores all of its new
 * points or none. The transaction opens at the first part, so a client that
 * never sends one holds no database connection.
 */
export async function ingestUpload(
  backend: IngestBackend,
  deviceId: number,
  parts: AsyncIterable<FilePart>,
  options: IngestOptions,
): Promise<IngestSummary> {
  // Series names come from the client: a Map, so that "__proto__" or
  // "constructor" are names like any other and cannot touch a prototype.
  const perSeries = new Map<string, SeriesCounts>();
  let stored = 0;
  let duplicates = 0;
  let trx: UploadTransaction | undefined;
  try {
    for await (const part of parts) {
      assertSeriesName(part.name);
      trx ??= await backend.begin(deviceId);
      const seriesId = await seriesOf(trx, deviceId, part.name, options.maxSeriesPerDevice);
      const counts = await ingestPart(trx, seriesId, part, options);
      const total = perSeries.get(part.name) ?? { stored: 0, duplicates: 0 };
      perSeries.set(part.name, total);
      total.stored += counts.stored;
      total.duplicates += counts.duplicates;
      stored += counts.stored;
      duplicates += counts.duplicates;
    }
    if (!trx) throw badRequest('empty_upload', 'the upload contains no file parts');
    await touchLastSeen(trx.db, deviceId);
    await trx.commit();
    // fromEntries defines own properties; it never invokes the __proto__ setter.
    return { series: Object.fromEntries(perSeries), stored, duplicates };
  } catch (err) {
    await trx?.rollback().catch(() => undefined);
    throw err;
  }
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

function assertSeriesName(name: string) {
  if (!SERIES_NAME.test(name)) {
    throw badRequest(
      'invalid_series_name',
      `part "${name.slice(0, 64)}" is not a valid series name (1-128 of A-Z a-z 0-9 _ . : / -)`,
      { part: name.slice(0, 128) },
    );
  }
}

async function ingestPart(
  trx: UploadTransaction,
  seriesId: number,
  part: FilePart,
  options: IngestOptions,
): Promise<SeriesCounts> {
  const writer = trx.seriesWriter(seriesId);
  const scanner = new PointScanner(part.name, options, (epochMs, value) =>
    writer.add(epochMs, value),
  );
  try {
    for await (const chunk of part.stream) {
      scanner.push(chunk as Buffer);
      await writer.flushIfFull();
    }
    scanner.end();
  } catch (err) {
    await writer.abort();
    throw err;
  } finally {
    part.stream.resume();
  }
  if (scanner.points === 0) {
    throw badRequest('empty_series', `part "${part.name}" contains no data lines`, {
      part: part.name,
    });
  }
  const stored = await writer.finish();
  return { stored, duplicates: scanner.points - stored };
}

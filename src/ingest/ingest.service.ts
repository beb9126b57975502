import { touchLastSeen } from '../devices/device.repository.js';
import { badRequest } from '../http/app-error.js';
import type { FilePart } from './multipart-parts.js';
import type { TimestampRange } from './point-line.js';
import { PointScanner } from './point-scanner.js';
import { findOrCreateSeries } from './points.repository.js';
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
      trx ??= await backend.begin();
      const seriesId = await findOrCreateSeries(trx.db, deviceId, part.name);
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

import type { Readable } from 'node:stream';
import { parse, CsvError } from 'csv-parse';
import type { ControlledTransaction, Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { touchLastSeen } from '../devices/device.repository.js';
import { AppError, badRequest, tooLarge } from '../http/app-error.js';
import type { FilePart } from './multipart-parts.js';
import { parsePointRecord, type TimestampRange } from './point-line.js';
import { findOrCreateSeries, insertPointBatch } from './points.repository.js';

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

/** Points per INSERT: large enough to amortise a round trip, small enough to stream. */
const BATCH_SIZE = 5000;
const SERIES_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}$/;

/**
 * Stores every point of an upload in one transaction, streaming: each part is
 * parsed line by line and written in batches while the rest is still arriving.
 * Any bad line rolls the whole upload back, so a request either stores all of
 * its new points or none. The transaction opens at the first part, so a client
 * that never sends one holds no database connection.
 */
export async function ingestUpload(
  db: Kysely<Database>,
  deviceId: number,
  parts: AsyncIterable<FilePart>,
  options: IngestOptions,
): Promise<IngestSummary> {
  const summary: IngestSummary = { series: {}, stored: 0, duplicates: 0 };
  let trx: ControlledTransaction<Database> | undefined;
  try {
    for await (const part of parts) {
      assertSeriesName(part.name);
      trx ??= await db.startTransaction().execute();
      const seriesId = await findOrCreateSeries(trx, deviceId, part.name);
      const counts = await ingestPart(trx, seriesId, part, options);
      const total = (summary.series[part.name] ??= { stored: 0, duplicates: 0 });
      total.stored += counts.stored;
      total.duplicates += counts.duplicates;
      summary.stored += counts.stored;
      summary.duplicates += counts.duplicates;
    }
    if (!trx) throw badRequest('empty_upload', 'the upload contains no file parts');
    await touchLastSeen(trx, deviceId);
    await trx.commit().execute();
    return summary;
  } catch (err) {
    await trx
      ?.rollback()
      .execute()
      .catch(() => undefined);
    throw err;
  }
}

function assertSeriesName(name: string) {
  if (!SERIES_NAME.test(name)) {
    throw badRequest(
      'invalid_series_name',
      `part name "${name.slice(0, 64)}" is not a valid series name (1-128 of A-Z a-z 0-9 _ . : / -)`,
      { part: name.slice(0, 128) },
    );
  }
}

async function ingestPart(
  trx: Kysely<Database>,
  seriesId: number,
  part: FilePart,
  options: IngestOptions,
): Promise<SeriesCounts> {
  const records = csvRecords(part.stream, options.maxLineBytes);
  const counts: SeriesCounts = { stored: 0, duplicates: 0 };
  let epochMs: number[] = [];
  let values: number[] = [];
  const flush = async () => {
    const stored = await insertPointBatch(trx, seriesId, epochMs, values);
    counts.stored += stored;
    counts.duplicates += epochMs.length - stored;
    epochMs = [];
    values = [];
  };
  let lines = 0;
  try {
    for await (const { record, info } of records) {
      const point = parsePointRecord(record, options.timestampRange);
      if (typeof point === 'string') throw lineError(part.name, info.lines, point);
      epochMs.push(point.epochMs);
      values.push(point.value);
      lines++;
      if (epochMs.length >= BATCH_SIZE) await flush();
    }
  } catch (err) {
    throw asPartError(err, part.name, options.maxLineBytes);
  } finally {
    part.stream.resume();
  }
  if (lines === 0) {
    throw badRequest('empty_series', `part "${part.name}" contains no data lines`, {
      part: part.name,
    });
  }
  if (epochMs.length > 0) await flush();
  return counts;
}

interface CsvRecord {
  record: string[];
  info: { lines: number };
}

function csvRecords(stream: Readable, maxLineBytes: number): AsyncIterable<CsvRecord> {
  const parser = parse({
    bom: true,
    trim: true,
    skip_empty_lines: true,
    relax_column_count: true,
    max_record_size: maxLineBytes,
    info: true,
  });
  // pipe() does not forward errors; a failed upload must end the parse too.
  stream.on('error', (err) => parser.destroy(err));
  // ...including a failure that happened before this part was reached.
  if (stream.errored) parser.destroy(stream.errored);
  return stream.pipe(parser);
}

function lineError(part: string, line: number, reason: string) {
  return badRequest('invalid_line', `part "${part}" line ${line}: ${reason}`, {
    part,
    line,
    reason,
  });
}

function asPartError(err: unknown, part: string, maxLineBytes: number): unknown {
  if (err instanceof AppError) return err;
  if (err instanceof CsvError) {
    const line = Number((err as unknown as { lines?: number }).lines ?? 0);
    if (err.code === 'CSV_MAX_RECORD_SIZE') {
      return tooLarge(
        'line_too_long',
        `part "${part}" line ${line}: longer than ${maxLineBytes} bytes`,
        {
          part,
          line,
          limit: maxLineBytes,
        },
      );
    }
    return lineError(part, line, err.message);
  }
  return err;
}

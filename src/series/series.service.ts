import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { requireDeviceByFingerprint } from '../devices/device.service.js';
import { badRequest, notFound } from '../http/app-error.js';
import { findSeriesId } from '../ingest/points.repository.js';
import {
  listSeriesStats,
  readBuckets,
  readPoints,
  type BucketRow,
  type PointRow,
  type TimeRange,
} from './series.repository.js';

export const MAX_PAGE = 100_000;
/** Rows per database round trip when a CSV export streams a whole range. */
const STREAM_PAGE = 10_000;

export interface SeriesSummary {
  name: string;
  points: number;
  first: string | null;
  last: string | null;
  firstEpochMs: number | null;
  lastEpochMs: number | null;
}

export interface SeriesListPage {
  series: SeriesSummary[];
  /** Pass back as `cursor` for the next page; null after the last one. */
  nextCursor: string | null;
}

export const MAX_SERIES_PAGE = 1000;

/** One page of a device's series in name order, with point count, first and last timestamp. */
export async function listSeries(
  db: Kysely<Database>,
  fingerprint: string,
  options: { limit: number; cursor: string | null },
): Promise<SeriesListPage> {
  if (!Number.isInteger(options.limit) || options.limit < 1 || options.limit > MAX_SERIES_PAGE) {
    throw badRequest('invalid_limit', `limit must be an integer from 1 to ${MAX_SERIES_PAGE}`);
  }
  const after = options.cursor === null ? null : parseSeriesCursor(options.cursor);
  const device = await requireDeviceByFingerprint(db, fingerprint);
  const rows = await listSeriesStats(db, device.deviceId, after, options.limit + 1);
  const more = rows.length > options.limit;
  const kept = more ? rows.slice(0, options.limit) : rows;
  return {
    series: kept.map((r) => ({
      name: r.name,
      points: Number(r.points),
      first: isoOf(r.firstEpochMs),
      last: isoOf(r.lastEpochMs),
      firstEpochMs: r.firstEpochMs === null ? null : Number(r.firstEpochMs),
      lastEpochMs: r.lastEpochMs === null ? null : Number(r.lastEpochMs),
    })),
    nextCursor: more ? seriesCursorOf(kept[kept.length - 1]!.name) : null,
  };
}

/** Every series of a device, a page at a time (the CLI's plain `series list`). */
export async function* allSeries(
  db: Kysely<Database>,
  fingerprint: string,
): AsyncGenerator<SeriesSummary> {
  let cursor: string | null = null;
  do {
    const page: SeriesListPage = await listSeries(db, fingerprint, {
      limit: MAX_SERIES_PAGE,
      cursor,
    });
    yield* page.series;
    cursor = page.nextCursor;
  } while (cursor !== null);
}

/** Series cursors hold the last name returned; opaque to clients like the points cursors. */
function seriesCursorOf(name: string): string {
  return Buffer.from(`series:${name}`).toString('base64url');
}

function parseSeriesCursor(cursor: string): string {
  const match = /^series:([A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127})$/.exec(
    Buffer.from(cursor, 'base64url').toString(),
  );
  if (!match) throw badRequest('invalid_cursor', 'cursor is not one this list returned');
  return match[1]!;
}

export interface SeriesQuery {
  fromMs: number | null;
  toMs: number | null;
  /** Bucket width; absent: raw points. */
  bucketMs: number | null;
  limit: number;
  cursor: string | null;
}

export interface Point {
  t: number;
  v: number;
}

export interface Bucket {
  t: number;
  count: number;
  avg: number;
  min: number;
  max: number;
}

export interface SeriesPage<T> {
  rows: T[];
  /** Pass back as `cursor` for the rest of the range; null when it is all there. */
  nextCursor: string | null;
}

export interface SeriesTarget {
  seriesId: number;
  name: string;
}

export async function requireSeries(
  db: Kysely<Database>,
  fingerprint: string,
  name: string,
): Promise<SeriesTarget> {
  const device = await requireDeviceByFingerprint(db, fingerprint);
  const seriesId = await findSeriesId(db, device.deviceId, name);
  if (seriesId === undefined)
    throw notFound('series_not_found', `the device has no series ${name}`);
  return { seriesId, name };
}

/**
 * The JSON body of one page, as the admin API answers it and `fleetgate query
 * --json` prints it: raw points under `points`, aggregates under `buckets`.
 */
export function seriesPageBody(
  target: SeriesTarget,
  bucketMs: number | null,
  page: SeriesPage<Point | Bucket>,
) {
  return {
    series: target.name,
    bucketMs,
    [bucketMs === null ? 'points' : 'buckets']: page.rows,
    nextCursor: page.nextCursor,
  };
}

/** One page of points or buckets in time order, with a cursor for the next. */
export async function querySeries(
  db: Kysely<Database>,
  target: SeriesTarget,
  query: SeriesQuery,
): Promise<SeriesPage<Point | Bucket>> {
  assertQuery(query);
  const range = rangeOf(query);
  if (query.bucketMs !== null) {
    const rows = await readBuckets(db, target.seriesId, query.bucketMs, range, query.limit + 1);
    return page(rows.map(bucketOf), query.limit, (b) => cursorOf(query, b.t));
  }
  const rows = await readPoints(db, target.seriesId, range, query.limit + 1);
  return page(rows.map(pointOf), query.limit, (p) => cursorOf(query, p.t));
}

/**
 * A whole range as CSV, read in keyset pages, so an export of any size runs
 * in constant memory. Points are `epoch_ms,value` lines (the upload format, so
 * an export can be uploaded again); buckets have a header line.
 */
export async function* seriesCsv(
  db: Kysely<Database>,
  target: SeriesTarget,
  query: Omit<SeriesQuery, 'limit'>,
): AsyncGenerator<string> {
  let cursor = query.cursor;
  let first = true;
  for (;;) {
    // The first page is read before anything is written: a bad query (a cursor of
    // another shape) is still a 400, not an answer cut off after its first line.
    const { rows, nextCursor } = await querySeries(db, target, {
      ...query,
      cursor,
      limit: STREAM_PAGE,
    });
    if (first && query.bucketMs !== null) yield 'bucket_start_ms,count,avg,min,max\n';
    first = false;
    if (rows.length > 0) yield toCsv(rows);
    if (nextCursor === null) return;
    cursor = nextCursor;
  }
}

export function toCsv(rows: Array<Point | Bucket>): string {
  return rows
    .map((r) => ('v' in r ? `${r.t},${r.v}\n` : `${r.t},${r.count},${r.avg},${r.min},${r.max}\n`))
    .join('');
}

function assertQuery(query: SeriesQuery): void {
  if (!Number.isInteger(query.limit) || query.limit < 1 || query.limit > MAX_PAGE) {
    throw badRequest('invalid_limit', `limit must be an integer from 1 to ${MAX_PAGE}`);
  }
  if (query.fromMs !== null && query.toMs !== null && query.fromMs >= query.toMs) {
    throw badRequest('invalid_range', '"from" must be before "to"');
  }
}

function rangeOf(query: SeriesQuery): TimeRange {
  return { fromMs: query.fromMs, toMs: query.toMs, afterMs: parseCursor(query) };
}

/**
 * Cursors are opaque to clients; inside is the last timestamp returned and
 * the bucket width, so a cursor cannot be replayed against another shape.
 */
function cursorOf(query: SeriesQuery, lastMs: number): string {
  return Buffer.from(`${query.bucketMs ?? 'raw'}:${lastMs}`).toString('base64url');
}

function parseCursor(query: SeriesQuery): number | null {
  if (query.cursor === null) return null;
  const match = /^(raw|\d+):(\d{1,16})$/.exec(Buffer.from(query.cursor, 'base64url').toString());
  // 8.64e15 ms is the last instant a Date (and so a cursor we issued) can hold.
  if (!match || match[1] !== String(query.bucketMs ?? 'raw') || Number(match[2]) > 8.64e15) {
    throw badRequest('invalid_cursor', 'cursor is not one this query returned');
  }
  return Number(match[2]);
}

function page<T>(rows: T[], limit: number, cursor: (last: T) => string): SeriesPage<T> {
  if (rows.length <= limit) return { rows, nextCursor: null };
  const kept = rows.slice(0, limit);
  return { rows: kept, nextCursor: cursor(kept[kept.length - 1]!) };
}

const pointOf = (r: PointRow): Point => ({ t: Number(r.epochMs), v: r.value });
const bucketOf = (r: BucketRow): Bucket => ({
  t: Number(r.startMs),
  count: Number(r.count),
  avg: r.avg,
  min: r.min,
  max: r.max,
});

function isoOf(epochMs: string | null): string | null {
  return epochMs === null ? null : new Date(Number(epochMs)).toISOString();
}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/** A point in time given as epoch milliseconds or an ISO 8601 date/time. */
export function parseTime(text: string, name: string): number {
  const trimmed = text.trim();
  // A time of day without a zone is read as UTC, never as the server's local time.
  const iso =
    trimmed.includes('T') && !/(Z|[+-]\d{2}:?\d{2})$/.test(trimmed) ? `${trimmed}Z` : trimmed;
  const ms = /^\d{1,16}$/.test(trimmed)
    ? Number(trimmed)
    : ISO_DATE.test(trimmed)
      ? Date.parse(iso)
      : Number.NaN;
  if (!Number.isSafeInteger(ms)) {
    throw badRequest(
      'invalid_time',
      `"${name}" must be epoch milliseconds or an ISO 8601 time such as 2026-01-31T12:00:00Z`,
    );
  }
  return ms;
}

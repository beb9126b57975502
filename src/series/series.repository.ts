import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Database } from '../db/schema.js';

/**
 * Reads of stored points. Written against the columns (series_id, ts, value)
 * and the key (series_id, ts) only, so they work on the plain points table and
 * on a time-partitioned one: every range is a constant bound on ts, which
 * lets Postgres prune partitions and walk the primary key in order.
 */
const fromEpochMs = (ms: number): RawBuilder<Date> =>
  sql<Date>`(timestamptz 'epoch' + ${ms}::bigint * interval '1 millisecond')`;
/** extract() returns numeric since Postgres 14: exact milliseconds, no float rounding. */
const epochMsOf = (column: string) =>
  sql<string>`(extract(epoch from ${sql.ref(column)}) * 1000)::bigint::text`;

export interface SeriesStats {
  name: string;
  points: string;
  firstEpochMs: string | null;
  lastEpochMs: string | null;
}

/**
 * One page of a device's series in name order, after `afterName` (keyset on
 * the (device_id, name) key), with their statistics: one pass over each
 * series' key per month partition (count, min and max together), for the
 * page's series only. Before pages, three correlated subqueries per series
 * over every series of the device took seconds at thousands of series.
 */
export async function listSeriesStats(
  db: Kysely<Database>,
  deviceId: number,
  afterName: string | null,
  limit: number,
): Promise<SeriesStats[]> {
  let query = db
    .selectFrom('series')
    .select(['id', 'name'])
    .where('device_id', '=', deviceId)
    .orderBy('name')
    .limit(limit);
  if (afterName !== null) query = query.where('name', '>', afterName);
  const page = await query.execute();
  if (page.length === 0) return [];
  const stats = await sql<{
    seriesId: number;
    points: string;
    firstEpochMs: string;
    lastEpochMs: string;
  }>`
    select p.series_id as "seriesId", count(*)::text as points,
      (extract(epoch from min(p.ts)) * 1000)::bigint::text as "firstEpochMs",
      (extract(epoch from max(p.ts)) * 1000)::bigint::text as "lastEpochMs"
    from points p
    where p.series_id = any(${page.map((s) => s.id)}::int[])
    group by p.series_id`.execute(db);
  const bySeries = new Map(stats.rows.map((r) => [r.seriesId, r]));
  return page.map((s) => {
    const found = bySeries.get(s.id);
    return {
      name: s.name,
      points: found?.points ?? '0',
      firstEpochMs: found?.firstEpochMs ?? null,
      lastEpochMs: found?.lastEpochMs ?? null,
    };
  });
}

/** [from, to) in epoch ms; null: unbounded. `after` is the keyset cursor. */
export interface TimeRange {
  fromMs: number | null;
  toMs: number | null;
  afterMs: number | null;
}

export interface PointRow {
  epochMs: string;
  value: number;
}

export async function readPoints(
  db: Kysely<Database>,
  seriesId: number,
  range: TimeRange,
  limit: number,
): Promise<PointRow[]> {
  const result = await sql<PointRow>`
    select ${epochMsOf('ts')} as "epochMs", value
    from points
    where series_id = ${seriesId} ${bounds(range.fromMs, range.toMs, range.afterMs)}
    order by ts
    limit ${limit}`.execute(db);
  return result.rows;
}

export interface BucketRow {
  startMs: string;
  count: string;
  avg: number;
  min: number;
  max: number;
}

/**
 * Buckets aligned to the Unix epoch ([start, start + size)), only those with
 * points. `afterMs` is the start of the last bucket already returned.
 */
export async function readBuckets(
  db: Kysely<Database>,
  seriesId: number,
  bucketMs: number,
  range: TimeRange,
  limit: number,
): Promise<BucketRow[]> {
  const lower = range.afterMs === null ? null : range.afterMs + bucketMs - 1;
  const result = await sql<BucketRow>`
    select ${epochMsOf('bucket')} as "startMs", count(*)::text as count,
      avg(value) as avg, min(value) as min, max(value) as max
    from (
      select date_bin(${bucketMs}::bigint * interval '1 millisecond', ts, timestamptz 'epoch') as bucket,
        value
      from points
      where series_id = ${seriesId} ${bounds(range.fromMs, range.toMs, lower)}
    ) b
    group by bucket
    order by bucket
    limit ${limit}`.execute(db);
  return result.rows;
}

function bounds(fromMs: number | null, toMs: number | null, afterMs: number | null) {
  return sql.join(
    [
      sql``,
      ...(fromMs === null ? [] : [sql`ts >= ${fromEpochMs(fromMs)}`]),
      ...(toMs === null ? [] : [sql`ts < ${fromEpochMs(toMs)}`]),
      ...(afterMs === null ? [] : [sql`ts > ${fromEpochMs(afterMs)}`]),
    ],
    sql` and `,
  );
}

import { CompiledQuery, sql, type Kysely } from 'kysely';
import type pg from 'pg';
import { from as copyFrom, type CopyStreamQuery } from 'pg-copy-streams';
import { isUniqueViolation } from '../db/errors.js';
import { onCitus } from '../db/citus-mode.js';
import type { Database } from '../db/schema.js';

/** Creates a series of the device; the caller holds the device lock and knows it is new. */
export async function createSeries(
  db: Kysely<Database>,
  deviceId: number,
  name: string,
): Promise<number> {
  const created = await db
    .insertInto('series')
    .values({ device_id: deviceId, name })
    .returning('id')
    .executeTakeFirstOrThrow();
  return created.id;
}

export async function countSeriesOfDevice(db: Kysely<Database>, deviceId: number): Promise<number> {
  const row = await db
    .selectFrom('series')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('device_id', '=', deviceId)
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

/*
 * On Citus an INSERT ... SELECT from a function or a temp table runs "pull to
 * coordinator" and reports the rows it read, not those it inserted, so there
 * the inserts count what RETURNING gives back.
 */
const returningClause = () => (onCitus() ? ' returning 1' : '');
const insertedCount = (result: { rowCount: number | null; rows: unknown[] }) =>
  onCitus() ? result.rows.length : (result.rowCount ?? 0);

/**
 * Inserts one batch of a series' points; points already stored (a retried
 * upload) or repeated within the batch are skipped, the first one winning.
 * Timestamps travel as integer milliseconds and are converted in SQL with
 * interval arithmetic, which is exact (to_timestamp would go through a double).
 * Returns how many points were new.
 */
export async function insertPointBatch(
  db: Kysely<Database>,
  deviceId: number,
  seriesId: number,
  epochMs: readonly number[],
  values: readonly number[],
): Promise<number> {
  const result = await sql`
    insert into points (device_id, series_id, ts, value)
    select ${deviceId}::int, ${seriesId}::int, timestamptz 'epoch' + u.ms * interval '1 millisecond', u.v
    from unnest(${epochMs}::bigint[], ${values}::float8[]) as u(ms, v)
    on conflict do nothing${sql.raw(returningClause())}`.execute(db);
  return onCitus() ? result.rows.length : Number(result.numAffectedRows ?? 0n);
}

/**
 * A whole batch of one existing series in one statement, so in a transaction
 * of its own (autocommit: durable when it returns, all or nothing): looks the
 * series up by name, inserts the points as `insertPointBatch` does (retries
 * and repeats skipped, the first one winning) and sets the device's
 * last-seen time. The insert reads the update's count, so the update runs
 * first: the device's row is locked before any point is written, as in a
 * transaction of the slow path (ingestBatch locks it when it opens one), so
 * every writer of a device's points takes the row first and two of them
 * never wait for each other in opposite orders. Returns null and writes nothing when the series does not exist yet
 * (its creation needs the device lock and the series cap: the caller takes
 * the transactional path).
 */
export async function storeSeriesOfExistingName(
  db: Kysely<Database> | pg.Pool,
  deviceId: number,
  name: string,
  epochMs: readonly number[],
  values: readonly number[],
  seenAt: Date,
): Promise<number | null> {
  // The arrays as PostgreSQL array literals, built in one join: pg's generic
  // array serializer escapes and converts each element on its own. Finite
  // numbers only reach here (the scanner refuses the rest); String(n) is what
  // pg would send for each of them.
  const parameters = [deviceId, name, arrayLiteral(epochMs), arrayLiteral(values), seenAt];
  // On a pg pool, a named statement: parsed and planned once per connection.
  const rows =
    'executeQuery' in db
      ? (await db.executeQuery(CompiledQuery.raw(STORE_SERIES_OF_EXISTING_NAME, parameters))).rows
      : (
          await db.query({
            name: 'fleetgate_store_series_of_existing_name',
            text: STORE_SERIES_OF_EXISTING_NAME,
            values: parameters,
          })
        ).rows;
  const row = rows[0] as { seriesId: number | null; stored: number } | undefined;
  return row?.seriesId == null ? null : row.stored;
}

function arrayLiteral(numbers: readonly number[]): string {
  return `{${numbers.join(',')}}`;
}

const STORE_SERIES_OF_EXISTING_NAME = `
  with s as (
    select series.id from series where series.device_id = $1 and series.name = $2
  ), touched as (
    update devices set last_seen_at = $5
    where devices.id = $1 and exists (select from s)
    returning 1
  ), inserted as (
    insert into points (device_id, series_id, ts, value)
    select $1::int, (select s.id from s), timestamptz 'epoch' + u.ms * interval '1 millisecond', u.v
    from unnest($3::bigint[], $4::float8[]) as u(ms, v)
    where exists (select from s) and (select count(*) from touched) >= 0
    on conflict do nothing
    returning 1
  )
  select (select s.id from s) as "seriesId", (select count(*)::int from inserted) as stored`;

export interface StoredPoint {
  epochMs: string;
  value: number;
}

/** One page of a series in time order, after the given timestamp (keyset paging). */
export async function readSeriesPage(
  db: Kysely<Database>,
  seriesId: number,
  afterEpochMs: string | null,
  limit: number,
): Promise<StoredPoint[]> {
  const after =
    afterEpochMs === null
      ? sql``
      : sql`and ts > timestamptz 'epoch' + ${afterEpochMs}::bigint * interval '1 millisecond'`;
  const result = await sql<StoredPoint>`
    select (extract(epoch from ts) * 1000)::bigint::text as "epochMs", value
    from points
    where series_id = ${seriesId} ${after}
    order by ts
    limit ${limit}`.execute(db);
  return result.rows;
}

export async function findSeriesId(
  db: Kysely<Database>,
  deviceId: number,
  name: string,
): Promise<number | undefined> {
  const row = await db
    .selectFrom('series')
    .select('id')
    .where('device_id', '=', deviceId)
    .where('name', '=', name)
    .executeTakeFirst();
  return row?.id;
}

/*
 * The COPY path (real Postgres only). Each pooled connection has one
 * session-local staging table; an upload's points are COPYed into it and
 * moved into `points` in one statement that skips duplicates.
 */

export async function createStagingTable(client: pg.ClientBase): Promise<void> {
  await client.query(
    'create temp table if not exists points_staging (ts timestamptz not null, value float8 not null)',
  );
}

export async function truncateStagingTable(client: pg.ClientBase): Promise<void> {
  await client.query('truncate points_staging');
}

/** A writable stream taking binary COPY data (see copy-binary.ts). */
export function copyIntoStagingTable(client: pg.ClientBase): CopyStreamQuery {
  return client.query(copyFrom('copy points_staging (ts, value) from stdin (format binary)'));
}

/**
 * Moves the staged points of one series into `points` when none of them is
 * stored yet and none repeats: a plain INSERT, about twice as fast as one with
 * ON CONFLICT. Inside a savepoint, so that a unique violation (a retried
 * upload, a repeated timestamp) only undoes this statement: the caller then
 * rolls back to the savepoint and uses `insertStagedPoints`. Returns false
 * in that case.
 */
export async function insertStagedPointsIfAllNew(
  client: pg.ClientBase,
  deviceId: number,
  seriesId: number,
): Promise<number | false> {
  await client.query('savepoint staged_points');
  try {
    const result = await client.query(
      `insert into points (device_id, series_id, ts, value) select $1, $2, ts, value from points_staging${returningClause()}`,
      [deviceId, seriesId],
    );
    await client.query('release savepoint staged_points');
    return insertedCount(result);
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
    await client.query('rollback to savepoint staged_points');
    return false;
  }
}

/**
 * Moves the staged points of one series into `points`, skipping those already
 * stored. A staging table written by one COPY is read back by a plain
 * sequential scan in the order COPY wrote it (INSERT ... SELECT never runs in
 * parallel), so of two points with the same timestamp the first one wins.
 * Returns how many were new.
 */
export async function insertStagedPoints(
  client: pg.ClientBase,
  deviceId: number,
  seriesId: number,
): Promise<number> {
  const result = await client.query(
    `insert into points (device_id, series_id, ts, value)
     select $1, $2, ts, value from points_staging
     on conflict do nothing${returningClause()}`,
    [deviceId, seriesId],
  );
  return insertedCount(result);
}

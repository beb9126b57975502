import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

/**
 * Creates the month partition of `points` that holds `monthStartMs` (a UTC
 * month start), unless it exists. Runs the migration's SQL function, which
 * serialises creators and only takes a lock that lets inserts go on.
 */
export async function ensurePointsPartition(
  db: Kysely<Database>,
  monthStartMs: number,
): Promise<boolean> {
  const day = new Date(monthStartMs).toISOString().slice(0, 10);
  const result = await sql<{ created: boolean }>`
    select points_ensure_partition(${day}::date) as created`.execute(db);
  return result.rows[0]?.created ?? false;
}

/** UTC start of every month that has a partition, in epoch milliseconds. */
export async function listPointsPartitionMonths(db: Kysely<Database>): Promise<number[]> {
  const result = await sql<{ year: number; month: number }>`
    select m[1]::int as year, m[2]::int as month
    from pg_inherits i
    join pg_class c on c.oid = i.inhrelid
    cross join lateral regexp_match(c.relname, '^points_(\\d{4})_(\\d{2})$') as m
    where i.inhparent = 'points'::regclass and m is not null`.execute(db);
  return result.rows.map((r) => Date.UTC(r.year, r.month - 1, 1));
}

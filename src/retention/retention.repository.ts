import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

export interface MonthPartition {
  /** `points_2024_01` */
  name: string;
  /** UTC month start, epoch ms. */
  monthStartMs: number;
  /** Rows in it now (exact). */
  rows: number;
  /** Table, index and TOAST bytes. */
  bytes: number;
}

/** The month partitions of `points` with their size, oldest first. */
export async function listMonthPartitions(db: Kysely<Database>): Promise<MonthPartition[]> {
  const result = await sql<{ name: string; year: number; month: number; bytes: string }>`
    select c.relname as name, m[1]::int as year, m[2]::int as month,
           pg_total_relation_size(c.oid)::text as bytes
    from pg_inherits i
    join pg_class c on c.oid = i.inhrelid
    cross join lateral regexp_match(c.relname, '^points_(\\d{4})_(\\d{2})$') as m
    where i.inhparent = 'points'::regclass and m is not null
    order by 2, 3`.execute(db);
  const partitions: MonthPartition[] = [];
  for (const r of result.rows) {
    partitions.push({
      name: r.name,
      monthStartMs: Date.UTC(r.year, r.month - 1, 1),
      rows: await countRows(db, r.name),
      bytes: Number(r.bytes),
    });
  }
  return partitions;
}

/** The name comes from the catalogue and matched ^points_\d{4}_\d{2}$ above. */
async function countRows(db: Kysely<Database>, partition: string): Promise<number> {
  const result = await sql<{
    n: string;
  }>`select count(*)::text as n from ${sql.table(partition)}`.execute(db);
  return Number(result.rows[0]?.n ?? 0);
}

/**
 * Empties a month partition in one statement (TRUNCATE: no row-by-row delete,
 * the space goes back at once). The empty table stays attached, so a running
 * server that knows the month keeps storing late points there instead of
 * failing on a missing partition.
 */
export async function emptyMonthPartition(db: Kysely<Database>, partition: string): Promise<void> {
  if (!/^points_\d{4}_\d{2}$/.test(partition))
    throw new Error(`not a points partition: ${partition}`);
  await sql`truncate table ${sql.table(partition)}`.execute(db);
}

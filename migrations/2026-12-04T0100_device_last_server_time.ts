import { sql, type Kysely } from 'kysely';

/**
 * The last server time given to a message of the device without `ts`, in
 * epoch milliseconds. Kept on the device's row so that every node sharing the
 * database draws from one value: two nodes can no longer give one device the same millisecond (two
 * readings would collide on (device, series, ts), and one would be answered
 * as a "duplicate" without being stored). A bigint, not a timestamptz: it is
 * moved on by integer arithmetic in an UPDATE, and Citus refuses an UPDATE
 * that calls a STABLE function (timestamptz + interval) on a column. Nullable
 * with no default: adding it rewrites nothing. Frozen in time: never import
 * application code here.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table devices add column if not exists last_server_time_ms bigint`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table devices drop column if exists last_server_time_ms`.execute(db);
}

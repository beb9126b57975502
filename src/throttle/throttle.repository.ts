import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

/**
 * One token bucket step in one statement: the row is refilled for the time
 * since its last use, a token taken if there is a whole one, and the row
 * written back. The upsert holds the row lock, so concurrent takes from any
 * number of nodes are serialised and never overrun the bucket.
 */
export async function takeThrottleToken(
  db: Kysely<Database>,
  bucket: string,
  key: string,
  capacity: number,
  windowMs: number,
  deviceId: number | null,
): Promise<{ tokens: number; taken: boolean }> {
  const rate = capacity / windowMs;
  const refilled = sql<number>`least(${capacity}::float8, b.tokens +
    greatest(0, extract(epoch from (clock_timestamp() - b.updated_at)) * 1000) * ${rate}::float8)`;
  const result = await sql<{ tokens: number; taken: boolean }>`
    insert into throttle_buckets as b (bucket, key, device_id, tokens, taken, updated_at)
    values (${bucket}, ${key}, ${deviceId}, ${capacity}::float8 - 1, ${capacity} >= 1, clock_timestamp())
    on conflict (bucket, key) do update set
      tokens = case when ${refilled} >= 1 then ${refilled} - 1 else ${refilled} end,
      taken = ${refilled} >= 1,
      updated_at = clock_timestamp()
    returning b.tokens, b.taken`.execute(db);
  const row = result.rows[0]!;
  return { tokens: Number(row.tokens), taken: row.taken };
}

/** Gives one token back, never above the bucket's capacity. */
export async function refundThrottleToken(
  db: Kysely<Database>,
  bucket: string,
  key: string,
  capacity: number,
): Promise<void> {
  await sql`
    update throttle_buckets set tokens = least(${capacity}::float8, tokens + 1)
    where bucket = ${bucket} and key = ${key}`.execute(db);
}

/** Forgets buckets unused for longer than `olderThanMs`: they would be full again anyway. */
export async function deleteIdleThrottleBuckets(
  db: Kysely<Database>,
  bucket: string,
  olderThanMs: number,
): Promise<number> {
  const result = await sql`
    delete from throttle_buckets
    where bucket = ${bucket}
      and updated_at < clock_timestamp() - make_interval(secs => ${olderThanMs / 1000})`.execute(
    db,
  );
  return Number(result.numAffectedRows ?? 0);
}

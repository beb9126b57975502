import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

/** The newest stored token hash; older rows are kept as history of resets. */
export async function findAdminTokenHash(db: Kysely<Database>): Promise<Buffer | undefined> {
  const row = await db
    .selectFrom('admin_tokens')
    .select('token_hash')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row?.token_hash;
}

export async function insertAdminTokenHash(db: Kysely<Database>, hash: Buffer): Promise<void> {
  await db.insertInto('admin_tokens').values({ token_hash: hash }).execute();
}

/**
 * Inside `trx`: waits for any other node setting up the admin token at this
 * moment (a transaction-scoped advisory lock), so that nodes starting
 * together on an empty database generate one token, not one each.
 */
export async function lockAdminTokenSetup(trx: Kysely<Database>): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtext('fleetgate.admin_token'))`.execute(trx);
}

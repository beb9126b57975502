import type { Kysely } from 'kysely';
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

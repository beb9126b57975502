import { sql, type Insertable, type Kysely, type Selectable } from 'kysely';
import type { Database, PskTable } from '../db/schema.js';

export type PskRow = Selectable<PskTable>;

export async function insertPsk(db: Kysely<Database>, psk: Insertable<PskTable>): Promise<PskRow> {
  return db.insertInto('psks').values(psk).returningAll().executeTakeFirstOrThrow();
}

/**
 * Locks the PSK row for the rest of the transaction, so that concurrent binds
 * with one PSK take turns and its device limit cannot be overrun.
 */
export async function findPskByHashForUpdate(
  db: Kysely<Database>,
  secretHash: Buffer,
): Promise<PskRow | undefined> {
  return db
    .selectFrom('psks')
    .selectAll()
    .where('secret_hash', '=', secretHash)
    .forUpdate()
    .executeTakeFirst();
}

export async function incrementDevicesBound(db: Kysely<Database>, pskId: number): Promise<void> {
  await db
    .updateTable('psks')
    .set({ devices_bound: sql`devices_bound + 1` })
    .where('id', '=', pskId)
    .execute();
}

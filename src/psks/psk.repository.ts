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

export async function listPsksOfIdentity(
  db: Kysely<Database>,
  identityId: number,
): Promise<PskRow[]> {
  return db
    .selectFrom('psks')
    .selectAll()
    .where('identity_id', '=', identityId)
    .orderBy('id')
    .execute();
}

export async function lockPsk(db: Kysely<Database>, id: number): Promise<PskRow | undefined> {
  return db.selectFrom('psks').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
}

export async function markPskRevoked(db: Kysely<Database>, id: number): Promise<PskRow> {
  return db
    .updateTable('psks')
    .set({ revoked_at: new Date() })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

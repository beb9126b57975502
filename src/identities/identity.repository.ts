import type { Kysely, Selectable, Updateable } from 'kysely';
import type { Database, IdentityTable } from '../db/schema.js';

export type IdentityRow = Selectable<IdentityTable>;

export async function insertIdentity(
  db: Kysely<Database>,
  name: string,
  maxDevices: number | null = null,
  requireConfirmation = false,
): Promise<IdentityRow> {
  return db
    .insertInto('identities')
    .values({ name, max_devices: maxDevices, require_confirmation: requireConfirmation })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findIdentityByName(
  db: Kysely<Database>,
  name: string,
): Promise<IdentityRow | undefined> {
  return db.selectFrom('identities').selectAll().where('name', '=', name).executeTakeFirst();
}

/** Row lock that serialises concurrent binds of one identity (device limits). */
export async function lockIdentity(db: Kysely<Database>, id: number): Promise<IdentityRow> {
  return db
    .selectFrom('identities')
    .selectAll()
    .where('id', '=', id)
    .forUpdate()
    .executeTakeFirstOrThrow();
}

export async function findIdentityById(
  db: Kysely<Database>,
  id: number,
): Promise<IdentityRow | undefined> {
  return db.selectFrom('identities').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function findIdentitiesByIds(
  db: Kysely<Database>,
  ids: readonly number[],
): Promise<IdentityRow[]> {
  if (ids.length === 0) return [];
  return db.selectFrom('identities').selectAll().where('id', 'in', ids).execute();
}

export async function updateIdentity(
  db: Kysely<Database>,
  id: number,
  changes: Updateable<IdentityTable>,
): Promise<IdentityRow> {
  return db
    .updateTable('identities')
    .set(changes)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

export interface IdentityCounts extends IdentityRow {
  devices: number;
  revokedDevices: number;
  psks: number;
}

/** Identities with their device and PSK counts; one name, or all in name order. */
export async function listIdentitiesWithCounts(
  db: Kysely<Database>,
  name?: string,
): Promise<IdentityCounts[]> {
  let query = db
    .selectFrom('identities as i')
    .selectAll('i')
    .select((eb) => [
      eb
        .selectFrom('devices as d')
        .select(eb.fn.countAll<string>().as('n'))
        .whereRef('d.identity_id', '=', 'i.id')
        .where('d.revoked_at', 'is', null)
        .as('devices'),
      eb
        .selectFrom('devices as d')
        .select(eb.fn.countAll<string>().as('n'))
        .whereRef('d.identity_id', '=', 'i.id')
        .where('d.revoked_at', 'is not', null)
        .as('revokedDevices'),
      eb
        .selectFrom('psks as p')
        .select(eb.fn.countAll<string>().as('n'))
        .whereRef('p.identity_id', '=', 'i.id')
        .as('psks'),
    ]);
  if (name !== undefined) query = query.where('i.name', '=', name);
  const rows = await query.orderBy('i.name').execute();
  return rows.map((r) => ({
    ...r,
    devices: Number(r.devices),
    revokedDevices: Number(r.revokedDevices),
    psks: Number(r.psks),
  }));
}

import { sql, type Kysely, type Selectable, type Updateable } from 'kysely';
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

/**
 * Identities with their device and PSK counts; one name, or all in name order.
 * The device counts come from one grouped subquery joined on identity, not a
 * subquery per identity: on Citus (devices distributed, identities a reference
 * table) a correlated subquery over devices is refused, a grouped one is not.
 */
export async function listIdentitiesWithCounts(
  db: Kysely<Database>,
  name?: string,
): Promise<IdentityCounts[]> {
  let counts = db
    .selectFrom('devices as d')
    .select([
      'd.identity_id',
      sql<string>`count(*) filter (where d.revoked_at is null)`.as('devices'),
      sql<string>`count(*) filter (where d.revoked_at is not null)`.as('revokedDevices'),
    ])
    .groupBy('d.identity_id');
  if (name !== undefined) {
    counts = counts.where('d.identity_id', 'in', (eb) =>
      eb.selectFrom('identities').select('id').where('name', '=', name),
    );
  }
  let query = db
    .selectFrom('identities as i')
    .leftJoin(counts.as('dc'), 'dc.identity_id', 'i.id')
    .selectAll('i')
    .select((eb) => [
      sql<string>`coalesce(dc.devices, 0)`.as('devices'),
      sql<string>`coalesce(dc."revokedDevices", 0)`.as('revokedDevices'),
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

/** The devices of an identity not revoked yet (those a disable silences). */
export async function liveDeviceIdsOfIdentity(
  db: Kysely<Database>,
  identityId: number,
): Promise<number[]> {
  const rows = await db
    .selectFrom('devices')
    .select('id')
    .where('identity_id', '=', identityId)
    .where('revoked_at', 'is', null)
    .execute();
  return rows.map((row) => Number(row.id));
}

import type { Kysely, Selectable } from 'kysely';
import type { Database, DeviceNameTable } from '../db/schema.js';

export type DeviceNameRow = Selectable<DeviceNameTable>;

/**
 * Pre-registers names; existing ones are left as they are. Returns the names
 * that were new.
 */
export async function preregisterNames(
  db: Kysely<Database>,
  identityId: number,
  names: string[],
): Promise<Set<string>> {
  const created = new Set<string>();
  for (let i = 0; i < names.length; i += 1000) {
    const rows = await db
      .insertInto('device_names')
      .values(
        names.slice(i, i + 1000).map((name) => ({
          identity_id: identityId,
          name,
          status: 'provisioned' as const,
          preregistered: true,
        })),
      )
      .onConflict((oc) => oc.columns(['identity_id', 'name']).doNothing())
      .returning('name')
      .execute();
    for (const row of rows) created.add(row.name);
  }
  return created;
}

export async function findNameForUpdate(
  db: Kysely<Database>,
  identityId: number,
  name: string,
): Promise<DeviceNameRow | undefined> {
  return db
    .selectFrom('device_names')
    .selectAll()
    .where('identity_id', '=', identityId)
    .where('name', '=', name)
    .forUpdate()
    .executeTakeFirst();
}

export async function identityHasPreregisteredNames(
  db: Kysely<Database>,
  identityId: number,
): Promise<boolean> {
  const row = await db
    .selectFrom('device_names')
    .select('name')
    .where('identity_id', '=', identityId)
    .where('preregistered', '=', true)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

/** The name now belongs to the device (inserted or taken over from `provisioned`). */
export async function activateName(
  db: Kysely<Database>,
  identityId: number,
  name: string,
  deviceId: number,
): Promise<void> {
  await db
    .insertInto('device_names')
    .values({ identity_id: identityId, name, status: 'active', device_id: deviceId })
    .onConflict((oc) =>
      oc.columns(['identity_id', 'name']).doUpdateSet({ status: 'active', device_id: deviceId }),
    )
    .execute();
}

export async function listNamesOfIdentity(
  db: Kysely<Database>,
  identityId: number,
  names: string[],
): Promise<DeviceNameRow[]> {
  if (names.length === 0) return [];
  return db
    .selectFrom('device_names')
    .selectAll()
    .where('identity_id', '=', identityId)
    .where('name', 'in', names)
    .execute();
}

export async function findNameOfDevice(
  db: Kysely<Database>,
  deviceId: number,
): Promise<DeviceNameRow | undefined> {
  return db
    .selectFrom('device_names')
    .selectAll()
    .where('device_id', '=', deviceId)
    .executeTakeFirst();
}

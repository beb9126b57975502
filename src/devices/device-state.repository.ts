import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

export interface DeviceState {
  status: string;
  state: Record<string, unknown>;
  reportedAt: Date;
}

/** Records `state` as the device's last one; an older report never replaces a newer one. */
export async function saveDeviceState(
  db: Kysely<Database>,
  deviceId: number,
  status: string,
  state: Record<string, unknown>,
  reportedAt: Date,
): Promise<void> {
  await db
    .insertInto('device_states')
    .values({ device_id: deviceId, status, state: JSON.stringify(state), reported_at: reportedAt })
    .onConflict((oc) =>
      oc
        .column('device_id')
        .doUpdateSet((eb) => ({
          status: eb.ref('excluded.status'),
          state: eb.ref('excluded.state'),
          reported_at: eb.ref('excluded.reported_at'),
        }))
        .whereRef('device_states.reported_at', '<=', 'excluded.reported_at'),
    )
    .execute();
}

export async function findDeviceState(
  db: Kysely<Database>,
  deviceId: number,
): Promise<DeviceState | undefined> {
  const row = await db
    .selectFrom('device_states')
    .select(['status', 'state', 'reported_at'])
    .where('device_id', '=', deviceId)
    .executeTakeFirst();
  return row && { status: row.status, state: row.state, reportedAt: row.reported_at };
}

/** The last states of several devices, by device id. */
export async function findDeviceStates(
  db: Kysely<Database>,
  deviceIds: readonly number[],
): Promise<Map<number, DeviceState>> {
  const states = new Map<number, DeviceState>();
  if (deviceIds.length === 0) return states;
  const rows = await db
    .selectFrom('device_states')
    .select(['device_id', 'status', 'state', 'reported_at'])
    .where('device_id', 'in', [...deviceIds])
    .execute();
  for (const row of rows) {
    states.set(row.device_id, {
      status: row.status,
      state: row.state,
      reportedAt: row.reported_at,
    });
  }
  return states;
}

/** The names a device is known by (pre-registered or CN names, such as a MAC). */
export async function findDeviceNames(db: Kysely<Database>, deviceId: number): Promise<string[]> {
  const rows = await db
    .selectFrom('device_names')
    .select('name')
    .where('device_id', '=', deviceId)
    .execute();
  return rows.map((row) => row.name);
}

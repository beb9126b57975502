import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { DEVICE_EVENTS_CHANNEL, deviceEventPayloads, type DeviceEvent } from './device-events.js';

/**
 * Sends the news on `fleetgate_device_events` in the caller's transaction:
 * PostgreSQL delivers it to every listening node when (and only if) the
 * transaction commits. On Citus this runs on the coordinator, where the
 * nodes listen (a trigger on a distributed table would fire on a worker).
 * On the embedded database nobody listens: a no-op.
 */
export async function notifyDeviceEvent(db: Kysely<Database>, news: DeviceEvent): Promise<void> {
  const payloads = deviceEventPayloads(news);
  if (payloads.length === 0) return;
  await sql`select pg_notify(${DEVICE_EVENTS_CHANNEL}, p) from unnest(${payloads}::text[]) as p`.execute(
    db,
  );
}

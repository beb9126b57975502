import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

export interface NewAuditEvent {
  action: string;
  actor: string;
  identityId?: number | null;
  pskId?: number | null;
  deviceId?: number | null;
  fingerprint?: string | null;
  remoteAddress?: string | null;
  details?: Record<string, unknown>;
}

/** `audit_events.device_id` of an event that concerns no device (no device has id 0). */
const NO_DEVICE = 0;

export async function insertAuditEvent(db: Kysely<Database>, event: NewAuditEvent): Promise<void> {
  await db
    .insertInto('audit_events')
    .values({
      action: event.action,
      actor: event.actor,
      identity_id: event.identityId ?? null,
      psk_id: event.pskId ?? null,
      // 0 is "no device": the column is the distribution key on Citus, never NULL.
      device_id: event.deviceId ?? NO_DEVICE,
      fingerprint: event.fingerprint ?? null,
      remote_address: event.remoteAddress ?? null,
      details: JSON.stringify(event.details ?? {}),
    })
    .execute();
}

export interface AuditFilter {
  identityId?: number;
  /** Events of this device, or naming this certificate (refused binds of strangers too). */
  device?: { id: number | null; fingerprint: string };
  action?: string;
  /** Keyset paging: only events older than this id. */
  beforeId?: string;
  limit: number;
}

export interface AuditEventRow {
  id: string;
  at: Date;
  action: string;
  actor: string;
  identity: string | null;
  pskId: number | null;
  deviceId: number | null;
  fingerprint: string | null;
  remoteAddress: string | null;
  details: Record<string, unknown>;
}

/** Newest first. */
export async function listAuditEvents(
  db: Kysely<Database>,
  filter: AuditFilter,
): Promise<AuditEventRow[]> {
  let query = db
    .selectFrom('audit_events as a')
    .leftJoin('identities as i', 'i.id', 'a.identity_id')
    .select([
      'a.id',
      'a.at',
      'a.action',
      'a.actor',
      'i.name as identity',
      'a.psk_id as pskId',
      sql<number | null>`nullif(a.device_id, ${NO_DEVICE})`.as('deviceId'),
      'a.fingerprint',
      'a.remote_address as remoteAddress',
      'a.details',
    ]);
  if (filter.identityId !== undefined) query = query.where('a.identity_id', '=', filter.identityId);
  const device = filter.device;
  if (device) {
    query = query.where((eb) =>
      device.id === null
        ? eb('a.fingerprint', '=', device.fingerprint)
        : eb.or([eb('a.device_id', '=', device.id), eb('a.fingerprint', '=', device.fingerprint)]),
    );
  }
  if (filter.action !== undefined) query = query.where('a.action', '=', filter.action);
  if (filter.beforeId !== undefined) query = query.where('a.id', '<', filter.beforeId);
  const rows = await query.orderBy('a.id', 'desc').limit(filter.limit).execute();
  return rows.map((row) => ({ ...row, id: String(row.id) }));
}

import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { findDeviceByFingerprint } from '../devices/device.repository.js';
import { normaliseFingerprint } from '../devices/device.service.js';
import { requireIdentity } from '../identities/identity.service.js';
import { listAuditEvents, type AuditEventRow } from './audit.repository.js';

export const AUDIT_ACTIONS = [
  'identity.created',
  'identity.updated',
  'identity.disabled',
  'identity.enabled',
  'psk.issued',
  'psk.revoked',
  'device.bound',
  'device.bind_refused',
  'device.revoked',
  'certificate.rotation_challenge_issued',
  'certificate.rotation_requested',
  'certificate.rotation_refused',
  'certificate.activated',
  'certificate.rotation_cancelled',
  'certificate.rotation_expired',
  'certificate.rotation_dropped',
  'admin_token.reset',
  'registration.requested',
  'registration.confirmed',
  'registration.confirmation_refused',
  'registration.completed',
  'registration.expired',
  'registration.revoked',
  'registration.waived',
] as const;

export interface AuditQuery {
  identity?: string;
  fingerprint?: string;
  action?: string;
  before?: string;
  limit: number;
}

export interface AuditPage {
  events: AuditEventRow[];
  /** Pass as `before` for the next (older) page; null at the end. */
  nextCursor: string | null;
}

export async function readAuditLog(db: Kysely<Database>, query: AuditQuery): Promise<AuditPage> {
  const identityId = query.identity ? (await requireIdentity(db, query.identity)).id : undefined;
  const fingerprint = query.fingerprint ? normaliseFingerprint(query.fingerprint) : undefined;
  const device = fingerprint
    ? { id: (await findDeviceByFingerprint(db, fingerprint))?.deviceId ?? null, fingerprint }
    : undefined;
  const events = await listAuditEvents(db, {
    identityId,
    device,
    action: query.action,
    beforeId: query.before,
    limit: query.limit + 1,
  });
  const more = events.length > query.limit;
  const page = more ? events.slice(0, query.limit) : events;
  return { events: page, nextCursor: more ? page[page.length - 1]!.id : null };
}

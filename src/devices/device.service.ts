import { findDeviceStates, type DeviceState } from './device-state.repository.js';
import type { Kysely } from 'kysely';
import { emitDeviceEvent } from './device-events.js';
import { notifyDeviceEvent } from './device-events.repository.js';
import { insertAuditEvent } from '../audit/audit.repository.js';
import type { Actor } from '../audit/actor.js';
import type { Database } from '../db/schema.js';
import { badRequest, conflict, notFound } from '../http/app-error.js';
import {
  findIdentitiesByIds,
  findIdentityById,
  findIdentityByName,
} from '../identities/identity.repository.js';
import {
  findDeviceByFingerprint,
  findDeviceById,
  listCertificatesOfDevices,
  listDevicesOfFleet,
  listDevicesOfIdentity,
  lockDevice,
  markDeviceRevoked,
  type CertificateFields,
  type CertificateRow,
  type DeviceByCertificate,
  type DeviceRow,
} from './device.repository.js';
import type { PendingRotationRow } from './rotation.repository.js';
import {
  dropRotationsOfDevice,
  pendingRotationOfDevice,
  pendingRotationsOfDevices,
} from './rotation.service.js';

const FINGERPRINT = /^[0-9a-f]{64}$/;

export function normaliseFingerprint(text: string): string {
  // Accept what openssl prints (upper case, colon separated) as well as ours.
  const fingerprint = text.trim().toLowerCase().replace(/:/g, '');
  if (!FINGERPRINT.test(fingerprint)) {
    throw badRequest(
      'invalid_fingerprint',
      'a fingerprint is the SHA-256 of the certificate DER, 64 hex digits',
    );
  }
  return fingerprint;
}

/** A device found by the fingerprint of any of its certificates, current or past. */
export async function requireDeviceByFingerprint(
  db: Kysely<Database>,
  fingerprintText: string,
): Promise<DeviceByCertificate> {
  const fingerprint = normaliseFingerprint(fingerprintText);
  const device = await findDeviceByFingerprint(db, fingerprint);
  if (!device) throw notFound('device_not_found', `no device has the certificate ${fingerprint}`);
  return device;
}

export interface CertificateView extends CertificateFields {
  state: string;
  addedAt: Date;
  activatedAt: Date | null;
  retiredAt: Date | null;
}

export interface DeviceView {
  id: number;
  identity: string;
  status: 'active' | 'revoked' | 'disabled' | 'pending_confirmation';
  pskId: number | null;
  enrolledByCa: string | null;
  boundAt: Date;
  boundFrom: string | null;
  lastSeenAt: Date | null;
  revokedAt: Date | null;
  revokedReason: string | null;
  /** The certificate the device uses now (the newest active one). */
  certificate: CertificateView | null;
  /** A certificate whose rotation was requested (key proven) and not yet completed. */
  pendingCertificate: CertificateView | null;
  certificates: CertificateView[];
  /** The last state the device published on MQTT (its `status` and all its fields), or null. */
  lastState: LastStateView | null;
}

export interface LastStateView {
  status: string;
  state: Record<string, unknown>;
  at: Date;
}

export interface DevicePage {
  devices: DeviceView[];
  nextCursor: string | null;
}

export async function listDevices(
  db: Kysely<Database>,
  identityName: string,
  options: { limit: number; after?: number },
): Promise<DevicePage> {
  const identity = await findIdentityByName(db, identityName);
  if (!identity) throw notFound('identity_not_found', `no identity named ${identityName}`);
  const rows = await listDevicesOfIdentity(db, identity.id, options.after ?? 0, options.limit + 1);
  const more = rows.length > options.limit;
  const page = more ? rows.slice(0, options.limit) : rows;
  const certificates = await listCertificatesOfDevices(
    db,
    page.map((d) => d.id),
  );
  const disabled = identity.disabled_at !== null;
  const pending = await pendingRotationsOfDevices(
    db,
    page.map((d) => d.id),
  );
  const states = await findDeviceStates(
    db,
    page.map((d) => d.id),
  );
  return {
    devices: page.map((d) =>
      deviceView(
        d,
        identity.name,
        disabled,
        certificates.filter((c) => c.device_id === d.id),
        pending.get(d.id),
        states.get(d.id),
      ),
    ),
    nextCursor: more ? String(page[page.length - 1]!.id) : null,
  };
}

/**
 * One page of every device of the fleet, whatever its identity: keyset
 * pagination by device id, so a page costs the same at device 100,000 as at 1.
 */
export async function listFleetDevices(
  db: Kysely<Database>,
  options: { limit: number; after?: number; status?: 'active' | 'revoked' },
): Promise<DevicePage> {
  const status = options.status === 'active' ? 'live' : options.status;
  const rows = await listDevicesOfFleet(db, options.after ?? 0, options.limit + 1, status);
  const more = rows.length > options.limit;
  const page = more ? rows.slice(0, options.limit) : rows;
  const identities = new Map(
    (await findIdentitiesByIds(db, [...new Set(page.map((d) => d.identity_id))])).map((i) => [
      i.id,
      i,
    ]),
  );
  const certificates = await listCertificatesOfDevices(
    db,
    page.map((d) => d.id),
  );
  const pending = await pendingRotationsOfDevices(
    db,
    page.map((d) => d.id),
  );
  const states = await findDeviceStates(
    db,
    page.map((d) => d.id),
  );
  return {
    devices: page.map((d) => {
      const identity = identities.get(d.identity_id);
      return deviceView(
        d,
        identity?.name ?? '',
        identity?.disabled_at !== null && identity?.disabled_at !== undefined,
        certificates.filter((c) => c.device_id === d.id),
        pending.get(d.id),
        states.get(d.id),
      );
    }),
    nextCursor: more ? String(page[page.length - 1]!.id) : null,
  };
}

export async function showDevice(db: Kysely<Database>, fingerprint: string): Promise<DeviceView> {
  const found = await requireDeviceByFingerprint(db, fingerprint);
  const device = await findDeviceById(db, found.deviceId);
  const identity = await findIdentityById(db, found.identityId);
  if (!device || !identity) throw notFound('device_not_found', 'the device no longer exists');
  const certificates = await listCertificatesOfDevices(db, [device.id]);
  return deviceView(
    device,
    identity.name,
    identity.disabled_at !== null,
    certificates,
    await pendingRotationOfDevice(db, device.id),
    (await findDeviceStates(db, [device.id])).get(device.id),
  );
}

/**
 * Permanent: a revoked device is refused on its very next request (device
 * auth reads the database on every request) and can never be bound again.
 * Its long-lived sessions on every node are closed at once: the news is sent
 * with the change (see device-events.ts).
 */
export async function revokeDevice(
  db: Kysely<Database>,
  fingerprint: string,
  reason: string | null,
  actor: Actor,
): Promise<DeviceView> {
  const found = await requireDeviceByFingerprint(db, fingerprint);
  await db.transaction().execute(async (trx) => {
    const device = await lockDevice(trx, found.deviceId);
    if (device.revoked_at)
      throw conflict('device_already_revoked', 'the device is already revoked');
    await markDeviceRevoked(trx, device.id, reason);
    await dropRotationsOfDevice(trx, device.id, actor);
    await insertAuditEvent(trx, {
      action: 'device.revoked',
      actor: actor.kind,
      identityId: device.identity_id,
      pskId: device.psk_id,
      deviceId: device.id,
      fingerprint: normaliseFingerprint(fingerprint),
      remoteAddress: actor.remoteAddress,
      details: reason ? { reason } : {},
    });
    await notifyDeviceEvent(trx, { event: 'revoked', deviceId: device.id });
  });
  emitDeviceEvent({ event: 'revoked', deviceId: found.deviceId });
  return showDevice(db, fingerprint);
}

function deviceView(
  device: DeviceRow,
  identity: string,
  identityDisabled: boolean,
  certificates: CertificateRow[],
  pending: PendingRotationRow | undefined,
  state: DeviceState | undefined,
): DeviceView {
  const views = certificates.map(certificateView);
  const active = views.filter((c) => c.state === 'active');
  const pendingView: CertificateView | null = pending
    ? {
        fingerprint: pending.fingerprint,
        subject: pending.subject,
        issuer: pending.issuer,
        serialNumber: pending.serial_number,
        notBefore: pending.not_before,
        notAfter: pending.not_after,
        state: 'pending',
        addedAt: pending.requested_at,
        activatedAt: null,
        retiredAt: null,
      }
    : null;
  return {
    id: device.id,
    identity,
    status: device.revoked_at
      ? 'revoked'
      : identityDisabled
        ? 'disabled'
        : device.pending_confirmation
          ? 'pending_confirmation'
          : 'active',
    pskId: device.psk_id,
    enrolledByCa: device.enrolled_by_ca,
    boundAt: device.bound_at,
    boundFrom: device.bound_from,
    lastSeenAt: device.last_seen_at,
    revokedAt: device.revoked_at,
    revokedReason: device.revoked_reason,
    certificate: active[active.length - 1] ?? null,
    pendingCertificate: pendingView,
    certificates: pendingView ? [...views, pendingView] : views,
    lastState: state ? { status: state.status, state: state.state, at: state.reportedAt } : null,
  };
}

function certificateView(c: CertificateRow): CertificateView {
  return {
    fingerprint: c.fingerprint,
    subject: c.subject,
    issuer: c.issuer,
    serialNumber: c.serial_number,
    notBefore: c.not_before,
    notAfter: c.not_after,
    state: c.state,
    addedAt: c.added_at,
    activatedAt: c.activated_at,
    retiredAt: c.retired_at,
  };
}

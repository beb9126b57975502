import type { Kysely } from 'kysely';
import { insertAuditEvent } from '../audit/audit.repository.js';
import type { Database } from '../db/schema.js';
import { isUniqueViolation } from '../db/errors.js';
import { AppError, badRequest, conflict, forbidden } from '../http/app-error.js';
import { inspectCertificate, parsePemCertificate } from '../tls/certificate-info.js';
import { assertAcceptableDeviceCertificate } from '../tls/device-certificate-policy.js';
import type { AuthenticatedDevice } from './device-auth.js';
import {
  activateCertificate,
  deletePendingCertificates,
  findCertificate,
  findDeviceByFingerprint,
  insertPendingCertificate,
  lockDevice,
  type DeviceByCertificate,
} from './device.repository.js';

export interface RotationRequest {
  status: 'pending';
  /** The certificate the device will present next. */
  fingerprint: string;
  /** The certificate it presented now, which the new one replaces. */
  replaces: string;
  notAfter: Date;
}

/**
 * A bound device, authenticated by its current certificate, announces its
 * next one. No PSK is needed: holding the current key is the proof. The new
 * certificate joins the same device record (same series) as `pending`; it
 * proves possession of its own key the first time it is presented over mTLS,
 * and that is when it becomes active (see activatePendingCertificate).
 */
export async function requestRotation(
  db: Kysely<Database>,
  current: AuthenticatedDevice,
  pem: string,
  remoteAddress: string | null,
): Promise<RotationRequest> {
  if (current.device.certificateState !== 'active') {
    throw forbidden(
      'certificate_retiring',
      'this certificate has been replaced; rotate from the current certificate',
    );
  }
  const next = inspectCertificate(parsePemCertificate(pem));
  try {
    assertAcceptableDeviceCertificate(next);
  } catch (err) {
    if (err instanceof AppError) throw badRequest('unacceptable_certificate', err.message);
    throw err;
  }
  if (next.fingerprint === current.certificate.fingerprint) {
    throw conflict('certificate_already_known', 'this is the certificate presented right now');
  }
  const deviceId = current.device.deviceId;
  const answer: RotationRequest = {
    status: 'pending',
    fingerprint: next.fingerprint,
    replaces: current.certificate.fingerprint,
    notAfter: next.notAfter,
  };
  try {
    await db.transaction().execute(async (trx) => {
      const device = await lockDevice(trx, deviceId);
      if (device.revoked_at) throw forbidden('device_revoked', 'this device has been revoked');
      const known = await findCertificate(trx, next.fingerprint);
      if (known?.device_id === deviceId && known.state === 'pending') return; // a retry
      if (known) throw knownElsewhere();
      const replaced = await deletePendingCertificates(trx, deviceId);
      await insertPendingCertificate(trx, deviceId, next);
      await insertAuditEvent(trx, {
        action: 'certificate.rotation_requested',
        actor: 'device',
        identityId: device.identity_id,
        deviceId,
        fingerprint: next.fingerprint,
        remoteAddress,
        details: {
          presentedBy: current.certificate.fingerprint,
          subject: next.subject,
          serialNumber: next.serialNumber,
          ...(replaced.length ? { replacedPending: replaced } : {}),
        },
      });
    });
  } catch (err) {
    // Another device submitted or bound the same certificate at the same moment.
    if (isUniqueViolation(err)) throw knownElsewhere();
    throw err;
  }
  return answer;
}

const knownElsewhere = () =>
  conflict('certificate_already_known', 'this certificate is already known to fleetgate');

/**
 * First presentation of a pending certificate: it becomes the device's active
 * certificate and the others retire now, or after the grace period. Returns
 * the device as seen after the change.
 */
export async function activatePendingCertificate(
  db: Kysely<Database>,
  device: DeviceByCertificate,
  fingerprint: string,
  graceMs: number,
  remoteAddress: string | null,
): Promise<DeviceByCertificate | undefined> {
  await db.transaction().execute(async (trx) => {
    const locked = await lockDevice(trx, device.deviceId);
    if (locked.revoked_at) return;
    const retireAt = new Date(Date.now() + graceMs);
    if (!(await activateCertificate(trx, locked.id, fingerprint, retireAt))) return;
    await insertAuditEvent(trx, {
      action: 'certificate.activated',
      actor: 'device',
      identityId: locked.identity_id,
      deviceId: locked.id,
      fingerprint,
      remoteAddress,
      details: { previousCertificatesRetireAt: retireAt.toISOString() },
    });
  });
  return findDeviceByFingerprint(db, fingerprint);
}

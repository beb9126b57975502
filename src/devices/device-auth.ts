import { clientAddressOf } from '../proxy/request-origin.js';
import type { IncomingMessage } from 'node:http';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { forbidden } from '../http/app-error.js';
import type { CertificateInfo } from '../tls/certificate-info.js';
import { requireClientCertificate } from '../tls/client-certificate.js';
import { findDeviceByFingerprint, type DeviceByCertificate } from './device.repository.js';

export interface AuthenticatedDevice {
  certificate: CertificateInfo;
  device: DeviceByCertificate;
  /** Where the request came from (the device's address, also behind nginx). */
  remoteAddress: string | null;
}

/**
 * The device behind a presented certificate, if bound. Only certificates of a
 * device count: one merely waiting in a rotation is not the device's until
 * the rotation is completed (see rotation.service.ts).
 */
export async function lookUpDevice(
  db: Kysely<Database>,
  certificate: CertificateInfo,
): Promise<DeviceByCertificate | undefined> {
  return findDeviceByFingerprint(db, certificate.fingerprint);
}

/** A retired certificate works until the end of its grace period. */
export function certificateRetired(device: DeviceByCertificate, now = new Date()): boolean {
  return (
    device.certificateState === 'retired' &&
    (device.certificateRetiredAt === null || device.certificateRetiredAt.getTime() <= now.getTime())
  );
}

/**
 * Resolves the request's certificate to an active device. Looked up on every
 * request, never cached per connection, so a revocation takes effect on the
 * very next request even on a kept-alive connection.
 */
export async function requireActiveDevice(
  db: Kysely<Database>,
  req: IncomingMessage,
): Promise<AuthenticatedDevice> {
  const certificate = requireClientCertificate(req);
  const device = await requireActiveCertificate(db, certificate);
  return { certificate, device, remoteAddress: clientAddressOf(req) };
}

/**
 * The active device of a certificate, or the refusal (403) that says why not.
 * Every channel (HTTP request, each WebSocket message) asks this afresh.
 */
export async function requireActiveCertificate(
  db: Kysely<Database>,
  certificate: CertificateInfo,
): Promise<DeviceByCertificate> {
  return requireActive(await lookUpDevice(db, certificate));
}

/** The device of a lookup made on this request, if active; else requireActiveCertificate's 403. */
export function requireActive(device: DeviceByCertificate | undefined): DeviceByCertificate {
  if (!device)
    throw forbidden('certificate_not_bound', 'this certificate is not bound to an identity');
  if (device.revokedAt) throw forbidden('device_revoked', 'this device has been revoked');
  if (device.revokedByCaSerial) {
    throw forbidden(
      'certificate_revoked_by_ca',
      `serial ${device.revokedByCaSerial} of this certificate's chain is on its CA's revocation list (CRL): the device must get a new certificate`,
    );
  }
  if (device.identityDisabledAt)
    throw forbidden('identity_disabled', 'the identity of this device is disabled');
  if (certificateRetired(device)) {
    throw forbidden('certificate_retired', 'this certificate was replaced by a newer one');
  }
  if (device.pendingConfirmation) {
    throw forbidden(
      'device_pending_confirmation',
      "this device waits for its owner's confirmation: complete its registration first",
    );
  }
  return device;
}

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
  const device = await findDeviceByFingerprint(db, certificate.fingerprint);
  if (!device)
    throw forbidden('certificate_not_bound', 'this certificate is not bound to an identity');
  if (device.revokedAt) throw forbidden('device_revoked', 'this device has been revoked');
  if (device.identityDisabledAt)
    throw forbidden('identity_disabled', 'the identity of this device is disabled');
  return { certificate, device };
}

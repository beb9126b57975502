import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { isUniqueViolation } from '../db/errors.js';
import { badRequest, conflict, forbidden } from '../http/app-error.js';
import { lockIdentity } from '../identities/identity.repository.js';
import { hashPskSecret } from '../psks/psk-secret.js';
import { findPskByHashForUpdate, incrementDevicesBound } from '../psks/psk.repository.js';
import { pskExhausted, pskRefusal } from '../psks/psk.service.js';
import type { CertificateInfo } from '../tls/certificate-info.js';
import { findDeviceByFingerprint, insertDeviceWithCertificate } from './device.repository.js';

export interface BindResult {
  /** `bound` for a new binding, `already_bound` for an idempotent repeat. */
  status: 'bound' | 'already_bound';
  deviceId: number;
  identity: string;
  boundAt: Date;
}

/**
 * Binds a certificate to the identity that owns the PSK. The anti-hijack rules:
 * a certificate bound to one identity is never moved to another (409), a
 * repeat with the same identity changes nothing (200), and a PSK's device
 * limit holds under concurrency because binds take the PSK row lock in turn.
 */
export async function bindCertificate(
  db: Kysely<Database>,
  pskSecret: string,
  certificate: CertificateInfo,
  remoteAddress: string | null,
): Promise<BindResult> {
  try {
    return await db
      .transaction()
      .execute((trx) => bindInTransaction(trx, pskSecret, certificate, remoteAddress));
  } catch (err) {
    // Two binds of one new certificate raced; the loser sees the winner's row.
    if (isUniqueViolation(err)) {
      return db
        .transaction()
        .execute((trx) => bindInTransaction(trx, pskSecret, certificate, remoteAddress));
    }
    throw err;
  }
}

async function bindInTransaction(
  trx: Kysely<Database>,
  pskSecret: string,
  certificate: CertificateInfo,
  remoteAddress: string | null,
): Promise<BindResult> {
  const psk = await findPskByHashForUpdate(trx, hashPskSecret(pskSecret));
  if (!psk) throw badRequest('invalid_psk', 'PSK is not valid');
  const refusal = pskRefusal(psk, new Date());
  if (refusal) throw badRequest('invalid_psk', refusal);
  const identity = await lockIdentity(trx, psk.identity_id);
  if (identity.disabled_at)
    throw badRequest('identity_disabled', 'the identity of this PSK is disabled');

  const existing = await findDeviceByFingerprint(trx, certificate.fingerprint);
  if (existing) {
    if (existing.identityId !== psk.identity_id) {
      throw conflict(
        'certificate_bound_elsewhere',
        'certificate is already bound to another identity',
      );
    }
    if (existing.revokedAt) throw forbidden('device_revoked', 'this device has been revoked');
    return {
      status: 'already_bound',
      deviceId: existing.deviceId,
      identity: identity.name,
      boundAt: existing.boundAt,
    };
  }

  if (pskExhausted(psk)) throw badRequest('psk_exhausted', 'PSK has reached its device limit');
  const created = await insertDeviceWithCertificate(trx, {
    identityId: psk.identity_id,
    pskId: psk.id,
    boundFrom: remoteAddress,
    certificate,
  });
  await incrementDevicesBound(trx, psk.id);
  return {
    status: 'bound',
    deviceId: created.id,
    identity: identity.name,
    boundAt: created.boundAt,
  };
}

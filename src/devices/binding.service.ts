import type { Kysely } from 'kysely';
import { insertAuditEvent } from '../audit/audit.repository.js';
import type { Database } from '../db/schema.js';
import { isUniqueViolation } from '../db/errors.js';
import { AppError, badRequest, conflict, forbidden } from '../http/app-error.js';
import { lockIdentity } from '../identities/identity.repository.js';
import { hashPskSecret } from '../psks/psk-secret.js';
import { findPskByHashForUpdate, incrementDevicesBound } from '../psks/psk.repository.js';
import { pskExhausted, pskRefusal } from '../psks/psk.service.js';
import type { CertificateInfo } from '../tls/certificate-info.js';
import {
  countLiveDevices,
  findDeviceByFingerprint,
  insertDeviceWithCertificate,
} from './device.repository.js';
import { dropPendingRotationsOfCertificate } from './rotation.service.js';
import {
  startRegistration,
  waiveConfirmation,
  type StartedRegistration,
} from '../registrations/registration.service.js';

export interface BindResult {
  /** `bound` for a new binding, `already_bound` for an idempotent repeat. */
  status: 'bound' | 'already_bound';
  deviceId: number;
  identity: string;
  boundAt: Date;
  /** Set when the identity requires its owner's confirmation: answered 202. */
  registration?: StartedRegistration;
}

export interface BindOptions {
  /** Lifetime of a registration request, for identities that require confirmation. */
  registrationLifetimeMs: number;
}

/** What the bind learnt before it was refused, for the audit log. */
interface BindContext {
  pskId: number | null;
  identityId: number | null;
  /** Set when the certificate already belongs to a device. */
  deviceId: number | null;
}

/**
 * Binds a certificate to the identity that owns the PSK. The anti-hijack rules:
 * a certificate bound to one identity is never moved to another (409), a
 * repeat with the same identity changes nothing (200), and the device limits
 * of the PSK and of its identity hold under concurrency because binds take
 * the PSK and identity row locks in turn.
 */
export async function bindCertificate(
  db: Kysely<Database>,
  pskSecret: string,
  certificate: CertificateInfo,
  remoteAddress: string | null,
  options: BindOptions,
): Promise<BindResult> {
  const context: BindContext = { pskId: null, identityId: null, deviceId: null };
  const attempt = () =>
    db
      .transaction()
      .execute((trx) =>
        bindInTransaction(trx, pskSecret, certificate, remoteAddress, context, options),
      );
  try {
    try {
      return await attempt();
    } catch (err) {
      // Two binds of one new certificate raced; the loser sees the winner's row.
      if (isUniqueViolation(err)) return await attempt();
      throw err;
    }
  } catch (err) {
    if (err instanceof AppError && err.status < 500) {
      await recordRefusal(db, err, certificate, remoteAddress, context);
    }
    throw err;
  }
}

async function bindInTransaction(
  trx: Kysely<Database>,
  pskSecret: string,
  certificate: CertificateInfo,
  remoteAddress: string | null,
  context: BindContext,
  options: BindOptions,
): Promise<BindResult> {
  const psk = await findPskByHashForUpdate(trx, hashPskSecret(pskSecret));
  if (!psk) throw badRequest('invalid_psk', 'PSK is not valid');
  context.pskId = psk.id;
  context.identityId = psk.identity_id;
  const refusal = pskRefusal(psk, new Date());
  if (refusal) throw badRequest('invalid_psk', refusal);
  const identity = await lockIdentity(trx, psk.identity_id);
  if (identity.disabled_at)
    throw badRequest('identity_disabled', 'the identity of this PSK is disabled');

  const existing = await findDeviceByFingerprint(trx, certificate.fingerprint);
  if (existing) {
    context.deviceId = existing.deviceId;
    if (existing.identityId !== psk.identity_id) {
      throw conflict(
        'certificate_bound_elsewhere',
        'certificate is already bound to another identity',
      );
    }
    if (existing.revokedAt) throw forbidden('device_revoked', 'this device has been revoked');
    if (existing.certificateState === 'retired') {
      throw forbidden('certificate_retired', 'this certificate was replaced by a newer one');
    }
    const result: BindResult = {
      status: 'already_bound',
      deviceId: existing.deviceId,
      identity: identity.name,
      boundAt: existing.boundAt,
    };
    if (!existing.pendingConfirmation) return result;
    // A device still waiting for its owner asks again: a new request replaces the old.
    if (!identity.require_confirmation) {
      await waiveConfirmation(
        trx,
        existing.deviceId,
        identity.id,
        certificate.fingerprint,
        remoteAddress,
      );
      return result;
    }
    const registration = await startRegistration(trx, {
      deviceId: existing.deviceId,
      identityId: identity.id,
      certificate,
      remoteAddress,
      lifetimeMs: options.registrationLifetimeMs,
    });
    return { ...result, registration };
  }

  if (pskExhausted(psk)) throw badRequest('psk_exhausted', 'PSK has reached its device limit');
  // The identity row is locked above, so every bind of this identity counts in turn.
  if (
    identity.max_devices !== null &&
    (await countLiveDevices(trx, identity.id)) >= identity.max_devices
  ) {
    throw forbidden(
      'identity_device_limit',
      `identity ${identity.name} has reached its limit of ${identity.max_devices} devices`,
    );
  }
  const created = await insertDeviceWithCertificate(trx, {
    identityId: psk.identity_id,
    pskId: psk.id,
    boundFrom: remoteAddress,
    certificate,
    pendingConfirmation: identity.require_confirmation,
  });
  await incrementDevicesBound(trx, psk.id);
  // A rotation waiting for this certificate never wins over its enrollment.
  await dropPendingRotationsOfCertificate(trx, certificate.fingerprint, remoteAddress);
  await insertAuditEvent(trx, {
    action: 'device.bound',
    actor: 'device',
    identityId: identity.id,
    pskId: psk.id,
    deviceId: created.id,
    fingerprint: certificate.fingerprint,
    remoteAddress,
    details: { subject: certificate.subject, serialNumber: certificate.serialNumber },
  });
  const registration = identity.require_confirmation
    ? await startRegistration(trx, {
        deviceId: created.id,
        identityId: identity.id,
        certificate,
        remoteAddress,
        lifetimeMs: options.registrationLifetimeMs,
      })
    : undefined;
  return {
    status: 'bound',
    deviceId: created.id,
    identity: identity.name,
    boundAt: created.boundAt,
    ...(registration ? { registration } : {}),
  };
}

/**
 * The bind's own transaction rolled back, so a refusal is recorded on its own.
 * If even that fails (database gone), the client still gets the refusal.
 */
async function recordRefusal(
  db: Kysely<Database>,
  err: AppError,
  certificate: CertificateInfo,
  remoteAddress: string | null,
  context: BindContext,
): Promise<void> {
  await insertAuditEvent(db, {
    action: 'device.bind_refused',
    actor: 'device',
    identityId: context.identityId,
    pskId: context.pskId,
    deviceId: context.deviceId,
    fingerprint: certificate.fingerprint,
    remoteAddress,
    details: { code: err.code, reason: err.message },
  }).catch(() => undefined);
}

import type { Kysely } from 'kysely';
import type { AuthorityRow } from './authority.repository.js';
import { insertAuditEvent } from '../audit/audit.repository.js';
import type { Database } from '../db/schema.js';
import { isUniqueViolation } from '../db/errors.js';
import { AppError, conflict, forbidden } from '../http/app-error.js';
import { lockIdentity } from '../identities/identity.repository.js';
import type { CertificateInfo } from '../tls/certificate-info.js';
import {
  countLiveDevices,
  findDeviceByFingerprint,
  insertDeviceWithCertificate,
} from '../devices/device.repository.js';
import { dropPendingRotationsOfCertificate } from '../devices/rotation.service.js';
import {
  hasRevokedSerials,
  insertDeviceChainSerials,
  proxyTrustKey,
  listAllAuthorities,
  revokedSerialsAmong,
} from './authority.repository.js';
import { deviceNameOf } from './ca-certificates.js';
import {
  trustAnchorsDigest,
  verifyByProxyVerdict,
  verifyChain,
  type ProxyVerdict,
  type VerifiedChain,
} from './chain.js';
import {
  activateName,
  findNameForUpdate,
  identityHasPreregisteredNames,
} from './device-name.repository.js';
import { fingerprintOf } from '../tls/certificate-info.js';
import {
  startRegistration,
  waiveConfirmation,
  type StartedRegistration,
} from '../registrations/registration.service.js';

export interface PresentedChain {
  certificate: CertificateInfo;
  leafDer: Buffer;
  /** What the device sent after its certificate in the TLS handshake. */
  intermediates: Buffer[];
  /** Behind a trusted nginx: its verdict on the chain, whose intermediates it does not forward. */
  proxyVerdict?: ProxyVerdict | null;
}

export interface EnrollResult {
  status: 'enrolled' | 'already_bound';
  deviceId: number;
  identity: string;
  name: string;
  boundAt: Date;
  /** Set when the identity requires its owner's confirmation: answered 202. */
  registration?: StartedRegistration;
}

/**
 * How an enrollment may open a registration request for an identity that
 * requires confirmation: only an explicit enrollment can (it shows the PIN);
 * null for the implicit one of a first upload, which is then refused.
 */
export type EnrollRegistration = { lifetimeMs: number } | null;

interface EnrollContext {
  identityId: number | null;
  caFingerprint: string | null;
  name: string | null;
}

/**
 * Enrolls a device whose certificate chains to a CA trusted by an identity,
 * in one transaction: chain, revocation, the identity's pre-registered names,
 * the anti-hijack rule by name and the identity's device limit (the identity
 * row lock serialises concurrent enrollments). Refusals are audited.
 */
export async function enrollByChain(
  db: Kysely<Database>,
  chain: PresentedChain,
  remoteAddress: string | null,
  registration: EnrollRegistration = null,
): Promise<EnrollResult> {
  const context: EnrollContext = { identityId: null, caFingerprint: null, name: null };
  try {
    const anchors = await listAllAuthorities(db);
    const verified = await verifyPresented(db, chain, anchors);
    context.identityId = verified.anchor.identity_id;
    context.caFingerprint = verified.anchor.fingerprint;
    await refuseUnverifiableRevocation(db, verified);
    // Revocation: each certificate against the CRL of its issuer, when that issuer is a registered CA.
    const byFingerprint = new Map(anchors.map((a) => [a.fingerprint, a]));
    // Kept per device: a CRL loaded later refuses the device on its next request.
    const chainSerials: { caId: number; serialNumber: string }[] = [];
    for (const check of verified.revocationChecks) {
      const ca = byFingerprint.get(fingerprintOf(Buffer.from(check.issuer.rawData)));
      if (!ca) continue;
      chainSerials.push({ caId: ca.id, serialNumber: check.serial });
      const revoked = await revokedSerialsAmong(db, [ca.id], [check.serial]);
      if (revoked.length > 0) {
        throw forbidden(
          'certificate_revoked_by_ca',
          `serial ${check.serial} was revoked by its CA "${ca.subject}" (CRL): this certificate can no longer enroll`,
        );
      }
    }
    const name = deviceNameOf(verified.leaf);
    if (!name) {
      throw forbidden(
        'device_name_missing',
        'the device certificate must carry exactly one subject CN: it is the device name',
      );
    }
    context.name = name;
    const attempt = () =>
      db
        .transaction()
        .execute((trx) =>
          enrollInTransaction(
            trx,
            chain.certificate,
            verified.anchor.identity_id,
            verified.anchor.fingerprint,
            name,
            remoteAddress,
            chainSerials,
            registration,
            verified.verifiedBy,
          ),
        );
    try {
      return await attempt();
    } catch (err) {
      if (isUniqueViolation(err)) return await attempt();
      throw err;
    }
  } catch (err) {
    if (err instanceof AppError && err.status < 500) {
      await insertAuditEvent(db, {
        action: 'device.enroll_refused',
        actor: 'device',
        identityId: context.identityId,
        fingerprint: chain.certificate.fingerprint,
        remoteAddress,
        details: {
          code: err.code,
          reason: err.message,
          ...(err.details?.reason ? { cause: err.details.reason } : {}),
          ...(chain.proxyVerdict ? { proxyVerify: chain.proxyVerdict.verify } : {}),
          ca: context.caFingerprint,
          name: context.name,
        },
      }).catch(() => undefined);
    }
    throw err;
  }
}

/**
 * The chain checked by fleetgate itself; behind nginx, when the device's
 * intermediate did not reach it, by nginx's verdict instead.
 */
async function verifyPresented(
  db: Kysely<Database>,
  chain: PresentedChain,
  anchors: AuthorityRow[],
): Promise<VerifiedChain> {
  try {
    return await verifyChain(chain.leafDer, chain.intermediates, anchors);
  } catch (err) {
    const incomplete =
      err instanceof AppError && err.code === 'chain_incomplete' && err.details?.missingIssuer;
    if (!incomplete || !chain.proxyVerdict) throw err;
    const expected = trustAnchorsDigest(
      await proxyTrustKey(db),
      anchors.map((a) => a.fingerprint),
    );
    return verifyByProxyVerdict(chain.leafDer, anchors, chain.proxyVerdict, expected, err);
  }
}

/**
 * Revocation of the intermediate nginx did not forward cannot be checked
 * here: while its anchor's CRL revokes anything, such a device is refused
 * rather than let through.
 */
async function refuseUnverifiableRevocation(
  db: Kysely<Database>,
  verified: VerifiedChain,
): Promise<void> {
  if (verified.verifiedBy !== 'proxy' || !(await hasRevokedSerials(db, verified.anchor.id))) return;
  throw new AppError(
    403,
    'chain_incomplete',
    `behind nginx only the device certificate reaches fleetgate, so it cannot check its ` +
      `intermediate "${verified.leaf.issuer}" against the CRL of "${verified.anchor.subject}", ` +
      'which revokes certificates: an administrator must trust that intermediate CA (fleetgate ca trust)',
    { missingIssuer: verified.leaf.issuer, reason: 'revocation_unverifiable' },
  );
}

async function enrollInTransaction(
  trx: Kysely<Database>,
  certificate: CertificateInfo,
  identityId: number,
  caFingerprint: string,
  name: string,
  remoteAddress: string | null,
  chainSerials: { caId: number; serialNumber: string }[],
  registration: EnrollRegistration,
  verifiedBy: 'fleetgate' | 'proxy',
): Promise<EnrollResult> {
  const identity = await lockIdentity(trx, identityId);
  if (identity.disabled_at)
    throw forbidden('identity_disabled', 'the identity of this CA is disabled');
  const open = (deviceId: number) =>
    startRegistration(trx, {
      deviceId,
      identityId,
      certificate,
      remoteAddress,
      lifetimeMs: registration!.lifetimeMs,
    });
  const existing = await findDeviceByFingerprint(trx, certificate.fingerprint);
  if (existing) {
    if (existing.identityId !== identityId) {
      throw conflict(
        'certificate_bound_elsewhere',
        'certificate is already bound to another identity',
      );
    }
    if (existing.revokedAt) throw forbidden('device_revoked', 'this device has been revoked');
    const result: EnrollResult = {
      status: 'already_bound',
      deviceId: existing.deviceId,
      identity: identity.name,
      name,
      boundAt: existing.boundAt,
    };
    if (!existing.pendingConfirmation) return result;
    if (!identity.require_confirmation) {
      await waiveConfirmation(
        trx,
        existing.deviceId,
        identityId,
        certificate.fingerprint,
        remoteAddress,
      );
      return result;
    }
    if (!registration) throw pendingConfirmation();
    // A device still waiting for its owner asks again: a new request replaces the old.
    return { ...result, registration: await open(existing.deviceId) };
  }
  if (identity.require_confirmation && !registration) throw pendingConfirmation();
  const nameRow = await findNameForUpdate(trx, identityId, name);
  if (nameRow?.status === 'active') {
    throw conflict(
      'device_name_taken',
      `device name ${name} is already in use by another certificate; renew through the device's rotation or an admin's fleetgate device replace-cert`,
    );
  }
  if (!nameRow?.preregistered && (await identityHasPreregisteredNames(trx, identityId))) {
    throw forbidden(
      'device_not_preregistered',
      `device name ${name} (the certificate's CN) is not pre-registered for this identity`,
    );
  }
  if (
    identity.max_devices !== null &&
    (await countLiveDevices(trx, identityId)) >= identity.max_devices
  ) {
    throw forbidden(
      'identity_device_limit',
      `identity ${identity.name} has reached its limit of ${identity.max_devices} devices`,
    );
  }
  const created = await insertDeviceWithCertificate(trx, {
    identityId,
    pskId: null,
    enrolledByCa: caFingerprint,
    boundFrom: remoteAddress,
    certificate,
    pendingConfirmation: identity.require_confirmation,
  });
  await activateName(trx, identityId, name, created.id);
  await insertDeviceChainSerials(trx, created.id, certificate.fingerprint, chainSerials);
  await dropPendingRotationsOfCertificate(trx, certificate.fingerprint, remoteAddress);
  await insertAuditEvent(trx, {
    action: 'device.enrolled',
    actor: 'device',
    identityId,
    deviceId: created.id,
    fingerprint: certificate.fingerprint,
    remoteAddress,
    details: {
      name,
      ca: caFingerprint,
      verifiedBy,
      subject: certificate.subject,
      serialNumber: certificate.serialNumber,
    },
  });
  return {
    status: 'enrolled',
    deviceId: created.id,
    identity: identity.name,
    name,
    boundAt: created.boundAt,
    ...(identity.require_confirmation ? { registration: await open(created.id) } : {}),
  };
}

function pendingConfirmation(): AppError {
  return forbidden(
    'device_pending_confirmation',
    "this identity requires its owner's confirmation: enroll with POST /device_endpoint {} to get a PIN, then complete the registration",
  );
}

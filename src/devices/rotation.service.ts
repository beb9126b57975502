import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Actor } from '../audit/actor.js';
import { insertAuditEvent } from '../audit/audit.repository.js';
import type { Database } from '../db/schema.js';
import { isUniqueViolation } from '../db/errors.js';
import { AppError, badRequest, conflict, forbidden, notFound } from '../http/app-error.js';
import { findIdentityById, findIdentityByName } from '../identities/identity.repository.js';
import {
  inspectCertificate,
  parsePemCertificate,
  type CertificateInfo,
} from '../tls/certificate-info.js';
import { assertAcceptableDeviceCertificate } from '../tls/device-certificate-policy.js';
import { decodeSignature, rotationMessage, verifyPossession } from '../tls/possession-proof.js';
import type { AuthenticatedDevice } from './device-auth.js';
import { emitDeviceEvent } from './device-events.js';
import { notifyDeviceEvent } from './device-events.repository.js';
import {
  findCertificate,
  insertActiveCertificate,
  lockDevice,
  retireOtherCertificates,
} from './device.repository.js';
import {
  deletePendingRotations,
  deleteRotationChallenges,
  findPendingRotationByCompletionHash,
  insertPendingRotation,
  listPendingRotations,
  takeRotationChallenge,
  upsertRotationChallenge,
  type PendingRotationOfDevice,
  type PendingRotationRow,
} from './rotation.repository.js';

/** How long a rotation challenge may be used. */
export const ROTATION_CHALLENGE_TTL_MS = 5 * 60_000;

const CHALLENGE_FORMAT = /^[A-Za-z0-9_-]{43}$/;
const SECRET_PREFIX = 'fgrot_';
const SECRET_FORMAT = /^fgrot_[A-Za-z0-9_-]{43}$/;

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest();

export interface RotationSettings {
  /** How long replaced certificates keep working after the completion. */
  graceMs: number;
  /** How long a proven rotation waits for its completion. */
  pendingTtlMs: number;
}

/** Step 1: a single-use challenge for the device's current certificate. */
export async function issueRotationChallenge(
  db: Kysely<Database>,
  current: AuthenticatedDevice,
  remoteAddress: string | null,
): Promise<{ challenge: string; expiresOn: Date }> {
  assertMayRotate(current);
  const challenge = randomBytes(32).toString('base64url');
  const expiresOn = new Date(Date.now() + ROTATION_CHALLENGE_TTL_MS);
  const deviceId = current.device.deviceId;
  await db.transaction().execute(async (trx) => {
    const device = await lockDevice(trx, deviceId);
    if (device.revoked_at) throw forbidden('device_revoked', 'this device has been revoked');
    await upsertRotationChallenge(trx, {
      deviceId,
      hash: sha256(challenge),
      presentedBy: current.certificate.fingerprint,
      expiresAt: expiresOn,
    });
    await insertAuditEvent(trx, {
      action: 'certificate.rotation_challenge_issued',
      actor: 'device',
      identityId: device.identity_id,
      deviceId,
      fingerprint: current.certificate.fingerprint,
      remoteAddress,
      details: { expiresOn: expiresOn.toISOString() },
    });
  });
  return { challenge, expiresOn };
}

export interface RotationProof {
  /** PEM of the new certificate. */
  certificate: string;
  challenge: string;
  /** base64 signature by the new key over rotationMessage(...). */
  signature: string;
}

export interface RotationRequest {
  status: 'pending';
  /** The certificate the device will present next. */
  fingerprint: string;
  /** The certificate it presented now, which the new one replaces. */
  replaces: string;
  notAfter: Date;
  /** Shown once: the new certificate completes the rotation with it. */
  completionSecret: string;
  /** The rotation is dropped unless completed by then. */
  expiresOn: Date;
}

/**
 * Step 2: the device, connected with its current certificate, proves that it
 * holds the key of the next one by signing the challenge, its current
 * fingerprint and the new fingerprint with the new key. The new certificate
 * is then pending: not yet a certificate of the device, invisible to binds
 * and uploads, until step 3 completes it with the secret answered here.
 */
export async function requestRotation(
  db: Kysely<Database>,
  current: AuthenticatedDevice,
  proof: RotationProof,
  settings: RotationSettings,
  remoteAddress: string | null,
): Promise<RotationRequest> {
  assertMayRotate(current);
  await expirePendingRotations(db);
  const deviceId = current.device.deviceId;
  const der = parsePemCertificate(proof.certificate);
  const next = inspectCertificate(der);
  try {
    assertAcceptableDeviceCertificate(next);
  } catch (err) {
    if (err instanceof AppError) throw badRequest('unacceptable_certificate', err.message);
    throw err;
  }
  if (next.fingerprint === current.certificate.fingerprint) {
    throw conflict('certificate_already_known', 'this is the certificate presented right now');
  }
  try {
    await consumeChallenge(db, current, proof.challenge);
    const signature = decodeSignature(proof.signature);
    const message = rotationMessage(
      proof.challenge,
      current.certificate.fingerprint,
      next.fingerprint,
    );
    if (!signature || !verifyPossession(der, message, signature)) {
      throw badRequest(
        'invalid_rotation_signature',
        "the signature is not a SHA-256 signature by the new certificate's key of " +
          '"fleetgate-rotation-v1:<challenge>:<current fingerprint>:<new fingerprint>"',
      );
    }
  } catch (err) {
    if (err instanceof AppError) {
      await recordRefusal(db, current, next, err, remoteAddress);
    }
    throw err;
  }

  const completionSecret = `${SECRET_PREFIX}${randomBytes(32).toString('base64url')}`;
  const expiresOn = new Date(Date.now() + settings.pendingTtlMs);
  await db.transaction().execute(async (trx) => {
    const device = await lockDevice(trx, deviceId);
    if (device.revoked_at) throw forbidden('device_revoked', 'this device has been revoked');
    if (await findCertificate(trx, next.fingerprint)) throw knownElsewhere();
    const replaced = await deletePendingRotations(trx, { deviceId });
    for (const old of replaced) {
      await auditDropped(trx, old, 'device', remoteAddress, 'replaced_by_new_request');
    }
    await insertPendingRotation(trx, {
      deviceId,
      certificate: next,
      replaces: current.certificate.fingerprint,
      completionHash: sha256(completionSecret),
      expiresAt: expiresOn,
    });
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
        expiresOn: expiresOn.toISOString(),
      },
    });
  });
  return {
    status: 'pending',
    fingerprint: next.fingerprint,
    replaces: current.certificate.fingerprint,
    notAfter: next.notAfter,
    completionSecret,
    expiresOn,
  };
}

export interface RotationCompletion {
  status: 'active';
  fingerprint: string;
  identity: string;
  replaces: string;
  /** When the replaced certificates stop (or stopped) being accepted. */
  previousCertificatesRetireAt: Date;
}

/**
 * Step 3: the new certificate, presented over mTLS (which proves its key once
 * more), carries the completion secret of its rotation. Only now does it join
 * the device; the replaced certificates retire now or after the grace period.
 */
export async function completeRotation(
  db: Kysely<Database>,
  presented: CertificateInfo,
  secret: string,
  settings: RotationSettings,
  remoteAddress: string | null,
): Promise<RotationCompletion> {
  const noMatch = () =>
    forbidden(
      'rotation_not_found',
      'no pending rotation matches this certificate and completion secret',
    );
  if (!SECRET_FORMAT.test(secret)) throw noMatch();
  const hash = sha256(secret);
  const found = await findPendingRotationByCompletionHash(db, hash, false);
  if (!found || found.fingerprint !== presented.fingerprint) throw noMatch();
  const retireAt = new Date(Date.now() + settings.graceMs);
  let outcome: 'completed' | 'expired' | 'known';
  let identity = '';
  let retired: string[] = [];
  try {
    outcome = await db.transaction().execute(async (trx) => {
      const device = await lockDevice(trx, found.device_id);
      const pending = await findPendingRotationByCompletionHash(trx, hash, true);
      if (!pending || pending.fingerprint !== presented.fingerprint) throw noMatch();
      if (device.revoked_at) throw forbidden('device_revoked', 'this device has been revoked');
      if (pending.expires_at.getTime() <= Date.now()) {
        await deletePendingRotations(trx, { id: pending.id });
        await auditExpired(trx, pending);
        return 'expired';
      }
      if (await findCertificate(trx, presented.fingerprint)) {
        await deletePendingRotations(trx, { id: pending.id });
        await auditDropped(trx, pending, 'device', remoteAddress, 'certificate_already_known');
        return 'known';
      }
      const owner = await findIdentityById(trx, device.identity_id);
      if (!owner || owner.disabled_at) {
        throw forbidden('identity_disabled', 'the identity of this device is disabled');
      }
      identity = owner.name;
      await deletePendingRotations(trx, { id: pending.id });
      await insertActiveCertificate(trx, device.id, presented);
      retired = await retireOtherCertificates(trx, device.id, presented.fingerprint, retireAt);
      // Without a grace period, the sessions the old certificates hold on any
      // node are closed at once; after one, the channels' poll closes them.
      await notifyDeviceEvent(trx, { event: 'certificates_refused', fingerprints: retired });
      await insertAuditEvent(trx, {
        action: 'certificate.activated',
        actor: 'device',
        identityId: device.identity_id,
        deviceId: device.id,
        fingerprint: presented.fingerprint,
        remoteAddress,
        details: {
          replaces: pending.replaces,
          previousCertificatesRetireAt: retireAt.toISOString(),
        },
      });
      return 'completed';
    });
  } catch (err) {
    // Bound by someone else at the same moment: the bind wins.
    if (!isUniqueViolation(err)) throw err;
    await db.transaction().execute(async (trx) => {
      for (const dropped of await deletePendingRotations(trx, { id: found.id })) {
        await auditDropped(trx, dropped, 'device', remoteAddress, 'certificate_already_known');
      }
    });
    outcome = 'known';
  }
  if (outcome === 'expired') {
    throw new AppError(410, 'rotation_expired', 'the rotation expired; start it again');
  }
  if (outcome === 'known') throw knownElsewhere();
  emitDeviceEvent({ event: 'certificates_refused', fingerprints: retired });
  return {
    status: 'active',
    fingerprint: presented.fingerprint,
    identity,
    replaces: found.replaces,
    previousCertificatesRetireAt: retireAt,
  };
}

/**
 * A bind or enrollment of a certificate always wins over rotations that wait
 * for it: they are dropped (in the bind's transaction) and audited.
 */
export async function dropPendingRotationsOfCertificate(
  db: Kysely<Database>,
  fingerprint: string,
  remoteAddress: string | null,
): Promise<void> {
  for (const dropped of await deletePendingRotations(db, { fingerprint })) {
    await auditDropped(db, dropped, 'device', remoteAddress, 'certificate_bound_by_enrollment');
  }
}

/** A revoked device rotates nothing: its challenge and pending rotation go, in its transaction. */
export async function dropRotationsOfDevice(
  db: Kysely<Database>,
  deviceId: number,
  actor: Actor,
): Promise<void> {
  await deleteRotationChallenges(db, { deviceId });
  for (const dropped of await deletePendingRotations(db, { deviceId })) {
    await auditDropped(db, dropped, actor.kind, actor.remoteAddress, 'device_revoked');
  }
}

/** Drops (and audits) every pending rotation and challenge past its time. */
export async function expirePendingRotations(db: Kysely<Database>): Promise<number> {
  const now = new Date();
  return db.transaction().execute(async (trx) => {
    await deleteRotationChallenges(trx, { expiredBefore: now });
    const expired = await deletePendingRotations(trx, { expiredBefore: now });
    for (const rotation of expired) await auditExpired(trx, rotation);
    return expired.length;
  });
}

export interface PendingRotationView {
  id: number;
  deviceId: number;
  identity: string;
  /** Fingerprint of the certificate that requested it (the device's current one). */
  replaces: string;
  fingerprint: string;
  subject: string;
  issuer: string;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  requestedAt: Date;
  expiresAt: Date;
}

export interface PendingRotationPage {
  rotations: PendingRotationView[];
  nextCursor: string | null;
}

export async function listRotations(
  db: Kysely<Database>,
  options: { identity?: string; limit: number; after?: number },
): Promise<PendingRotationPage> {
  await expirePendingRotations(db);
  let identityId: number | undefined;
  if (options.identity !== undefined) {
    const identity = await findIdentityByName(db, options.identity);
    if (!identity) throw notFound('identity_not_found', `no identity named ${options.identity}`);
    identityId = identity.id;
  }
  const rows = await listPendingRotations(db, {
    identityId,
    afterId: options.after ?? 0,
    limit: options.limit + 1,
  });
  const more = rows.length > options.limit;
  const page = more ? rows.slice(0, options.limit) : rows;
  return {
    rotations: page.map((r) => pendingRotationView(r, r.identity)),
    nextCursor: more ? String(page[page.length - 1]!.id) : null,
  };
}

/** The pending rotation of one device, if any (for the device view). */
export async function pendingRotationOfDevice(
  db: Kysely<Database>,
  deviceId: number,
): Promise<PendingRotationRow | undefined> {
  const [row] = await listPendingRotations(db, { deviceIds: [deviceId], afterId: 0, limit: 1 });
  return row && row.expires_at.getTime() > Date.now() ? row : undefined;
}

/**
 * The unexpired pending rotations of a page of devices, by device id: one
 * query for the page (a device has at most one), not one per device.
 */
export async function pendingRotationsOfDevices(
  db: Kysely<Database>,
  deviceIds: readonly number[],
): Promise<Map<number, PendingRotationRow>> {
  const rows = await listPendingRotations(db, { deviceIds, afterId: 0, limit: deviceIds.length });
  const now = Date.now();
  return new Map(rows.filter((r) => r.expires_at.getTime() > now).map((r) => [r.device_id, r]));
}

/** An operator cancels a pending rotation; the device's current certificate stays. */
export async function cancelRotation(
  db: Kysely<Database>,
  id: number,
  reason: string | null,
  actor: Actor,
): Promise<PendingRotationView> {
  return db.transaction().execute(async (trx) => {
    const [cancelled] = await deletePendingRotations(trx, { id });
    if (!cancelled) throw notFound('rotation_not_found', `no pending rotation has the id ${id}`);
    const identity = await findIdentityById(trx, cancelled.identity_id);
    await insertAuditEvent(trx, {
      action: 'certificate.rotation_cancelled',
      actor: actor.kind,
      identityId: cancelled.identity_id,
      deviceId: cancelled.device_id,
      fingerprint: cancelled.fingerprint,
      remoteAddress: actor.remoteAddress,
      details: {
        rotationId: cancelled.id,
        replaces: cancelled.replaces,
        ...(reason ? { reason } : {}),
      },
    });
    return pendingRotationView(cancelled, identity?.name ?? '');
  });
}

function pendingRotationView(r: PendingRotationRow, identity: string): PendingRotationView {
  return {
    id: r.id,
    deviceId: r.device_id,
    identity,
    replaces: r.replaces,
    fingerprint: r.fingerprint,
    subject: r.subject,
    issuer: r.issuer,
    serialNumber: r.serial_number,
    notBefore: r.not_before,
    notAfter: r.not_after,
    requestedAt: r.requested_at,
    expiresAt: r.expires_at,
  };
}

/** During a grace period only the newest certificate may rotate again. */
function assertMayRotate(current: AuthenticatedDevice): void {
  if (current.device.certificateState !== 'active') {
    throw forbidden(
      'certificate_retiring',
      'this certificate has been replaced; rotate from the current certificate',
    );
  }
}

async function consumeChallenge(
  db: Kysely<Database>,
  current: AuthenticatedDevice,
  challenge: string,
): Promise<void> {
  const invalid = (why: string) => badRequest('invalid_rotation_challenge', why);
  if (!CHALLENGE_FORMAT.test(challenge)) {
    throw invalid('the challenge is not one fleetgate issued');
  }
  const taken = await takeRotationChallenge(db, current.device.deviceId, sha256(challenge));
  if (!taken) {
    throw invalid(
      'unknown or already used challenge: get a new one from POST /device_endpoint/rotate/challenge',
    );
  }
  if (taken.presented_by !== current.certificate.fingerprint) {
    throw invalid('the challenge was issued to another certificate of this device');
  }
  if (taken.expires_at.getTime() <= Date.now()) {
    throw invalid('the challenge expired: get a new one');
  }
}

const knownElsewhere = () =>
  conflict('certificate_already_known', 'this certificate is already known to fleetgate');

async function recordRefusal(
  db: Kysely<Database>,
  current: AuthenticatedDevice,
  next: CertificateInfo,
  err: AppError,
  remoteAddress: string | null,
): Promise<void> {
  await insertAuditEvent(db, {
    action: 'certificate.rotation_refused',
    actor: 'device',
    identityId: current.device.identityId,
    deviceId: current.device.deviceId,
    fingerprint: next.fingerprint,
    remoteAddress,
    details: { code: err.code, presentedBy: current.certificate.fingerprint },
  }).catch(() => undefined);
}

async function auditDropped(
  db: Kysely<Database>,
  rotation: PendingRotationOfDevice,
  actor: Actor['kind'],
  remoteAddress: string | null,
  reason: string,
): Promise<void> {
  await insertAuditEvent(db, {
    action: 'certificate.rotation_dropped',
    actor,
    identityId: rotation.identity_id,
    deviceId: rotation.device_id,
    fingerprint: rotation.fingerprint,
    remoteAddress,
    details: { rotationId: rotation.id, replaces: rotation.replaces, reason },
  });
}

async function auditExpired(
  db: Kysely<Database>,
  rotation: PendingRotationOfDevice,
): Promise<void> {
  await insertAuditEvent(db, {
    action: 'certificate.rotation_expired',
    actor: 'server',
    identityId: rotation.identity_id,
    deviceId: rotation.device_id,
    fingerprint: rotation.fingerprint,
    details: {
      rotationId: rotation.id,
      replaces: rotation.replaces,
      expiredAt: rotation.expires_at.toISOString(),
    },
  });
}

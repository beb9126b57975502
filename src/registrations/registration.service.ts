import type { Kysely } from 'kysely';
import type { Actor } from '../audit/actor.js';
import { insertAuditEvent } from '../audit/audit.repository.js';
import type { Database } from '../db/schema.js';
import {
  findDeviceByFingerprint,
  setDevicePendingConfirmation,
} from '../devices/device.repository.js';
import { AppError, badRequest, conflict, forbidden, notFound } from '../http/app-error.js';
import { findIdentityById } from '../identities/identity.repository.js';
import { requireIdentity } from '../identities/identity.service.js';
import type { CertificateInfo } from '../tls/certificate-info.js';
import {
  insertRegistration,
  listPendingOfIdentity,
  lockConfirmableOfIdentity,
  lockPendingOfDevice,
  lockRegistrationByRid,
  updateRegistration,
  type RegistrationRow,
} from './registration.repository.js';
import {
  generateNonce,
  generatePin,
  generateRid,
  hashNonce,
  hashPin,
  normalisePin,
  PIN_LENGTH,
  sameHash,
  serialLast4,
} from './registration-secrets.js';
import { isPending, MAX_FAILED_CONFIRMATIONS, nextStatus } from './registration-states.js';

/** The 202 answer of a bind or enrollment that waits for its owner; shown once. */
export interface StartedRegistration {
  status: 'PENDING_USER_CONFIRMATION';
  rid: string;
  pin: string;
  nonce: string;
  /** Epoch milliseconds. */
  expiresOn: number;
}

/** What a device learns about its request. */
export interface RegistrationStatusView {
  status: RegistrationRow['status'];
  rid: string;
  expiresOn: number;
  fingerprint?: string;
  identity?: string;
  registeredAt?: string;
}

/** What an owner sees of a pending request (never its PIN, nonce or serial). */
export interface PendingRegistrationView {
  rid: string;
  status: RegistrationRow['status'];
  deviceId: number;
  fingerprint: string;
  requestedAt: string;
  requestedFrom: string | null;
  expiresOn: number;
  failedAttempts: number;
}

/** A late PIN still hears "expired" or "revoked" for this long after the end. */
const ENDED_RECENTLY_MS = 24 * 3_600_000;
const RID_PATTERN = /^[0-9a-f]{32}$/;

/**
 * Opens a registration request for a device that is known but waits for its
 * owner, in the caller's transaction (the bind's or the enrollment's). Any
 * earlier pending request of the device is revoked: the newest one wins.
 */
export async function startRegistration(
  trx: Kysely<Database>,
  request: {
    deviceId: number;
    identityId: number;
    certificate: CertificateInfo;
    remoteAddress: string | null;
    lifetimeMs: number;
  },
): Promise<StartedRegistration> {
  for (const earlier of await lockPendingOfDevice(trx, request.deviceId)) {
    await endRegistration(trx, earlier, 'revoke', 'replaced by a newer request', {
      kind: 'device',
      remoteAddress: request.remoteAddress,
    });
  }
  const rid = generateRid();
  const pin = generatePin();
  const nonce = generateNonce();
  const expiresAt = new Date(Date.now() + request.lifetimeMs);
  await insertRegistration(trx, {
    deviceId: request.deviceId,
    rid,
    identityId: request.identityId,
    fingerprint: request.certificate.fingerprint,
    serialLast4: serialLast4(request.certificate.serialNumber),
    pinHash: hashPin(rid, pin),
    nonceHash: hashNonce(nonce),
    requestedFrom: request.remoteAddress,
    expiresAt,
  });
  await insertAuditEvent(trx, {
    action: 'registration.requested',
    actor: 'device',
    identityId: request.identityId,
    deviceId: request.deviceId,
    fingerprint: request.certificate.fingerprint,
    remoteAddress: request.remoteAddress,
    details: { rid, expiresAt: expiresAt.toISOString() },
  });
  return { status: 'PENDING_USER_CONFIRMATION', rid, pin, nonce, expiresOn: expiresAt.getTime() };
}

/**
 * The identity no longer requires confirmation: a pending device bound again
 * is let in, and its open requests are revoked.
 */
export async function waiveConfirmation(
  trx: Kysely<Database>,
  deviceId: number,
  identityId: number,
  fingerprint: string,
  remoteAddress: string | null,
): Promise<void> {
  const actor: Actor = { kind: 'device', remoteAddress };
  for (const open of await lockPendingOfDevice(trx, deviceId)) {
    await endRegistration(trx, open, 'revoke', 'confirmation no longer required', actor);
  }
  await setDevicePendingConfirmation(trx, deviceId, false);
  await insertAuditEvent(trx, {
    action: 'registration.waived',
    actor: 'device',
    identityId,
    deviceId,
    fingerprint,
    remoteAddress,
    details: { reason: 'the identity no longer requires confirmation' },
  });
}

/** GET /device_endpoint/registrations/:rid/status */
export async function registrationStatus(
  db: Kysely<Database>,
  rid: string,
  certificate: CertificateInfo,
): Promise<RegistrationStatusView> {
  const row = await db.transaction().execute(async (trx) => {
    const found = await ownRegistration(trx, rid, certificate);
    return expireIfLapsed(trx, found);
  });
  return statusView(db, row);
}

/** PUT /device_endpoint/registrations/:rid: the device ends its registration with the nonce. */
export async function completeRegistration(
  db: Kysely<Database>,
  rid: string,
  nonce: string,
  certificate: CertificateInfo,
  remoteAddress: string | null,
): Promise<RegistrationStatusView> {
  const row = await commitThenThrow(db, async (trx) => {
    const found = await expireIfLapsed(trx, await ownRegistration(trx, rid, certificate));
    if (!sameHash(hashNonce(nonce), found.nonce_hash)) {
      return forbidden('invalid_nonce', 'the nonce is not the one of this registration request');
    }
    const refusal = endedRefusal(found);
    if (refusal) return refusal;
    if (found.status === 'REGISTERED') return found;
    if (found.status === 'PENDING_USER_CONFIRMATION') {
      return conflict(
        'registration_pending_user_confirmation',
        'the owner has not confirmed this request yet: poll its status and complete once it is PENDING_DEVICE_COMPLETION',
      );
    }
    const device = await findDeviceByFingerprint(trx, certificate.fingerprint);
    if (!device || device.revokedAt)
      return forbidden('device_revoked', 'this device has been revoked');
    const done = await updateRegistration(trx, found, {
      status: nextStatus(found.status, 'complete')!,
      completed_at: new Date(),
    });
    await setDevicePendingConfirmation(trx, found.device_id, false);
    await audit(trx, 'registration.completed', done, { kind: 'device', remoteAddress });
    return done;
  });
  return statusView(db, row);
}

/** The owner's confirmation: admin API, CLI and dashboard all come here. */
export async function confirmRegistration(
  db: Kysely<Database>,
  identityName: string,
  typedPin: string,
  typedSerial: string,
  actor: Actor,
): Promise<PendingRegistrationView> {
  const pin = normalisePin(typedPin);
  if (pin.length !== PIN_LENGTH) {
    throw badRequest('invalid_pin', `the PIN has ${PIN_LENGTH} characters`);
  }
  if (!/^[0-9a-fA-F]{4}$/.test(typedSerial)) {
    throw badRequest(
      'invalid_serial',
      "serialLast4 is the last 4 hex digits of the device certificate's serial number",
    );
  }
  const serial = typedSerial.toLowerCase();
  const row = await commitThenThrow(db, async (trx) => {
    const identity = await requireIdentity(trx, identityName);
    const since = new Date(Date.now() - ENDED_RECENTLY_MS);
    const rows: RegistrationRow[] = [];
    for (const r of await lockConfirmableOfIdentity(trx, identity.id, since)) {
      rows.push(await expireIfLapsed(trx, r));
    }
    const pinMatches = (r: RegistrationRow) => sameHash(hashPin(r.rid, pin), r.pin_hash);
    const exact = rows.find((r) => pinMatches(r) && r.serial_last4 === serial);
    if (exact) {
      const refusal = endedRefusal(exact);
      if (refusal) return refusal;
      if (exact.status !== 'PENDING_USER_CONFIRMATION') {
        return conflict(
          'registration_already_confirmed',
          'this request is already confirmed; the device completes it now',
        );
      }
      const confirmed = await updateRegistration(trx, exact, {
        status: nextStatus(exact.status, 'confirm')!,
        confirmed_at: new Date(),
        confirmed_by: actor.kind,
        confirmed_from: actor.remoteAddress,
      });
      await audit(trx, 'registration.confirmed', confirmed, actor);
      return confirmed;
    }
    // A wrong PIN or serial counts against each waiting request it half matches.
    const attempted = rows.filter(
      (r) =>
        r.status === 'PENDING_USER_CONFIRMATION' && (pinMatches(r) || r.serial_last4 === serial),
    );
    let attemptsLeft: number | null = null;
    for (const r of attempted) {
      const failed = r.failed_attempts + 1;
      const counted = await updateRegistration(trx, r, { failed_attempts: failed });
      if (failed >= MAX_FAILED_CONFIRMATIONS) {
        await endRegistration(trx, counted, 'revoke', 'too many wrong PINs or serials', actor);
      } else {
        await audit(trx, 'registration.confirmation_refused', counted, actor, {
          failedAttempts: failed,
        });
      }
      attemptsLeft = Math.min(attemptsLeft ?? Infinity, MAX_FAILED_CONFIRMATIONS - failed);
    }
    return new AppError(
      400,
      'wrong_pin_or_serial',
      attemptsLeft === 0
        ? 'the PIN or serial digits are wrong; after too many wrong attempts the request is revoked and the device must start a new one'
        : 'the PIN or the last 4 digits of the serial number do not match a pending registration request of this identity',
      attemptsLeft === null ? undefined : { attemptsLeft },
    );
  });
  return pendingView(row);
}

/** The requests of an identity that wait for its owner or its device. */
export async function listPendingRegistrations(
  db: Kysely<Database>,
  identityName: string,
): Promise<PendingRegistrationView[]> {
  const identity = await requireIdentity(db, identityName);
  await db.transaction().execute(async (trx) => {
    const since = new Date(Date.now() - ENDED_RECENTLY_MS);
    for (const r of await lockConfirmableOfIdentity(trx, identity.id, since)) {
      await expireIfLapsed(trx, r);
    }
  });
  return (await listPendingOfIdentity(db, identity.id)).map(pendingView);
}

/** 404 for an unknown request, 403 for another certificate's. */
async function ownRegistration(
  trx: Kysely<Database>,
  rid: string,
  certificate: CertificateInfo,
): Promise<RegistrationRow> {
  const row = RID_PATTERN.test(rid) ? await lockRegistrationByRid(trx, rid) : undefined;
  if (!row) throw notFound('registration_not_found', 'no registration request with this rid');
  if (row.fingerprint !== certificate.fingerprint) {
    throw forbidden(
      'registration_of_another_certificate',
      'this registration request belongs to another certificate',
    );
  }
  return row;
}

/** Expiry is applied when a request is next looked at; the change is audited then. */
async function expireIfLapsed(trx: Kysely<Database>, row: RegistrationRow) {
  if (!isPending(row.status) || row.expires_at.getTime() > Date.now()) return row;
  return endRegistration(trx, row, 'expire', 'not completed in time', {
    kind: 'server',
    remoteAddress: null,
  });
}

async function endRegistration(
  trx: Kysely<Database>,
  row: RegistrationRow,
  event: 'expire' | 'revoke',
  reason: string,
  actor: Actor,
): Promise<RegistrationRow> {
  const ended = await updateRegistration(trx, row, {
    status: nextStatus(row.status, event)!,
    ended_at: new Date(),
    ended_reason: reason,
  });
  await audit(
    trx,
    event === 'expire' ? 'registration.expired' : 'registration.revoked',
    ended,
    actor,
    {
      reason,
    },
  );
  return ended;
}

function endedRefusal(row: RegistrationRow): AppError | null {
  if (row.status === 'EXPIRED') {
    return new AppError(
      410,
      'registration_expired',
      `this registration request expired at ${row.expires_at.toISOString()}; the device must start a new one`,
    );
  }
  if (row.status === 'REVOKED') {
    return conflict(
      'registration_revoked',
      `this registration request was revoked (${row.ended_reason ?? 'replaced'}); the device must start a new one`,
    );
  }
  return null;
}

/**
 * Runs a state change whose refusal must still be kept (a counted wrong PIN,
 * an expiry): the transaction commits what it did, then the refusal is thrown.
 */
async function commitThenThrow(
  db: Kysely<Database>,
  work: (trx: Kysely<Database>) => Promise<RegistrationRow | AppError>,
): Promise<RegistrationRow> {
  const outcome = await db.transaction().execute(work);
  if (outcome instanceof AppError) throw outcome;
  return outcome;
}

function audit(
  trx: Kysely<Database>,
  action: string,
  row: RegistrationRow,
  actor: Actor,
  details: Record<string, unknown> = {},
) {
  return insertAuditEvent(trx, {
    action,
    actor: actor.kind,
    identityId: row.identity_id,
    deviceId: row.device_id,
    fingerprint: row.fingerprint,
    remoteAddress: actor.remoteAddress,
    details: { rid: row.rid, status: row.status, ...details },
  });
}

async function statusView(
  db: Kysely<Database>,
  row: RegistrationRow,
): Promise<RegistrationStatusView> {
  const view: RegistrationStatusView = {
    status: row.status,
    rid: row.rid,
    expiresOn: row.expires_at.getTime(),
  };
  if (row.status !== 'REGISTERED') return view;
  const identity = await findIdentityById(db, row.identity_id);
  return {
    ...view,
    fingerprint: row.fingerprint,
    identity: identity?.name ?? '',
    registeredAt: (row.completed_at ?? new Date()).toISOString(),
  };
}

function pendingView(row: RegistrationRow): PendingRegistrationView {
  return {
    rid: row.rid,
    status: row.status,
    deviceId: row.device_id,
    fingerprint: row.fingerprint,
    requestedAt: row.requested_at.toISOString(),
    requestedFrom: row.requested_from,
    expiresOn: row.expires_at.getTime(),
    failedAttempts: row.failed_attempts,
  };
}

import type { Kysely, Selectable, Updateable } from 'kysely';
import type { Database, RegistrationStatus, RegistrationTable } from '../db/schema.js';

export type RegistrationRow = Selectable<RegistrationTable>;

export interface NewRegistration {
  deviceId: number;
  rid: string;
  identityId: number;
  fingerprint: string;
  serialLast4: string;
  pinHash: Buffer;
  nonceHash: Buffer;
  requestedFrom: string | null;
  expiresAt: Date;
}

export async function insertRegistration(
  db: Kysely<Database>,
  r: NewRegistration,
): Promise<RegistrationRow> {
  return db
    .insertInto('registrations')
    .values({
      device_id: r.deviceId,
      rid: r.rid,
      identity_id: r.identityId,
      fingerprint: r.fingerprint,
      serial_last4: r.serialLast4,
      pin_hash: r.pinHash,
      nonce_hash: r.nonceHash,
      status: 'PENDING_USER_CONFIRMATION',
      requested_from: r.requestedFrom,
      expires_at: r.expiresAt,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

const PENDING: RegistrationStatus[] = ['PENDING_USER_CONFIRMATION', 'PENDING_DEVICE_COMPLETION'];

/** The pending requests of one device, locked: a new request replaces them. */
export async function lockPendingOfDevice(
  db: Kysely<Database>,
  deviceId: number,
): Promise<RegistrationRow[]> {
  return db
    .selectFrom('registrations')
    .selectAll()
    .where('device_id', '=', deviceId)
    .where('status', 'in', PENDING)
    .forUpdate()
    .execute();
}

/** One request by its id, locked for a state change. */
export async function lockRegistrationByRid(
  db: Kysely<Database>,
  rid: string,
): Promise<RegistrationRow | undefined> {
  return db
    .selectFrom('registrations')
    .selectAll()
    .where('rid', '=', rid)
    .forUpdate()
    .executeTakeFirst();
}

/**
 * The requests of an identity an owner may still be confirming: pending ones,
 * and recent ended ones (so a late PIN hears "expired" rather than "wrong").
 */
export async function lockConfirmableOfIdentity(
  db: Kysely<Database>,
  identityId: number,
  endedSince: Date,
): Promise<RegistrationRow[]> {
  return db
    .selectFrom('registrations')
    .selectAll()
    .where('identity_id', '=', identityId)
    .where((eb) =>
      eb.or([
        eb('status', 'in', PENDING),
        eb.and([eb('status', 'in', ['EXPIRED', 'REVOKED']), eb('ended_at', '>=', endedSince)]),
      ]),
    )
    .orderBy('requested_at', 'desc')
    .orderBy('rid')
    .forUpdate()
    .execute();
}

/** Pending requests of an identity, oldest first. */
export async function listPendingOfIdentity(
  db: Kysely<Database>,
  identityId: number,
): Promise<RegistrationRow[]> {
  return db
    .selectFrom('registrations')
    .selectAll()
    .where('identity_id', '=', identityId)
    .where('status', 'in', PENDING)
    .orderBy('requested_at')
    .orderBy('rid')
    .execute();
}

export async function updateRegistration(
  db: Kysely<Database>,
  row: Pick<RegistrationRow, 'device_id' | 'rid'>,
  changes: Updateable<RegistrationTable>,
): Promise<RegistrationRow> {
  return db
    .updateTable('registrations')
    .set(changes)
    .where('device_id', '=', row.device_id)
    .where('rid', '=', row.rid)
    .returningAll()
    .executeTakeFirstOrThrow();
}

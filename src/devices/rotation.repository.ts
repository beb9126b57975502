import type { Kysely, Selectable } from 'kysely';
import type { Database, PendingRotationTable } from '../db/schema.js';
import type { CertificateFields } from './device.repository.js';

export type PendingRotationRow = Selectable<PendingRotationTable>;

/** A pending rotation with what the audit log and the admin API need of its device. */
export interface PendingRotationOfDevice extends PendingRotationRow {
  identity_id: number;
}

/** Replaces the device's outstanding challenge, if any. */
export async function upsertRotationChallenge(
  db: Kysely<Database>,
  challenge: { deviceId: number; hash: Buffer; presentedBy: string; expiresAt: Date },
): Promise<void> {
  await db
    .insertInto('rotation_challenges')
    .values({
      device_id: challenge.deviceId,
      challenge_hash: challenge.hash,
      presented_by: challenge.presentedBy,
      expires_at: challenge.expiresAt,
    })
    .onConflict((oc) =>
      oc.column('device_id').doUpdateSet({
        challenge_hash: challenge.hash,
        presented_by: challenge.presentedBy,
        issued_at: new Date(),
        expires_at: challenge.expiresAt,
      }),
    )
    .execute();
}

/** Single use: the challenge is deleted as it is read. */
export async function takeRotationChallenge(
  db: Kysely<Database>,
  deviceId: number,
  hash: Buffer,
): Promise<{ presented_by: string; expires_at: Date } | undefined> {
  return db
    .deleteFrom('rotation_challenges')
    .where('device_id', '=', deviceId)
    .where('challenge_hash', '=', hash)
    .returning(['presented_by', 'expires_at'])
    .executeTakeFirst();
}

export async function deleteRotationChallenges(
  db: Kysely<Database>,
  filter: { deviceId: number } | { expiredBefore: Date },
): Promise<void> {
  let query = db.deleteFrom('rotation_challenges');
  query =
    'deviceId' in filter
      ? query.where('device_id', '=', filter.deviceId)
      : query.where('expires_at', '<=', filter.expiredBefore);
  await query.execute();
}

export async function insertPendingRotation(
  db: Kysely<Database>,
  rotation: {
    deviceId: number;
    certificate: CertificateFields;
    replaces: string;
    completionHash: Buffer;
    expiresAt: Date;
  },
): Promise<PendingRotationRow> {
  const cert = rotation.certificate;
  return db
    .insertInto('pending_rotations')
    .values({
      device_id: rotation.deviceId,
      fingerprint: cert.fingerprint,
      subject: cert.subject,
      issuer: cert.issuer,
      serial_number: cert.serialNumber,
      not_before: cert.notBefore,
      not_after: cert.notAfter,
      replaces: rotation.replaces,
      completion_hash: rotation.completionHash,
      expires_at: rotation.expiresAt,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/**
 * Deletes pending rotations and returns them with their device's identity:
 * those of one device, one by id, those of a certificate (on any device), or
 * every expired one.
 */
export async function deletePendingRotations(
  db: Kysely<Database>,
  filter: { deviceId: number } | { id: number } | { fingerprint: string } | { expiredBefore: Date },
): Promise<PendingRotationOfDevice[]> {
  let query = db
    .deleteFrom('pending_rotations as p')
    .using('devices as d')
    .whereRef('d.id', '=', 'p.device_id');
  if ('deviceId' in filter) query = query.where('p.device_id', '=', filter.deviceId);
  else if ('id' in filter) query = query.where('p.id', '=', filter.id);
  else if ('fingerprint' in filter) query = query.where('p.fingerprint', '=', filter.fingerprint);
  else query = query.where('p.expires_at', '<=', filter.expiredBefore);
  return query
    .returning([
      'p.id',
      'p.device_id',
      'p.fingerprint',
      'p.subject',
      'p.issuer',
      'p.serial_number',
      'p.not_before',
      'p.not_after',
      'p.replaces',
      'p.completion_hash',
      'p.requested_at',
      'p.expires_at',
      'd.identity_id',
    ])
    .execute();
}

/** The pending rotation a completion secret belongs to, locked for the completion. */
export async function findPendingRotationByCompletionHash(
  db: Kysely<Database>,
  hash: Buffer,
  lock: boolean,
): Promise<PendingRotationOfDevice | undefined> {
  // The device first, then the lock on its shard: Citus locks rows only in a
  // query that names the distribution column (one shard).
  const found = await db
    .selectFrom('pending_rotations')
    .select('device_id')
    .where('completion_hash', '=', hash)
    .executeTakeFirst();
  if (!found) return undefined;
  const query = db
    .selectFrom('pending_rotations as p')
    .innerJoin('devices as d', 'd.id', 'p.device_id')
    .selectAll('p')
    .select('d.identity_id')
    .where('p.device_id', '=', found.device_id)
    .where('d.id', '=', found.device_id)
    .where('p.completion_hash', '=', hash);
  return (lock ? query.forUpdate('p') : query).executeTakeFirst();
}

export interface PendingRotationListRow extends PendingRotationRow {
  identity: string;
}

/** Pending rotations in id order after `afterId`, of one identity or all. */
export async function listPendingRotations(
  db: Kysely<Database>,
  filter: { identityId?: number; deviceIds?: readonly number[]; afterId: number; limit: number },
): Promise<PendingRotationListRow[]> {
  let query = db
    .selectFrom('pending_rotations as p')
    .innerJoin('devices as d', 'd.id', 'p.device_id')
    .innerJoin('identities as i', 'i.id', 'd.identity_id')
    .selectAll('p')
    .select('i.name as identity')
    .where('p.id', '>', filter.afterId);
  if (filter.identityId !== undefined) query = query.where('d.identity_id', '=', filter.identityId);
  if (filter.deviceIds !== undefined) {
    if (filter.deviceIds.length === 0) return [];
    query = query.where('p.device_id', 'in', filter.deviceIds);
  }
  return query.orderBy('p.id').limit(filter.limit).execute();
}

import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

/** What a request needs to know about the device behind a certificate. */
export interface DeviceByCertificate {
  deviceId: number;
  identityId: number;
  identityName: string;
  boundAt: Date;
  revokedAt: Date | null;
  identityDisabledAt: Date | null;
}

export async function findDeviceByFingerprint(
  db: Kysely<Database>,
  fingerprint: string,
): Promise<DeviceByCertificate | undefined> {
  const row = await db
    .selectFrom('device_certificates as c')
    .innerJoin('devices as d', 'd.id', 'c.device_id')
    .innerJoin('identities as i', 'i.id', 'd.identity_id')
    .select([
      'd.id as deviceId',
      'd.identity_id as identityId',
      'i.name as identityName',
      'd.bound_at as boundAt',
      'd.revoked_at as revokedAt',
      'i.disabled_at as identityDisabledAt',
    ])
    .where('c.fingerprint', '=', fingerprint)
    .executeTakeFirst();
  return row;
}

export interface NewDevice {
  identityId: number;
  pskId: number;
  boundFrom: string | null;
  certificate: {
    fingerprint: string;
    subject: string;
    issuer: string;
    serialNumber: string;
    notBefore: Date;
    notAfter: Date;
  };
}

/** Inserts the device and its first certificate; the caller holds the transaction. */
export async function insertDeviceWithCertificate(
  db: Kysely<Database>,
  device: NewDevice,
): Promise<{ id: number; boundAt: Date }> {
  const { id, bound_at: boundAt } = await db
    .insertInto('devices')
    .values({ identity_id: device.identityId, psk_id: device.pskId, bound_from: device.boundFrom })
    .returning(['id', 'bound_at'])
    .executeTakeFirstOrThrow();
  const cert = device.certificate;
  await db
    .insertInto('device_certificates')
    .values({
      fingerprint: cert.fingerprint,
      device_id: id,
      subject: cert.subject,
      issuer: cert.issuer,
      serial_number: cert.serialNumber,
      not_before: cert.notBefore,
      not_after: cert.notAfter,
    })
    .execute();
  return { id, boundAt };
}

export async function touchLastSeen(db: Kysely<Database>, deviceId: number): Promise<void> {
  await db
    .updateTable('devices')
    .set({ last_seen_at: new Date() })
    .where('id', '=', deviceId)
    .execute();
}

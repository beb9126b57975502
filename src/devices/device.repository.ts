import { CompiledQuery, sql, type Kysely, type Selectable } from 'kysely';
import { onCitus } from '../db/citus-mode.js';
import { prepareOnPostgres } from '../db/prepared-statements.js';
import type { CertificateInfo } from '../tls/certificate-info.js';
import type {
  CertificateState,
  Database,
  DeviceCertificateTable,
  DeviceTable,
} from '../db/schema.js';

/** What a request needs to know about the device behind a certificate. */
export interface DeviceByCertificate {
  deviceId: number;
  identityId: number;
  identityName: string;
  boundAt: Date;
  revokedAt: Date | null;
  identityDisabledAt: Date | null;
  certificateState: CertificateState;
  /** For a retired certificate: when it stops (or stopped) being accepted. */
  certificateRetiredAt: Date | null;
  /**
   * For a device enrolled by CA: a serial of this certificate's chain that a
   * loaded CRL of its CA lists (the first found), else null.
   */
  revokedByCaSerial: string | null;
  /** Waiting for its owner's confirmation (issue 12): refused until registered. */
  pendingConfirmation: boolean;
}

export async function findDeviceByFingerprint(
  db: Kysely<Database>,
  fingerprint: string,
): Promise<DeviceByCertificate | undefined> {
  if (onCitus()) {
    // On Citus, the device first (one shard of certificate_fingerprints), so
    // that the lookup below reads the device's shard instead of every shard.
    const owner = await db
      .selectFrom('certificate_fingerprints')
      .select('device_id')
      .where('fingerprint', '=', fingerprint)
      .executeTakeFirst();
    if (!owner) return undefined;
    return deviceByFingerprint(db, fingerprint, owner.device_id)
      .where('c.device_id', '=', owner.device_id)
      .where('d.id', '=', owner.device_id)
      .executeTakeFirst();
  }
  // Asked on every request of every device: the query (with its CRL subquery) is
  // built once per database handle, and only the fingerprint changes.
  let compiled = compiledLookups.get(db);
  if (!compiled) {
    compiled = deviceByFingerprint(db, FINGERPRINT_SLOT).compile();
    compiledLookups.set(db, compiled);
    // Planned once per connection on PostgreSQL, not on every request.
    prepareOnPostgres('fleetgate_device_by_fingerprint', compiled.sql);
  }
  const slot = compiled.parameters.indexOf(FINGERPRINT_SLOT);
  if (slot < 0 || compiled.parameters.lastIndexOf(FINGERPRINT_SLOT) !== slot) {
    return deviceByFingerprint(db, fingerprint).executeTakeFirst();
  }
  const parameters = [...compiled.parameters];
  parameters[slot] = fingerprint;
  const result = await db.executeQuery<DeviceByCertificate>({ ...compiled, parameters });
  return result.rows[0];
}

/** Stands for the fingerprint in the compiled lookup (never a real one: not hex). */
const FINGERPRINT_SLOT = 'fingerprint-slot:not-a-fingerprint';
const compiledLookups = new WeakMap<Kysely<Database>, CompiledQuery<DeviceByCertificate>>();

/** `deviceId`, when known (Citus), keeps every part of the lookup on the device's shard. */
function deviceByFingerprint(db: Kysely<Database>, fingerprint: string, deviceId?: number) {
  return db
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
      'c.state as certificateState',
      'c.retired_at as certificateRetiredAt',
      (eb) =>
        eb
          .selectFrom('device_chain_serials as s')
          .innerJoin('ca_revoked_serials as r', (join) =>
            join.onRef('r.ca_id', '=', 's.ca_id').onRef('r.serial_number', '=', 's.serial_number'),
          )
          .select('s.serial_number')
          .whereRef('s.device_id', '=', 'd.id')
          // Citus prunes a correlated subquery to one shard only with its own constant.
          .$if(deviceId !== undefined, (q) => q.where('s.device_id', '=', deviceId!))
          .whereRef('s.fingerprint', '=', 'c.fingerprint')
          .limit(1)
          .as('revokedByCaSerial'),
      'd.pending_confirmation as pendingConfirmation',
    ])
    .where('c.fingerprint', '=', fingerprint);
}

export interface NewDevice {
  identityId: number;
  /** Null for a device enrolled by certificate chain (then enrolledByCa is set). */
  pskId: number | null;
  enrolledByCa?: string | null;
  boundFrom: string | null;
  certificate: CertificateFields;
  /** Created waiting for its owner's confirmation. */
  pendingConfirmation?: boolean;
}

/** Inserts the device and its first certificate; the caller holds the transaction. */
export async function insertDeviceWithCertificate(
  db: Kysely<Database>,
  device: NewDevice,
): Promise<{ id: number; boundAt: Date }> {
  const { id, bound_at: boundAt } = await db
    .insertInto('devices')
    .values({
      identity_id: device.identityId,
      psk_id: device.pskId,
      enrolled_by_ca: device.enrolledByCa ?? null,
      bound_from: device.boundFrom,
      pending_confirmation: device.pendingConfirmation ?? false,
    })
    .returning(['id', 'bound_at'])
    .executeTakeFirstOrThrow();
  const cert = device.certificate;
  await claimFingerprint(db, id, cert.fingerprint);
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
      activated_at: new Date(),
    })
    .execute();
  return { id, boundAt };
}

export async function setDevicePendingConfirmation(
  db: Kysely<Database>,
  deviceId: number,
  pending: boolean,
): Promise<void> {
  await db
    .updateTable('devices')
    .set({ pending_confirmation: pending })
    .where('id', '=', deviceId)
    .execute();
}

export async function touchLastSeen(db: Kysely<Database>, deviceId: number): Promise<void> {
  await db
    .updateTable('devices')
    .set({ last_seen_at: new Date() })
    .where('id', '=', deviceId)
    .execute();
}

/**
 * Takes the device's next server time (epoch ms) for a message without `ts`:
 * `nowMs`, or one millisecond after the last one the device was given when
 * that is not earlier, recorded on the device's row. The update holds the row
 * lock, so two nodes (or two requests of one node) asking at once are served
 * one after the other and never get the same time. Its own statement, never
 * inside an upload's transaction: the lock lasts one statement and the time
 * is taken whether or not the batch is stored later. Integer milliseconds:
 * Citus refuses an UPDATE that calls a STABLE function (timestamptz +
 * interval) on a column. Undefined when there is no such device.
 */
export async function takeServerTime(
  db: Kysely<Database>,
  deviceId: number,
  nowMs: number,
): Promise<number | undefined> {
  const result = await db.executeQuery<{ ms: string }>(
    CompiledQuery.raw(TAKE_SERVER_TIME, [deviceId, nowMs]),
  );
  const row = result.rows[0];
  return row === undefined ? undefined : Number(row.ms);
}

const TAKE_SERVER_TIME = `
  update devices set last_server_time_ms = greatest($2::bigint, devices.last_server_time_ms + 1)
  where devices.id = $1
  returning devices.last_server_time_ms::text as ms`;
// Asked for every message without ts: planned once per connection on PostgreSQL.
prepareOnPostgres('fleetgate_take_server_time', TAKE_SERVER_TIME);

/**
 * Locks the device's row until the end of the transaction, at the strength
 * `touchLastSeen` takes anyway (no key update), so an upload that ends with
 * it never waits for itself.
 */
export async function lockDeviceForUpload(db: Kysely<Database>, deviceId: number): Promise<void> {
  await db.selectFrom('devices').select('id').where('id', '=', deviceId).forNoKeyUpdate().execute();
}

export type DeviceRow = Selectable<DeviceTable>;
export type CertificateRow = Selectable<DeviceCertificateTable>;

export async function findDeviceById(
  db: Kysely<Database>,
  deviceId: number,
): Promise<DeviceRow | undefined> {
  return db.selectFrom('devices').selectAll().where('id', '=', deviceId).executeTakeFirst();
}

/** Row lock that serialises rotation, activation and revocation of one device. */
export async function lockDevice(db: Kysely<Database>, deviceId: number): Promise<DeviceRow> {
  return db
    .selectFrom('devices')
    .selectAll()
    .where('id', '=', deviceId)
    .forUpdate()
    .executeTakeFirstOrThrow();
}

/** One page of an identity's devices, in binding order, after a device id. */
export async function listDevicesOfIdentity(
  db: Kysely<Database>,
  identityId: number,
  afterId: number,
  limit: number,
): Promise<DeviceRow[]> {
  return db
    .selectFrom('devices')
    .selectAll()
    .where('identity_id', '=', identityId)
    .where('id', '>', afterId)
    .orderBy('id')
    .limit(limit)
    .execute();
}

/** One page of all devices of the fleet, in binding order, after a device id; optionally only live or revoked ones. */
export async function listDevicesOfFleet(
  db: Kysely<Database>,
  afterId: number,
  limit: number,
  status?: 'live' | 'revoked',
): Promise<DeviceRow[]> {
  let query = db.selectFrom('devices').selectAll().where('id', '>', afterId);
  if (status === 'live') query = query.where('revoked_at', 'is', null);
  if (status === 'revoked') query = query.where('revoked_at', 'is not', null);
  return query.orderBy('id').limit(limit).execute();
}

export async function listCertificatesOfDevices(
  db: Kysely<Database>,
  deviceIds: readonly number[],
): Promise<CertificateRow[]> {
  if (deviceIds.length === 0) return [];
  return db
    .selectFrom('device_certificates')
    .selectAll()
    .where('device_id', 'in', deviceIds)
    .orderBy('added_at')
    .orderBy('fingerprint')
    .execute();
}

export async function findCertificate(
  db: Kysely<Database>,
  fingerprint: string,
): Promise<CertificateRow | undefined> {
  return db
    .selectFrom('device_certificates')
    .selectAll()
    .where('fingerprint', '=', fingerprint)
    .executeTakeFirst();
}

/** Devices that count against an identity's limit: every one not revoked. */
export async function countLiveDevices(db: Kysely<Database>, identityId: number): Promise<number> {
  const row = await db
    .selectFrom('devices')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('identity_id', '=', identityId)
    .where('revoked_at', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

export async function markDeviceRevoked(
  db: Kysely<Database>,
  deviceId: number,
  reason: string | null,
): Promise<void> {
  await db
    .updateTable('devices')
    .set({ revoked_at: new Date(), revoked_reason: reason })
    .where('id', '=', deviceId)
    .execute();
}

export type CertificateFields = Pick<
  CertificateInfo,
  'fingerprint' | 'subject' | 'issuer' | 'serialNumber' | 'notBefore' | 'notAfter'
>;

/**
 * A fingerprint belongs to one device for good. device_certificates is keyed
 * by (fingerprint, device_id), as a table distributed by device must be, so
 * this table (distributed by fingerprint on Citus) is what makes a second
 * device with the same certificate a unique violation (23505), as before.
 */
async function claimFingerprint(
  db: Kysely<Database>,
  deviceId: number,
  fingerprint: string,
): Promise<void> {
  await db
    .insertInto('certificate_fingerprints')
    .values({ fingerprint, device_id: deviceId })
    .execute();
}

/** A certificate that completed a rotation joins its device, active from now. */
export async function insertActiveCertificate(
  db: Kysely<Database>,
  deviceId: number,
  cert: CertificateFields,
): Promise<void> {
  await claimFingerprint(db, deviceId, cert.fingerprint);
  await db
    .insertInto('device_certificates')
    .values({
      fingerprint: cert.fingerprint,
      device_id: deviceId,
      subject: cert.subject,
      issuer: cert.issuer,
      serial_number: cert.serialNumber,
      not_before: cert.notBefore,
      not_after: cert.notAfter,
      state: 'active',
      activated_at: new Date(),
    })
    .execute();
}

/**
 * Retires every certificate of the device but `keep` as of `retireAt` (now,
 * or the end of the grace period); one already retiring keeps its earlier end.
 * Returns those of them no longer accepted now (all of them when `retireAt`
 * is now; none retired by this call when it is later).
 */
export async function retireOtherCertificates(
  db: Kysely<Database>,
  deviceId: number,
  keep: string,
  retireAt: Date,
): Promise<string[]> {
  const rows = await db
    .updateTable('device_certificates')
    .set({
      state: 'retired',
      retired_at: sql<Date>`least(coalesce(retired_at, ${retireAt}), ${retireAt})`,
    })
    .where('device_id', '=', deviceId)
    .where('fingerprint', '<>', keep)
    .returning(['fingerprint', 'retired_at'])
    .execute();
  const now = Date.now();
  return rows
    .filter((row) => row.retired_at !== null && row.retired_at.getTime() <= now)
    .map((row) => row.fingerprint);
}

/**
 * Of the given certificates, those no longer accepted (what
 * requireActiveCertificate refuses): the device revoked, its identity
 * disabled, the certificate retired past its grace period, or a serial of its
 * chain on its CA's CRL. One query for every open long-lived connection,
 * which is held by a certificate, not by a device.
 */
export async function findRefusedCertificates(
  db: Kysely<Database>,
  fingerprints: readonly string[],
  now = new Date(),
): Promise<string[]> {
  if (fingerprints.length === 0) return [];
  const rows = await db
    .selectFrom('device_certificates as c')
    .innerJoin('devices as d', 'd.id', 'c.device_id')
    .innerJoin('identities as i', 'i.id', 'd.identity_id')
    .select('c.fingerprint')
    .where('c.fingerprint', 'in', [...fingerprints])
    .where((eb) =>
      eb.or([
        eb('d.revoked_at', 'is not', null),
        eb('i.disabled_at', 'is not', null),
        eb.and([
          eb('c.state', '=', 'retired'),
          eb.or([eb('c.retired_at', 'is', null), eb('c.retired_at', '<=', now)]),
        ]),
        eb.exists(
          eb
            .selectFrom('device_chain_serials as s')
            .innerJoin('ca_revoked_serials as r', (join) =>
              join
                .onRef('r.ca_id', '=', 's.ca_id')
                .onRef('r.serial_number', '=', 's.serial_number'),
            )
            .select('s.serial_number')
            .whereRef('s.device_id', '=', 'd.id')
            .whereRef('s.fingerprint', '=', 'c.fingerprint'),
        ),
      ]),
    )
    .execute();
  return rows.map((row) => row.fingerprint);
}

import { randomBytes } from 'node:crypto';
import { sql, type Kysely, type Selectable } from 'kysely';
import type { CertificateAuthorityTable, Database } from '../db/schema.js';

export type AuthorityRow = Selectable<CertificateAuthorityTable>;

export interface NewAuthority {
  identityId: number;
  fingerprint: string;
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  certificatePem: string;
}

export async function insertAuthority(
  db: Kysely<Database>,
  ca: NewAuthority,
): Promise<AuthorityRow> {
  return db
    .insertInto('certificate_authorities')
    .values({
      identity_id: ca.identityId,
      fingerprint: ca.fingerprint,
      subject: ca.subject,
      issuer: ca.issuer,
      not_before: ca.notBefore,
      not_after: ca.notAfter,
      certificate_pem: ca.certificatePem,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findAuthorityByFingerprint(
  db: Kysely<Database>,
  fingerprint: string,
): Promise<AuthorityRow | undefined> {
  return db
    .selectFrom('certificate_authorities')
    .selectAll()
    .where('fingerprint', '=', fingerprint)
    .executeTakeFirst();
}

/**
 * The anchors with this subject, the subject locked for the transaction: a
 * CA re-issued with the same name and key is the same issuer to a chain, so
 * two identities trusting it at once must take turns.
 */
export async function lockAuthoritiesWithSubject(
  db: Kysely<Database>,
  subject: string,
): Promise<AuthorityRow[]> {
  await sql`select pg_advisory_xact_lock(hashtext(${'fleetgate.ca_subject:' + subject}))`.execute(
    db,
  );
  return db
    .selectFrom('certificate_authorities')
    .selectAll()
    .where('subject', '=', subject)
    .orderBy('id')
    .execute();
}

export async function listAuthoritiesOfIdentity(
  db: Kysely<Database>,
  identityId: number,
): Promise<(AuthorityRow & { revokedSerials: number })[]> {
  return db
    .selectFrom('certificate_authorities as a')
    .selectAll('a')
    .select((eb) =>
      eb
        .selectFrom('ca_revoked_serials as r')
        .whereRef('r.ca_id', '=', 'a.id')
        .select(sql<number>`count(*)::int`.as('n'))
        .as('revokedSerials'),
    )
    .where('a.identity_id', '=', identityId)
    .orderBy('a.id')
    .execute() as Promise<(AuthorityRow & { revokedSerials: number })[]>;
}

/** Every trust anchor of every identity: the candidates a presented chain may end at. */
export async function listAllAuthorities(db: Kysely<Database>): Promise<AuthorityRow[]> {
  return db.selectFrom('certificate_authorities').selectAll().orderBy('id').execute();
}

export async function deleteAuthority(db: Kysely<Database>, id: number): Promise<void> {
  await db.deleteFrom('certificate_authorities').where('id', '=', id).execute();
}

/** Replaces the CA's revoked serials with those of a newer CRL. */
export async function replaceRevokedSerials(
  db: Kysely<Database>,
  caId: number,
  crl: { thisUpdate: Date; nextUpdate: Date | null },
  serials: { serialNumber: string; revokedAt: Date }[],
): Promise<void> {
  await db.deleteFrom('ca_revoked_serials').where('ca_id', '=', caId).execute();
  for (let i = 0; i < serials.length; i += 1000) {
    await db
      .insertInto('ca_revoked_serials')
      .values(
        serials.slice(i, i + 1000).map((s) => ({
          ca_id: caId,
          serial_number: s.serialNumber,
          revoked_at: s.revokedAt,
        })),
      )
      .onConflict((oc) => oc.doNothing())
      .execute();
  }
  await db
    .updateTable('certificate_authorities')
    .set({ crl_this_update: crl.thisUpdate, crl_next_update: crl.nextUpdate })
    .where('id', '=', caId)
    .execute();
}

/**
 * The device certificates a serial on the CA's loaded CRL refuses (through
 * the chain serials recorded at bind). Retired ones included: harmless.
 */
export async function certificatesRevokedByCa(
  db: Kysely<Database>,
  caId: number,
): Promise<string[]> {
  const rows = await db
    .selectFrom('device_chain_serials as s')
    .innerJoin('ca_revoked_serials as r', (join) =>
      join.onRef('r.ca_id', '=', 's.ca_id').onRef('r.serial_number', '=', 's.serial_number'),
    )
    .select('s.fingerprint')
    .distinct()
    .where('s.ca_id', '=', caId)
    .execute();
  return rows.map((row) => row.fingerprint);
}

export async function revokedSerialsAmong(
  db: Kysely<Database>,
  caIds: number[],
  serials: string[],
): Promise<{ caId: number; serialNumber: string }[]> {
  if (caIds.length === 0 || serials.length === 0) return [];
  return db
    .selectFrom('ca_revoked_serials')
    .select(['ca_id as caId', 'serial_number as serialNumber'])
    .where('ca_id', 'in', caIds)
    .where('serial_number', 'in', serials)
    .execute();
}

/** The key of the CA digest behind nginx, created on first use (by whichever node is first). */
export async function proxyTrustKey(db: Kysely<Database>): Promise<Buffer> {
  await db
    .insertInto('proxy_trust_key')
    .values({ key: randomBytes(32) })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
  const row = await db.selectFrom('proxy_trust_key').select('key').executeTakeFirstOrThrow();
  return row.key;
}

/** Whether the CA's loaded CRL revokes anything at all. */
export async function hasRevokedSerials(db: Kysely<Database>, caId: number): Promise<boolean> {
  const row = await db
    .selectFrom('ca_revoked_serials')
    .select('ca_id')
    .where('ca_id', '=', caId)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

/** Records the chain serials of a device's certificate that registered CAs issued (per-request CRL checks). */
export async function insertDeviceChainSerials(
  db: Kysely<Database>,
  deviceId: number,
  fingerprint: string,
  serials: { caId: number; serialNumber: string }[],
): Promise<void> {
  if (serials.length === 0) return;
  await db
    .insertInto('device_chain_serials')
    .values(
      serials.map((s) => ({
        device_id: deviceId,
        fingerprint,
        ca_id: s.caId,
        serial_number: s.serialNumber,
      })),
    )
    .onConflict((oc) => oc.doNothing())
    .execute();
}

import type { Kysely } from 'kysely';
import { insertAuditEvent } from '../audit/audit.repository.js';
import type { Actor } from '../audit/actor.js';
import type { Database } from '../db/schema.js';
import { emitDeviceEvent, type DeviceEvent } from '../devices/device-events.js';
import { notifyDeviceEvent } from '../devices/device-events.repository.js';
import { isUniqueViolation } from '../db/errors.js';
import { AppError, badRequest, conflict, notFound } from '../http/app-error.js';
import { lockIdentity } from '../identities/identity.repository.js';
import { requireIdentity } from '../identities/identity.service.js';
import {
  certificatesRevokedByCa,
  deleteAuthority,
  findAuthorityByFingerprint,
  insertAuthority,
  listAllAuthorities,
  listAuthoritiesOfIdentity,
  lockAuthoritiesWithSubject,
  proxyTrustKey,
  replaceRevokedSerials,
  type AuthorityRow,
} from './authority.repository.js';
import { trustAnchorsDigest } from './chain.js';
import {
  caProblem,
  normaliseSerial,
  parseCertificate,
  samePublicKey,
  summarize,
} from './ca-certificates.js';
import { x509 } from './x509.js';

export interface AuthorityView {
  fingerprint: string;
  identity: string;
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  /** Where enrolled devices get their name: the subject CN. */
  nameFrom: 'cn';
  addedAt: Date;
  crlThisUpdate: Date | null;
  crlNextUpdate: Date | null;
  revokedSerials: number;
  certificatePem: string;
}

function view(row: AuthorityRow, identity: string, revokedSerials = 0): AuthorityView {
  return {
    fingerprint: row.fingerprint,
    identity,
    subject: row.subject,
    issuer: row.issuer,
    notBefore: row.not_before,
    notAfter: row.not_after,
    nameFrom: row.name_from,
    addedAt: row.added_at,
    crlThisUpdate: row.crl_this_update,
    crlNextUpdate: row.crl_next_update,
    revokedSerials,
    certificatePem: row.certificate_pem,
  };
}

export function normaliseCaFingerprint(fingerprint: string): string {
  const fp = fingerprint.replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(fp)) {
    throw badRequest('invalid_fingerprint', 'a fingerprint is 64 hex digits (SHA-256)');
  }
  return fp;
}

const belongsElsewhere = () =>
  conflict(
    'ca_belongs_to_other_identity',
    'this CA is a trust anchor of another identity; a CA belongs to one identity only',
  );

/**
 * Registers a CA certificate (root or intermediate) as a trust anchor of the
 * identity. Trusting the same CA again for the same identity changes nothing.
 */
export async function trustAuthority(
  db: Kysely<Database>,
  identityName: string,
  pem: string,
  actor: Actor,
): Promise<{ status: 'trusted' | 'exists'; authority: AuthorityView }> {
  const cert = parseCertificate(pem);
  const problem = caProblem(cert);
  if (problem)
    throw badRequest('not_a_ca_certificate', `this certificate cannot be a CA: ${problem}`);
  const summary = summarize(cert);
  if (summary.notAfter.getTime() <= Date.now()) {
    throw badRequest(
      'ca_certificate_expired',
      `the CA certificate expired on ${summary.notAfter.toISOString()}`,
    );
  }
  const attempt = () =>
    db.transaction().execute(async (trx) => {
      const identity = await requireIdentity(trx, identityName);
      await lockIdentity(trx, identity.id);
      const existing = await findAuthorityByFingerprint(trx, summary.fingerprint);
      if (existing) {
        if (existing.identity_id !== identity.id) throw belongsElsewhere();
        return { status: 'exists' as const, authority: view(existing, identity.name) };
      }
      // The same CA re-issued (same name and key, another fingerprint) signs the same
      // devices: trusted by a second identity, its devices would land in whichever came first.
      for (const twin of await lockAuthoritiesWithSubject(trx, summary.subject)) {
        if (twin.identity_id !== identity.id && samePublicKey(twin.certificate_pem, cert)) {
          throw belongsElsewhere();
        }
      }
      const row = await insertAuthority(trx, {
        identityId: identity.id,
        fingerprint: summary.fingerprint,
        subject: summary.subject,
        issuer: summary.issuer,
        notBefore: summary.notBefore,
        notAfter: summary.notAfter,
        certificatePem: summary.pem,
      });
      await insertAuditEvent(trx, {
        action: 'ca.trusted',
        actor: actor.kind,
        identityId: identity.id,
        fingerprint: summary.fingerprint,
        remoteAddress: actor.remoteAddress,
        details: { subject: summary.subject, notAfter: summary.notAfter.toISOString() },
      });
      return { status: 'trusted' as const, authority: view(row, identity.name) };
    });
  try {
    return await attempt();
  } catch (err) {
    // Two identities raced for one CA: the loser sees the winner's row.
    if (isUniqueViolation(err)) return attempt();
    throw err;
  }
}

export async function listAuthorities(
  db: Kysely<Database>,
  identityName: string,
): Promise<AuthorityView[]> {
  const identity = await requireIdentity(db, identityName);
  const rows = await listAuthoritiesOfIdentity(db, identity.id);
  return rows.map((r) => view(r, identity.name, r.revokedSerials));
}

async function requireOwnAuthority(
  db: Kysely<Database>,
  identityId: number,
  fingerprint: string,
): Promise<AuthorityRow> {
  const row = await findAuthorityByFingerprint(db, normaliseCaFingerprint(fingerprint));
  if (!row) throw notFound('ca_not_found', 'no CA with this fingerprint is trusted');
  if (row.identity_id !== identityId) throw belongsElsewhere();
  return row;
}

/** Stops new enrollments through the CA; devices it admitted keep working. */
export async function removeAuthority(
  db: Kysely<Database>,
  identityName: string,
  fingerprint: string,
  actor: Actor,
): Promise<AuthorityView> {
  return db.transaction().execute(async (trx) => {
    const identity = await requireIdentity(trx, identityName);
    const row = await requireOwnAuthority(trx, identity.id, fingerprint);
    await deleteAuthority(trx, row.id);
    await insertAuditEvent(trx, {
      action: 'ca.removed',
      actor: actor.kind,
      identityId: identity.id,
      fingerprint: row.fingerprint,
      remoteAddress: actor.remoteAddress,
      details: { subject: row.subject },
    });
    return view(row, identity.name);
  });
}

function parseCrl(input: string): x509.X509Crl {
  try {
    const block = input.match(/-----BEGIN X509 CRL-----[\s\S]*?-----END X509 CRL-----/);
    if (block) return new x509.X509Crl(block[0]);
    return new x509.X509Crl(new Uint8Array(Buffer.from(input.replace(/\s+/g, ''), 'base64')));
  } catch (err) {
    throw badRequest('invalid_crl', `not an X.509 CRL in PEM or DER: ${(err as Error).message}`);
  }
}

/**
 * Loads a CRL issued by one of the identity's CAs (checked by its signature);
 * its serials replace those of the CA's previous CRL. An older CRL than the
 * one loaded is refused, so a replayed CRL cannot un-revoke a device.
 */
export async function loadCrl(
  db: Kysely<Database>,
  identityName: string,
  crlText: string,
  actor: Actor,
): Promise<{ authority: AuthorityView; revokedSerials: number }> {
  const crl = parseCrl(crlText);
  const identity = await requireIdentity(db, identityName);
  const candidates = (await listAuthoritiesOfIdentity(db, identity.id)).filter(
    (ca) => ca.subject === crl.issuer,
  );
  let issuer: AuthorityRow | undefined;
  for (const ca of candidates) {
    const caCert = new x509.X509Certificate(ca.certificate_pem);
    if (await crl.verify({ publicKey: caCert.publicKey }).catch(() => false)) issuer = ca;
  }
  if (!issuer) {
    throw badRequest(
      'crl_issuer_unknown',
      `the CRL of "${crl.issuer}" is not signed by a CA trusted by identity ${identity.name}`,
    );
  }
  const ca = issuer;
  const serials = crl.entries.map((e) => ({
    serialNumber: normaliseSerial(e.serialNumber),
    revokedAt: e.revocationDate,
  }));
  const loaded = await db.transaction().execute(async (trx) => {
    await lockIdentity(trx, identity.id);
    const current = await findAuthorityByFingerprint(trx, ca.fingerprint);
    if (!current) throw notFound('ca_not_found', 'the CA was removed meanwhile');
    if (current.crl_this_update && current.crl_this_update.getTime() > crl.thisUpdate.getTime()) {
      throw new AppError(
        409,
        'crl_outdated',
        `a newer CRL (thisUpdate ${current.crl_this_update.toISOString()}) is already loaded`,
      );
    }
    await replaceRevokedSerials(
      trx,
      current.id,
      { thisUpdate: crl.thisUpdate, nextUpdate: crl.nextUpdate ?? null },
      serials,
    );
    await insertAuditEvent(trx, {
      action: 'ca.crl_loaded',
      actor: actor.kind,
      identityId: identity.id,
      fingerprint: current.fingerprint,
      remoteAddress: actor.remoteAddress,
      details: { revokedSerials: serials.length, thisUpdate: crl.thisUpdate.toISOString() },
    });
    // The sessions the certificates it revokes hold on any node are closed at once.
    const news: DeviceEvent = {
      event: 'certificates_refused',
      fingerprints: await certificatesRevokedByCa(trx, current.id),
    };
    await notifyDeviceEvent(trx, news);
    const updated = (await findAuthorityByFingerprint(trx, ca.fingerprint))!;
    return {
      news,
      result: {
        authority: view(updated, identity.name, serials.length),
        revokedSerials: serials.length,
      },
    };
  });
  emitDeviceEvent(loaded.news);
  return loaded.result;
}

/**
 * Every registered CA of every identity as one PEM bundle: what nginx verifies
 * device chains with behind a proxy (`fleetgate nginx-config` renders it), and
 * the keyed digest nginx forwards with its verdict.
 */
export async function deviceTrustBundle(
  db: Kysely<Database>,
): Promise<{ pem: string; digest: string }> {
  const authorities = await listAllAuthorities(db);
  return {
    pem: authorities.map((a) => `${a.certificate_pem.trim()}\n`).join(''),
    digest: trustAnchorsDigest(
      await proxyTrustKey(db),
      authorities.map((a) => a.fingerprint),
    ),
  };
}

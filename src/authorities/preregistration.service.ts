import type { Kysely } from 'kysely';
import { insertAuditEvent } from '../audit/audit.repository.js';
import type { Actor } from '../audit/actor.js';
import type { Database } from '../db/schema.js';
import { badRequest, conflict } from '../http/app-error.js';
import { requireIdentity } from '../identities/identity.service.js';
import { findAuthorityByFingerprint } from './authority.repository.js';
import { preregisterNames } from './device-name.repository.js';
import { normaliseMac } from './mac-address.js';

/**
 * Pre-registers device names (normalised MACs) for an identity; names already
 * there are left alone and reported as existing. With `caFingerprint`, the CA
 * that will issue their certificates must be trusted by the identity.
 */
export async function preregisterDevices(
  db: Kysely<Database>,
  identityName: string,
  macs: string[],
  actor: Actor,
  options: { caFingerprint?: string; batch?: string } = {},
): Promise<{ created: string[]; existing: string[] }> {
  const names = macs.map((m) => {
    const mac = normaliseMac(m);
    if (!mac) throw badRequest('invalid_mac', `"${m}" is not a MAC address`);
    return mac;
  });
  return db.transaction().execute(async (trx) => {
    const identity = await requireIdentity(trx, identityName);
    if (options.caFingerprint) {
      const ca = await findAuthorityByFingerprint(trx, options.caFingerprint);
      if (!ca || ca.identity_id !== identity.id) {
        throw conflict(
          'ca_not_trusted_by_identity',
          `the CA in --ca-dir is not a trusted CA of ${identity.name} (fleetgate ca trust ${identity.name} ca.crt)`,
        );
      }
    }
    const created = await preregisterNames(trx, identity.id, names);
    await insertAuditEvent(trx, {
      action: options.batch ? 'devices.provisioned' : 'devices.preregistered',
      actor: actor.kind,
      identityId: identity.id,
      fingerprint: options.caFingerprint ?? null,
      remoteAddress: actor.remoteAddress,
      details: { names: names.length, created: created.size, batch: options.batch ?? null },
    });
    return {
      created: names.filter((n) => created.has(n)),
      existing: names.filter((n) => !created.has(n)),
    };
  });
}

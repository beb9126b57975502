import type { Kysely } from 'kysely';
import { insertAuditEvent } from '../audit/audit.repository.js';
import { CLI_ACTOR, type Actor } from '../audit/actor.js';
import { badRequest, conflict, notFound } from '../http/app-error.js';
import type { Database } from '../db/schema.js';
import { findIdentityById } from '../identities/identity.repository.js';
import { assertDeviceLimit, requireIdentity } from '../identities/identity.service.js';
import { displayPrefixOf, generatePskSecret, hashPskSecret } from './psk-secret.js';
import {
  insertPsk,
  listPsksOfIdentity,
  lockPsk,
  markPskRevoked,
  type PskRow,
} from './psk.repository.js';

export interface IssuePskOptions {
  maxDevices?: number;
  expiresInMs?: number;
  /** Binds exactly one device, then is used up (the same as a limit of 1). */
  singleUse?: boolean;
  /** Who asks, for the audit log; the CLI when not said. */
  actor?: Actor;
}

export interface IssuedPsk {
  /** Shown once to the caller; only its hash is stored. */
  secret: string;
  psk: PskView;
}

/** What an admin may see of a PSK: never the secret, only its first characters. */
export interface PskView {
  id: number;
  identity: string;
  prefix: string;
  status: 'active' | 'revoked' | 'expired' | 'used_up';
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
  /** Devices bound with this PSK so far. */
  uses: number;
  /** Null: no limit of its own (the identity's limit still applies). */
  maxDevices: number | null;
  singleUse: boolean;
}

export async function issuePsk(
  db: Kysely<Database>,
  identityName: string,
  options: IssuePskOptions = {},
): Promise<IssuedPsk> {
  const actor = options.actor ?? CLI_ACTOR;
  assertDeviceLimit(options.maxDevices);
  if (options.singleUse && options.maxDevices !== undefined && options.maxDevices !== 1) {
    throw badRequest('invalid_max_devices', 'a single-use PSK binds exactly one device');
  }
  const maxDevices = options.singleUse ? 1 : (options.maxDevices ?? null);
  const secret = generatePskSecret();
  const psk = await db.transaction().execute(async (trx) => {
    const identity = await requireIdentity(trx, identityName);
    const row = await insertPsk(trx, {
      identity_id: identity.id,
      secret_hash: hashPskSecret(secret),
      prefix: displayPrefixOf(secret),
      max_devices: maxDevices,
      single_use: options.singleUse ?? false,
      expires_at: options.expiresInMs ? new Date(Date.now() + options.expiresInMs) : null,
      revoked_at: null,
    });
    await insertAuditEvent(trx, {
      action: 'psk.issued',
      actor: actor.kind,
      identityId: identity.id,
      pskId: row.id,
      remoteAddress: actor.remoteAddress,
      details: {
        prefix: row.prefix,
        maxDevices,
        expiresAt: row.expires_at,
        singleUse: row.single_use,
      },
    });
    return row;
  });
  return { secret, psk: pskView(psk, identityName) };
}

export async function listPsks(db: Kysely<Database>, identityName: string): Promise<PskView[]> {
  const identity = await requireIdentity(db, identityName);
  const rows = await listPsksOfIdentity(db, identity.id);
  return rows.map((row) => pskView(row, identity.name));
}

/** Permanent. Devices already bound with the PSK keep working: they no longer need it. */
export async function revokePsk(db: Kysely<Database>, id: number, actor: Actor): Promise<PskView> {
  if (!Number.isSafeInteger(id) || id < 1)
    throw badRequest('invalid_psk_id', 'a PSK id is a positive integer');
  const revoked = await db.transaction().execute(async (trx) => {
    const psk = await lockPsk(trx, id);
    if (!psk) throw notFound('psk_not_found', `no PSK with id ${id}`);
    if (psk.revoked_at) throw conflict('psk_already_revoked', `PSK ${id} is already revoked`);
    const row = await markPskRevoked(trx, id);
    await insertAuditEvent(trx, {
      action: 'psk.revoked',
      actor: actor.kind,
      identityId: row.identity_id,
      pskId: row.id,
      remoteAddress: actor.remoteAddress,
      details: { prefix: row.prefix },
    });
    return row;
  });
  const identity = await findIdentityById(db, revoked.identity_id);
  return pskView(revoked, identity?.name ?? '');
}

/** Why a PSK cannot bind a new device right now, or null when it can. */
export function pskRefusal(psk: PskRow, now: Date): string | null {
  if (psk.revoked_at) return 'PSK has been revoked';
  if (psk.expires_at && psk.expires_at.getTime() <= now.getTime()) return 'PSK has expired';
  return null;
}

export function pskExhausted(psk: PskRow): boolean {
  return psk.max_devices !== null && psk.devices_bound >= psk.max_devices;
}

function pskView(row: PskRow, identity: string): PskView {
  const now = new Date();
  return {
    id: row.id,
    identity,
    prefix: row.prefix,
    status: row.revoked_at
      ? 'revoked'
      : row.expires_at && row.expires_at <= now
        ? 'expired'
        : pskExhausted(row)
          ? 'used_up'
          : 'active',
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    uses: row.devices_bound,
    maxDevices: row.max_devices,
    singleUse: row.single_use,
  };
}

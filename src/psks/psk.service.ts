import type { Kysely } from 'kysely';
import { badRequest } from '../http/app-error.js';
import type { Database } from '../db/schema.js';
import { requireIdentity } from '../identities/identity.service.js';
import { displayPrefixOf, generatePskSecret, hashPskSecret } from './psk-secret.js';
import { insertPsk, type PskRow } from './psk.repository.js';

export interface IssuePskOptions {
  maxDevices?: number;
  expiresInMs?: number;
}

export interface IssuedPsk {
  /** Shown once to the caller; only its hash is stored. */
  secret: string;
  psk: PskRow;
}

export async function issuePsk(
  db: Kysely<Database>,
  identityName: string,
  options: IssuePskOptions = {},
): Promise<IssuedPsk> {
  if (
    options.maxDevices !== undefined &&
    !(Number.isInteger(options.maxDevices) && options.maxDevices > 0)
  ) {
    throw badRequest('invalid_max_devices', 'max devices must be a positive integer');
  }
  const identity = await requireIdentity(db, identityName);
  const secret = generatePskSecret();
  const psk = await insertPsk(db, {
    identity_id: identity.id,
    secret_hash: hashPskSecret(secret),
    prefix: displayPrefixOf(secret),
    max_devices: options.maxDevices ?? null,
    expires_at: options.expiresInMs ? new Date(Date.now() + options.expiresInMs) : null,
    revoked_at: null,
  });
  return { secret, psk };
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

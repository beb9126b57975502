import crypto from 'node:crypto';
import type { Kysely } from 'kysely';
import { insertAuditEvent } from '../audit/audit.repository.js';
import type { Actor } from '../audit/actor.js';
import type { Database } from '../db/schema.js';
import {
  findAdminTokenHash,
  insertAdminTokenHash,
  lockAdminTokenSetup,
} from './admin-token.repository.js';

/**
 * The admin token is 256 random bits behind a recognisable prefix. Like a PSK
 * it is high-entropy, so a plain SHA-256 is a safe storage hash.
 */
const TOKEN_PREFIX = 'fgadm_';

export function generateAdminToken(): string {
  return TOKEN_PREFIX + crypto.randomBytes(32).toString('base64url');
}

export function hashAdminToken(token: string): Buffer {
  return crypto.createHash('sha256').update(token, 'utf8').digest();
}

/**
 * Compares hashes, not the tokens: both sides are 32 bytes whatever was sent,
 * so timingSafeEqual applies and the time taken says nothing about the token.
 */
export function adminTokenMatches(presented: string, expectedHash: Buffer): boolean {
  return crypto.timingSafeEqual(hashAdminToken(presented), expectedHash);
}

export type AdminTokenSource = 'configured' | 'stored' | 'generated';

export interface AdminTokenSetup {
  source: AdminTokenSource;
  /** Only when just generated: the caller shows it once, then forgets it. */
  newToken?: string;
}

/**
 * At start: a configured token wins; otherwise the stored hash is used, and
 * on the very first start a token is generated and only its hash stored.
 */
export async function ensureAdminToken(
  db: Kysely<Database>,
  configuredToken: string | undefined,
): Promise<AdminTokenSetup> {
  if (configuredToken) return { source: 'configured' };
  if (await findAdminTokenHash(db)) return { source: 'stored' };
  // Several nodes may start together on a fresh database: the first to take
  // the lock generates the token, the others then find its hash stored.
  return db.transaction().execute(async (trx) => {
    await lockAdminTokenSetup(trx);
    if (await findAdminTokenHash(trx)) return { source: 'stored' as const };
    const token = await storeNewAdminToken(trx, { kind: 'server', remoteAddress: null });
    return { source: 'generated' as const, newToken: token };
  });
}

/** Replaces the stored token (a lost or leaked one); the old one stops working at once. */
export async function resetAdminToken(db: Kysely<Database>, actor: Actor): Promise<string> {
  return db.transaction().execute((trx) => storeNewAdminToken(trx, actor));
}

async function storeNewAdminToken(trx: Kysely<Database>, actor: Actor): Promise<string> {
  const token = generateAdminToken();
  await insertAdminTokenHash(trx, hashAdminToken(token));
  await insertAuditEvent(trx, {
    action: 'admin_token.reset',
    actor: actor.kind,
    remoteAddress: actor.remoteAddress,
  });
  return token;
}

/** What a request's token is checked against: the configured one, else the stored hash. */
export async function expectedAdminTokenHash(
  db: Kysely<Database>,
  configuredToken: string | undefined,
): Promise<Buffer | undefined> {
  return configuredToken ? hashAdminToken(configuredToken) : findAdminTokenHash(db);
}

/**
 * With FLEETGATE_ADMIN_TOKEN set, that token is the one servers accept: a reset
 * would print a token that does not work while the configured one keeps working.
 */
export function tokenFromEnvironment(): Error {
  return new Error(
    'FLEETGATE_ADMIN_TOKEN is set, so the admin token comes from the environment and a reset ' +
      'would change nothing; change FLEETGATE_ADMIN_TOKEN and restart the server instead',
  );
}

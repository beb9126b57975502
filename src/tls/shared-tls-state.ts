import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from '../db/schema.js';
import type { TlsSessionStore } from './session-store.js';
import { parseTicketKey, TICKET_KEY_BYTES, type TicketKey } from './ticket-keys.js';
import {
  deleteExpiredTlsSessions,
  findTlsSession,
  insertTicketKey,
  listTicketKeys,
  lockTicketKeyRotation,
  saveTlsSession,
} from './tls-state.repository.js';

/**
 * TLS sessions for resumption by session ID in PostgreSQL, so that a device
 * whose connection lands on another node still resumes. Expired rows are
 * deleted now and then by whichever node notices.
 */
export class PostgresSessionStore implements TlsSessionStore {
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly lifetimeMs: number,
    log: Logger,
    sweepEveryMs = 60_000,
  ) {
    this.sweeper = setInterval(() => {
      deleteExpiredTlsSessions(db).catch((err: unknown) =>
        log.debug({ err: String(err) }, 'TLS sessions: expiry sweep failed'),
      );
    }, sweepEveryMs);
    this.sweeper.unref();
  }

  get(id: Buffer): Promise<Buffer | undefined> {
    return findTlsSession(this.db, id);
  }

  set(id: Buffer, session: Buffer): Promise<void> {
    return saveTlsSession(this.db, id, session, this.lifetimeMs);
  }

  close(): void {
    clearInterval(this.sweeper);
  }
}

export interface TicketKeyPair {
  current: TicketKey;
  previous?: TicketKey;
}

/**
 * Session ticket keys shared through PostgreSQL. Every node reads the newest
 * two (the newest encrypts, the one before still decrypts); the first node
 * that finds the newest older than the rotation interval adds a new one,
 * under an advisory lock so that nodes checking together rotate once.
 */
export async function loadSharedTicketKeys(
  db: Kysely<Database>,
  rotationMs: number,
): Promise<TicketKeyPair> {
  const newest = await listTicketKeys(db, 1);
  if (newest.length === 0 || newest[0]!.ageMs >= rotationMs) {
    await db.transaction().execute(async (trx) => {
      await lockTicketKeyRotation(trx);
      const again = await listTicketKeys(trx, 1);
      if (again.length === 0 || again[0]!.ageMs >= rotationMs) {
        await insertTicketKey(trx, randomBytes(TICKET_KEY_BYTES));
      }
    });
  }
  const [current, previous] = await listTicketKeys(db, 2);
  return {
    current: parseTicketKey(current!.key, 'tls_ticket_keys'),
    ...(previous ? { previous: parseTicketKey(previous.key, 'tls_ticket_keys') } : {}),
  };
}

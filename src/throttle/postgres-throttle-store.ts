import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from '../db/schema.js';
import {
  deleteIdleThrottleBuckets,
  refundThrottleToken,
  takeThrottleToken,
} from './throttle.repository.js';
import {
  bucketState,
  type NamedPolicy,
  type TakeResult,
  type ThrottleStore,
} from './throttle-store.js';

/**
 * Buckets in PostgreSQL's UNLOGGED `throttle_buckets` table, shared by every
 * node on the database and kept over restarts of a node (not over a crash of
 * PostgreSQL, which empties unlogged tables: every bucket is then full, as
 * after a quiet window). Idle rows are deleted now and then.
 */
export class PostgresThrottleStore implements ThrottleStore {
  readonly kind = 'postgres';
  private readonly policies = new Map<string, NamedPolicy>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly db: Kysely<Database>,
    log: Logger,
    sweepEveryMs = 60_000,
  ) {
    this.sweeper = setInterval(() => {
      this.sweep().catch((err: unknown) =>
        log.debug({ err: String(err) }, 'throttle buckets: idle sweep failed'),
      );
    }, sweepEveryMs);
    this.sweeper.unref();
  }

  async take(policy: NamedPolicy, key: string): Promise<TakeResult> {
    this.policies.set(policy.name, policy);
    const { tokens, taken } = await takeThrottleToken(
      this.db,
      policy.name,
      key,
      policy.capacity,
      policy.windowMs,
      policy.perDevice ? Number(key) : null,
    );
    return bucketState(policy, tokens, taken);
  }

  async refund(policy: NamedPolicy, key: string): Promise<void> {
    await refundThrottleToken(this.db, policy.name, key, policy.capacity);
  }

  /** A bucket idle for a whole window is full again: its row says nothing a new one would not. */
  async sweep(): Promise<number> {
    let deleted = 0;
    for (const policy of this.policies.values()) {
      deleted += await deleteIdleThrottleBuckets(this.db, policy.name, policy.windowMs);
    }
    return deleted;
  }

  close(): Promise<void> {
    clearInterval(this.sweeper);
    return Promise.resolve();
  }
}

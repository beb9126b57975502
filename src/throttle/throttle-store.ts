import { TokenBuckets, type BucketPolicy, type BucketState } from './token-bucket.js';

/** One named limit: which bucket family, and how big and fast its buckets are. */
export interface NamedPolicy extends BucketPolicy {
  /** `bind_failures_by_address`, `bind_failures_by_certificate`, `uploads_by_device`. */
  name: string;
  /** The key is a device ID (kept in the table's device_id column too). */
  perDevice?: boolean;
}

export type TakeResult = BucketState & { allowed: boolean };

/**
 * Where throttle buckets live. Async, so that several fleetgate nodes can
 * share them: PostgreSQL (the default on a PostgreSQL server), Redis (when
 * FLEETGATE_REDIS_URL is set), or this process's memory (the embedded
 * database, which one process owns anyway).
 */
export interface ThrottleStore {
  readonly kind: 'memory' | 'postgres' | 'redis';
  /** Takes one token from `key`'s bucket if there is one. */
  take(policy: NamedPolicy, key: string): Promise<TakeResult>;
  /** Gives back a token taken for an attempt that turned out fine. */
  refund(policy: NamedPolicy, key: string): Promise<void>;
  close(): Promise<void>;
}

export class MemoryThrottleStore implements ThrottleStore {
  readonly kind = 'memory';
  private readonly families = new Map<string, TokenBuckets>();

  take(policy: NamedPolicy, key: string): Promise<TakeResult> {
    return Promise.resolve(this.family(policy).take(key));
  }

  refund(policy: NamedPolicy, key: string): Promise<void> {
    this.family(policy).refund(key);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private family(policy: NamedPolicy): TokenBuckets {
    let buckets = this.families.get(policy.name);
    if (!buckets) {
      buckets = new TokenBuckets({ capacity: policy.capacity, windowMs: policy.windowMs });
      this.families.set(policy.name, buckets);
    }
    return buckets;
  }
}

/** The answer for a bucket holding `tokens` (fractional) after this call. */
export function bucketState(policy: BucketPolicy, tokens: number, allowed: boolean): TakeResult {
  const msPerToken = policy.windowMs / policy.capacity;
  const remaining = Math.floor(tokens);
  const toNext = remaining >= 1 ? 0 : (1 - tokens) * msPerToken;
  return {
    allowed,
    remaining,
    retryAfterSeconds: Math.max(1, Math.ceil(toNext / 1000)),
    resetSeconds: Math.ceil(((policy.capacity - tokens) * msPerToken) / 1000),
  };
}

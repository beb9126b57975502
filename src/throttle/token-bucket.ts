/**
 * In-memory token buckets, one per key (a client address, a certificate
 * fingerprint, a device). A bucket holds up to `capacity` tokens and refills
 * at `capacity / windowMs`, so a client may burst `capacity` requests and then
 * sustain `capacity` per window. State lives in this process only: several
 * fleetgate instances each keep their own counts.
 */
export interface BucketPolicy {
  capacity: number;
  windowMs: number;
}

export interface BucketState {
  /** Whole tokens left after this call. */
  remaining: number;
  /** Seconds until the next token is back (at least 1 when none is left). */
  retryAfterSeconds: number;
  /** Seconds until the bucket is full again. */
  resetSeconds: number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    readonly policy: BucketPolicy,
    /** Bounds memory under address or certificate churn; the least recently used key goes first. */
    private readonly maxKeys = 100_000,
  ) {}

  /** Whether `key` has a token left, without taking it. */
  peek(key: string, nowMs = Date.now()): BucketState & { allowed: boolean } {
    const bucket = this.refilled(key, nowMs);
    return { allowed: bucket.tokens >= 1, ...this.state(bucket) };
  }

  /** Takes one token if there is one. */
  take(key: string, nowMs = Date.now()): BucketState & { allowed: boolean } {
    const bucket = this.refilled(key, nowMs);
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    this.remember(key, bucket);
    return { allowed, ...this.state(bucket) };
  }

  /** Gives back a token taken for an attempt that turned out fine. */
  refund(key: string, nowMs = Date.now()): void {
    const bucket = this.buckets.get(key);
    if (!bucket) return;
    this.refilled(key, nowMs);
    bucket.tokens = Math.min(this.policy.capacity, bucket.tokens + 1);
  }

  get size(): number {
    return this.buckets.size;
  }

  private refilled(key: string, nowMs: number): Bucket {
    const { capacity, windowMs } = this.policy;
    const bucket = this.buckets.get(key);
    if (!bucket) return { tokens: capacity, updatedMs: nowMs };
    const elapsed = Math.max(0, nowMs - bucket.updatedMs);
    bucket.tokens = Math.min(capacity, bucket.tokens + (elapsed * capacity) / windowMs);
    bucket.updatedMs = nowMs;
    return bucket;
  }

  private remember(key: string, bucket: Bucket) {
    // Re-inserting moves the key to the end: Map order is then least recently used first.
    this.buckets.delete(key);
    this.buckets.set(key, bucket);
    if (this.buckets.size > this.maxKeys) {
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) this.buckets.delete(oldest);
    }
  }

  private state(bucket: Bucket): BucketState {
    const { capacity, windowMs } = this.policy;
    const msPerToken = windowMs / capacity;
    const remaining = Math.floor(bucket.tokens);
    const toNext = remaining >= 1 ? 0 : (1 - bucket.tokens) * msPerToken;
    return {
      remaining,
      retryAfterSeconds: Math.max(1, Math.ceil(toNext / 1000)),
      resetSeconds: Math.ceil(((capacity - bucket.tokens) * msPerToken) / 1000),
    };
  }
}

import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import {
  bucketState,
  type NamedPolicy,
  type TakeResult,
  type ThrottleStore,
} from './throttle-store.js';

/**
 * Buckets in Redis through rate-limiter-flexible, whose take is one Lua
 * script (atomic however many nodes share the Redis). Its buckets are fixed
 * windows of `capacity` per `windowMs`, not refilling token buckets: a client
 * may spend a window's budget at once and then waits for the next window.
 *
 * Redis down (not connected, or a command failing) never lets a request
 * through unchecked: every take and refund goes to `fallback` (the PostgreSQL
 * buckets on a PostgreSQL server) until Redis answers again. Counts do not
 * move between the two, so for one window after a switch a client may get up
 * to its budget in each store: twice, never unlimited.
 */
export class RedisThrottleStore implements ThrottleStore {
  readonly kind = 'redis';
  private readonly limiters = new Map<string, RateLimiterRedis>();
  private usingFallback = false;

  constructor(
    private readonly client: Redis,
    private readonly fallback: ThrottleStore,
    private readonly log: Logger,
    /** Keeps the keys of fleets (databases) sharing one Redis apart: device IDs repeat across them. */
    private readonly namespace = 'fleetgate',
  ) {}

  static connect(
    url: string,
    fallback: ThrottleStore,
    log: Logger,
    namespace = 'fleetgate',
  ): RedisThrottleStore {
    const client = new Redis(url, {
      // Fail at once while disconnected (the fallback answers) instead of queueing.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      lazyConnect: false,
    });
    client.on('error', (err: Error) => log.debug({ err: err.message }, 'redis connection error'));
    return new RedisThrottleStore(client, fallback, log, namespace);
  }

  async take(policy: NamedPolicy, key: string): Promise<TakeResult> {
    try {
      const res = await this.limiter(policy).consume(key, 1);
      this.redisAnswered();
      return this.state(policy, res, true);
    } catch (err) {
      if (err instanceof RateLimiterRes) {
        this.redisAnswered();
        return this.state(policy, err, false);
      }
      this.redisFailed(err);
      return this.fallback.take(policy, key);
    }
  }

  async refund(policy: NamedPolicy, key: string): Promise<void> {
    if (this.usingFallback) return this.fallback.refund(policy, key);
    try {
      await this.limiter(policy).reward(key, 1);
    } catch (err) {
      this.redisFailed(err);
    }
  }

  async close(): Promise<void> {
    this.client.disconnect();
    await this.fallback.close();
  }

  private limiter(policy: NamedPolicy): RateLimiterRedis {
    let limiter = this.limiters.get(policy.name);
    if (!limiter) {
      limiter = new RateLimiterRedis({
        storeClient: this.client,
        keyPrefix: `${this.namespace}:${policy.name}`,
        points: policy.capacity,
        duration: Math.max(1, Math.ceil(policy.windowMs / 1000)),
        rejectIfRedisNotReady: true,
      });
      this.limiters.set(policy.name, limiter);
    }
    return limiter;
  }

  private state(policy: NamedPolicy, res: RateLimiterRes, allowed: boolean): TakeResult {
    const remaining = Math.max(0, res.remainingPoints);
    const base = bucketState(policy, remaining, allowed);
    // A fixed window is full again when it ends, not token by token.
    const windowEnds = Math.max(1, Math.ceil(res.msBeforeNext / 1000));
    return {
      ...base,
      retryAfterSeconds: allowed ? base.retryAfterSeconds : windowEnds,
      resetSeconds: remaining >= policy.capacity ? 0 : windowEnds,
    };
  }

  private redisAnswered() {
    if (!this.usingFallback) return;
    this.usingFallback = false;
    this.log.warn('redis is back: throttle buckets are shared through redis again');
  }

  private redisFailed(err: unknown) {
    if (this.usingFallback) return;
    this.usingFallback = true;
    this.log.warn(
      { err: String(err), fallback: this.fallback.kind },
      'redis unavailable: throttle buckets fall back to the ' + this.fallback.kind + ' store',
    );
  }
}

import type { Config } from '../config/config.js';
import { AppError, tooManyRequests } from '../http/app-error.js';
import type { BucketPolicy } from './token-bucket.js';
import { MemoryThrottleStore, type NamedPolicy, type ThrottleStore } from './throttle-store.js';
import { TokenBuckets } from './token-bucket.js';

/**
 * Brute-force and flood protection for the device endpoint. Failed binds are
 * counted per client address (one host guessing PSKs with fresh certificates)
 * and per certificate (one device guessing from many addresses); uploads are
 * counted per device. Every limit answers 429 with Retry-After, before any
 * database work, so throttled traffic costs almost nothing.
 */
export interface Throttles {
  store: ThrottleStore;
  bindFailuresByAddress: NamedPolicy | null;
  bindFailuresByCertificate: NamedPolicy | null;
  uploadsByDevice: NamedPolicy | null;
}

/** The limits of `config`, kept in `store` (memory unless the caller shares one). */
export function createThrottles(
  config: Config['throttle'],
  store: ThrottleStore = new MemoryThrottleStore(),
): Throttles {
  const policy = (name: string, capacity: number, windowSeconds: number, perDevice = false) =>
    capacity > 0 ? { name, capacity, windowMs: windowSeconds * 1000, perDevice } : null;
  return {
    store,
    bindFailuresByAddress: policy(
      'bind_failures_by_address',
      config.bindFailuresPerAddress,
      config.bindFailureWindowSeconds,
    ),
    bindFailuresByCertificate: policy(
      'bind_failures_by_certificate',
      config.bindFailuresPerCertificate,
      config.bindFailureWindowSeconds,
    ),
    uploadsByDevice: policy(
      'uploads_by_device',
      config.uploadsPerDevice,
      config.uploadWindowSeconds,
      true,
    ),
  };
}

/**
 * Runs a bind attempt under the failure limits. A token is taken up front, so
 * concurrent attempts cannot overrun the limit, and given back when the bind
 * succeeds: only failures use up the budget.
 */
export async function throttledBind<T>(
  throttles: Throttles,
  address: string,
  fingerprint: string,
  bind: () => Promise<T>,
): Promise<T> {
  const { store } = throttles;
  const taken = [
    [throttles.bindFailuresByAddress, address],
    [throttles.bindFailuresByCertificate, fingerprint],
  ].filter((entry): entry is [NamedPolicy, string] => entry[0] !== null);
  const refundAll = (entries: Array<[NamedPolicy, string]>) =>
    Promise.all(entries.map(([policy, key]) => store.refund(policy, key)));
  for (const [index, [policy, key]] of taken.entries()) {
    // A store that cannot answer throws: the bind fails (503), never goes unchecked.
    const state = await store.take(policy, key);
    if (!state.allowed) {
      await refundAll(taken.slice(0, index));
      throw tooManyRequests(
        'too_many_failed_binds',
        'too many failed bind attempts from this client; retry later',
        state.retryAfterSeconds,
      );
    }
  }
  try {
    const result = await bind();
    await refundAll(taken);
    return result;
  } catch (err) {
    // Only a refusal of the attempt counts as a failure; the database being
    // down is not the client's fault.
    const refused = err instanceof AppError && err.status >= 400 && err.status < 500;
    if (!refused) await refundAll(taken).catch(() => undefined);
    throw err;
  }
}

/**
 * Takes one upload from the device's budget and returns the IETF RateLimit
 * headers (draft-ietf-httpapi-ratelimit-headers) for the answer; throws 429
 * when the budget is spent.
 */
export async function takeUploadAllowance(
  throttles: Throttles,
  deviceId: number,
): Promise<Record<string, string>> {
  const policy = throttles.uploadsByDevice;
  if (!policy) return {};
  const state = await throttles.store.take(policy, String(deviceId));
  const headers = rateLimitHeaders(policy, state.remaining, state.resetSeconds);
  if (!state.allowed) {
    throw tooManyRequests(
      'upload_rate_limited',
      `this device may upload ${policy.capacity} times per ${policy.windowMs / 1000} s`,
      state.retryAfterSeconds,
      headers,
    );
  }
  return headers;
}

function rateLimitHeaders(policy: BucketPolicy, remaining: number, resetSeconds: number) {
  return {
    'RateLimit-Policy': `"uploads";q=${policy.capacity};w=${Math.ceil(policy.windowMs / 1000)}`,
    RateLimit: `"uploads";r=${remaining};t=${resetSeconds}`,
  };
}

/** Status polls of registration requests: one per interval and device (RFC 8628's `slow_down`). */
export function createPollThrottle(intervalMs: number): TokenBuckets | null {
  return intervalMs > 0 ? new TokenBuckets({ capacity: 1, windowMs: intervalMs }) : null;
}

/** Takes the device's status poll, or refuses with 429 and Retry-After. */
export function takeStatusPoll(buckets: TokenBuckets | null, deviceKey: string): void {
  if (!buckets) return;
  const state = buckets.take(deviceKey);
  if (!state.allowed) {
    throw tooManyRequests(
      'slow_down',
      `poll the registration status at most once every ${Math.ceil(buckets.policy.windowMs / 1000)} s`,
      state.retryAfterSeconds,
    );
  }
}

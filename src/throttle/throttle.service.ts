import type { Config } from '../config/config.js';
import { AppError, tooManyRequests } from '../http/app-error.js';
import { TokenBuckets, type BucketPolicy } from './token-bucket.js';

/**
 * Brute-force and flood protection for the device endpoint. Failed binds are
 * counted per client address (one host guessing PSKs with fresh certificates)
 * and per certificate (one device guessing from many addresses); uploads are
 * counted per device. Every limit answers 429 with Retry-After, before any
 * database work, so throttled traffic costs almost nothing.
 */
export interface Throttles {
  bindFailuresByAddress: TokenBuckets | null;
  bindFailuresByCertificate: TokenBuckets | null;
  uploadsByDevice: TokenBuckets | null;
}

export function createThrottles(config: Config['throttle']): Throttles {
  const buckets = (capacity: number, windowSeconds: number) =>
    capacity > 0 ? new TokenBuckets({ capacity, windowMs: windowSeconds * 1000 }) : null;
  return {
    bindFailuresByAddress: buckets(config.bindFailuresPerAddress, config.bindFailureWindowSeconds),
    bindFailuresByCertificate: buckets(
      config.bindFailuresPerCertificate,
      config.bindFailureWindowSeconds,
    ),
    uploadsByDevice: buckets(config.uploadsPerDevice, config.uploadWindowSeconds),
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
  const taken = [
    [throttles.bindFailuresByAddress, address],
    [throttles.bindFailuresByCertificate, fingerprint],
  ].filter((entry): entry is [TokenBuckets, string] => entry[0] !== null);
  for (const [index, [buckets, key]] of taken.entries()) {
    const state = buckets.take(key);
    if (!state.allowed) {
      for (const [earlier, earlierKey] of taken.slice(0, index)) earlier.refund(earlierKey);
      throw tooManyRequests(
        'too_many_failed_binds',
        'too many failed bind attempts from this client; retry later',
        state.retryAfterSeconds,
      );
    }
  }
  try {
    const result = await bind();
    for (const [buckets, key] of taken) buckets.refund(key);
    return result;
  } catch (err) {
    // Only a refusal of the attempt counts as a failure; the database being
    // down is not the client's fault.
    const refused = err instanceof AppError && err.status >= 400 && err.status < 500;
    if (!refused) for (const [buckets, key] of taken) buckets.refund(key);
    throw err;
  }
}

/**
 * Takes one upload from the device's budget and returns the IETF RateLimit
 * headers (draft-ietf-httpapi-ratelimit-headers) for the answer; throws 429
 * when the budget is spent.
 */
export function takeUploadAllowance(
  throttles: Throttles,
  deviceId: number,
): Record<string, string> {
  const buckets = throttles.uploadsByDevice;
  if (!buckets) return {};
  const state = buckets.take(String(deviceId));
  const headers = rateLimitHeaders(buckets.policy, state.remaining, state.resetSeconds);
  if (!state.allowed) {
    throw tooManyRequests(
      'upload_rate_limited',
      `this device may upload ${buckets.policy.capacity} times per ${buckets.policy.windowMs / 1000} s`,
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

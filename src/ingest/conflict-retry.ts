import { isRetryableConflict } from '../db/errors.js';

/** Times a batch held in memory is tried when the database keeps aborting it for a deadlock. */
export const CONFLICT_ATTEMPTS = 5;

/** Conflicts already retried CONFLICT_ATTEMPTS times: an outer retry gives up on them at once. */
const givenUp = new WeakSet<object>();

/**
 * Stores again a batch the database aborted to break a deadlock (or a
 * serialization failure). Concurrent batches of one device no longer
 * deadlock with each other: every writer of a device's points takes the
 * device's row lock before its first point (ingestBatch when it opens a
 * transaction, the one-statement path by updating the last-seen time first),
 * so they write one after the other. Before that order, a resend racing its
 * original took the point and the device's row in opposite orders, and two
 * streamed uploads carrying the same points held rows the other one needed.
 * This stays as a safety net for what the order does not cover. Only a batch
 * whose points are all in memory may be stored again this way (JSON messages;
 * a small upload of one series, read whole before anything is written); a
 * streamed upload cannot be read twice and gets 503 conflict_retry at once.
 * The device waits instead of getting 503, which is left for a batch that
 * loses CONFLICT_ATTEMPTS times.
 */
export async function retryingConflicts<T>(store: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await store();
    } catch (err) {
      if (!isRetryableConflict(err) || (typeof err === 'object' && err && givenUp.has(err))) {
        throw err;
      }
      if (attempt >= CONFLICT_ATTEMPTS) {
        if (typeof err === 'object' && err) givenUp.add(err);
        throw err;
      }
    }
  }
}

import { isRetryableConflict } from '../db/errors.js';

/** Times a batch held in memory is tried when the database keeps aborting it for a deadlock. */
export const CONFLICT_ATTEMPTS = 5;

/** Conflicts already retried CONFLICT_ATTEMPTS times: an outer retry gives up on them at once. */
const givenUp = new WeakSet<object>();

/**
 * Stores again a batch the database aborted to break a deadlock (or a
 * serialization failure). Concurrent batches of one device that carry the
 * same point (a resend racing its original) can take the point and the
 * device's row in opposite orders: the one-statement path inserts the point,
 * then sets the device's last-seen time; a transaction that waited for the
 * device's row (to create a series) holds it, then inserts the point. The
 * victim stored nothing. Only a batch whose points are all in memory may be
 * stored again this way (JSON messages; a small upload of one series, read
 * whole before anything is written); a streamed upload cannot be read twice
 * and still gets 503 conflict_retry at once. The device waits instead of
 * getting 503, which is left for a batch that loses CONFLICT_ATTEMPTS times.
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

import { tooManyRequests } from '../http/app-error.js';

/**
 * How many uploads each device has in progress. Every upload may hold a
 * database connection while it streams, so one device (or one stolen
 * certificate) must not be able to take them all: over the cap the answer is
 * 429 before any database work. Counted in this process's memory.
 */
export class UploadSlots {
  private readonly inProgress = new Map<number, number>();

  constructor(readonly perDevice: number) {}

  /** Takes a slot or throws 429; the returned function gives it back (once). */
  take(deviceId: number): () => void {
    const current = this.inProgress.get(deviceId) ?? 0;
    if (current >= this.perDevice) {
      throw tooManyRequests(
        'too_many_concurrent_uploads',
        `this device already has ${current} uploads in progress (at most ${this.perDevice}); ` +
          'wait for one to finish',
        1,
      );
    }
    this.inProgress.set(deviceId, current + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const left = (this.inProgress.get(deviceId) ?? 1) - 1;
      if (left <= 0) this.inProgress.delete(deviceId);
      else this.inProgress.set(deviceId, left);
    };
  }

  /** For tests and logs: uploads in progress for a device. */
  count(deviceId: number): number {
    return this.inProgress.get(deviceId) ?? 0;
  }
}

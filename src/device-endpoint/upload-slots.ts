import { tooManyRequests } from '../http/app-error.js';

/**
 * How many uploads each device has in progress. Every upload may hold a
 * database connection while it streams, so one device (or one stolen
 * certificate) must not be able to take them all: over the cap the answer is
 * 429. It is counted twice: per certificate before the device is looked up (so
 * excess uploads cost no database work, even while the database is busy), and
 * per device after (a device whose rotation is pending has two certificates).
 * Counted in this process's memory.
 */
export class UploadSlots {
  private readonly inProgress = new Map<string, number>();

  constructor(readonly perDevice: number) {}

  /** Takes a slot or throws 429; the returned function gives it back (once). */
  take(kind: 'certificate' | 'device', id: string | number): () => void {
    const slot = `${kind}:${id}`;
    const current = this.inProgress.get(slot) ?? 0;
    if (current >= this.perDevice) {
      throw tooManyRequests(
        'too_many_concurrent_uploads',
        `this device already has ${current} uploads in progress (at most ${this.perDevice}); ` +
          'wait for one to finish',
        1,
      );
    }
    this.inProgress.set(slot, current + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const left = (this.inProgress.get(slot) ?? 1) - 1;
      if (left <= 0) this.inProgress.delete(slot);
      else this.inProgress.set(slot, left);
    };
  }
}

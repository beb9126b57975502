/** Devices whose last server time is remembered before stale entries are swept. */
const SWEEP_AT = 10_000;

/**
 * The server's time for messages without `ts`, unique per device in this
 * process. Points are unique by (device, series, timestamp), so two readings
 * without `ts` sent in the same millisecond (two requests, two WebSocket
 * frames, an MQTT request next to a WebSocket one) would share a timestamp and
 * the second would be kept as a "duplicate" in a 200 answer: one reading lost.
 * A device's next server time is therefore at least one millisecond after the
 * last one it was given. `peek` and `claim` are called without an await
 * between them, so concurrent requests of one device cannot take the same one.
 */
export class DeviceServerTimes {
  private readonly last = new Map<number, number>();

  constructor(private readonly clock: () => number = Date.now) {}

  /** The time a message without `ts` of this device would get now. */
  peek(deviceId: number): number {
    const now = this.clock();
    const last = this.last.get(deviceId);
    return last !== undefined && last >= now ? last + 1 : now;
  }

  /** Records that `epochMs` (from `peek`) was given to a message of this device. */
  claim(deviceId: number, epochMs: number): void {
    this.last.delete(deviceId);
    this.last.set(deviceId, epochMs);
    if (this.last.size > SWEEP_AT) {
      // Entries in the past no longer change what `peek` answers.
      const now = this.clock();
      for (const [id, at] of this.last) if (at < now) this.last.delete(id);
    }
  }
}

/** The process's server times (messages of every channel go through storeMessages). */
export const deviceServerTimes = new DeviceServerTimes();

/**
 * Follows the MQTT fixed headers of a byte stream (type byte, then the
 * remaining length in 1-4 bytes of 7 bits) and refuses a packet that
 * declares more than `max` bytes, before any of its body is buffered. The
 * MQTT parser would otherwise hold up to 256 MB per connection while a
 * client (authenticated or not) trickles a huge declared packet in.
 */
export class PacketSizeGuard {
  /** Body bytes of the current packet still to pass. */
  private remaining = 0;
  /** -1: the next byte is a packet's type byte; else length bytes read so far. */
  private lengthBytes = -1;
  private length = 0;
  private multiplier = 1;

  constructor(private readonly max: number) {}

  /** False once a packet declares more than `max` bytes or a length of over 4 bytes. */
  accept(chunk: Buffer): boolean {
    let i = 0;
    while (i < chunk.length) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - i);
        this.remaining -= n;
        i += n;
        continue;
      }
      const byte = chunk[i++]!;
      if (this.lengthBytes === -1) {
        this.lengthBytes = 0;
        this.length = 0;
        this.multiplier = 1;
        continue;
      }
      this.length += (byte & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      this.lengthBytes += 1;
      if (this.length > this.max) return false;
      if (byte & 0x80) {
        if (this.lengthBytes >= 4) return false;
        continue;
      }
      this.remaining = this.length;
      this.lengthBytes = -1;
    }
    return true;
  }
}

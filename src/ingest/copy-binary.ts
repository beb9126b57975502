/**
 * Rows of `(ts timestamptz, value float8)` in PostgreSQL's binary COPY format.
 * Binary saves the server from parsing numbers and dates, and a row is a
 * fixed 26 bytes written straight into a preallocated buffer.
 */
const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
/** Signature, flags (int32 0), header extension length (int32 0). */
export const COPY_BINARY_HEADER = Buffer.concat([SIGNATURE, Buffer.alloc(8)]);
/** A field count of -1 ends the data. */
export const COPY_BINARY_TRAILER = Buffer.from([0xff, 0xff]);

const ROW_BYTES = 26;
/** PostgreSQL timestamps count microseconds from 2000-01-01 UTC. */
const PG_EPOCH_MS = Date.UTC(2000, 0, 1);
const TWO_32 = 4294967296;

export class CopyBinaryRows {
  private buffer: Buffer;
  private offset = 0;
  private readonly filled: Buffer[] = [];
  private filledBytes = 0;

  constructor(private readonly chunkBytes = 64 * 1024) {
    this.buffer = Buffer.allocUnsafe(chunkBytes);
  }

  /** Bytes waiting to be taken. */
  get size(): number {
    return this.filledBytes + this.offset;
  }

  add(epochMs: number, value: number): void {
    if (this.offset + ROW_BYTES > this.buffer.length) this.rotate();
    const b = this.buffer;
    const o = this.offset;
    b.writeInt16BE(2, o);
    b.writeInt32BE(8, o + 2);
    // Exact in a double: |micros| stays far below 2^53 for any accepted timestamp.
    const micros = (epochMs - PG_EPOCH_MS) * 1000;
    const high = Math.floor(micros / TWO_32);
    b.writeInt32BE(high, o + 6);
    b.writeUInt32BE(micros - high * TWO_32, o + 10);
    b.writeInt32BE(8, o + 14);
    b.writeDoubleBE(value, o + 18);
    this.offset = o + ROW_BYTES;
  }

  /** Everything added since the last take, as one buffer. */
  take(): Buffer {
    this.rotate();
    const out = this.filled.length === 1 ? this.filled[0]! : Buffer.concat(this.filled);
    this.filled.length = 0;
    this.filledBytes = 0;
    return out;
  }

  private rotate() {
    if (this.offset === 0) return;
    this.filled.push(this.buffer.subarray(0, this.offset));
    this.filledBytes += this.offset;
    this.buffer = Buffer.allocUnsafe(this.chunkBytes);
    this.offset = 0;
  }
}

import { parse as parseCsv } from 'csv-parse/sync';
import { badRequest, tooLarge } from '../http/app-error.js';
import { parsePointRecord, underflowsToZero, type TimestampRange } from './point-line.js';

export interface ScannerOptions {
  maxLineBytes: number;
  timestampRange: TimestampRange;
}

export type PointCallback = (epochMs: number, value: number) => void;

const LF = 0x0a;
const CR = 0x0d;
const COMMA = 0x2c;
const QUOTE = 0x22;
const SPACE = 0x20;
const TAB = 0x09;
const ZERO = 0x30;
const NINE = 0x39;
/** A plain decimal number, as in point-line.ts. */
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,4})?$/;

/**
 * Turns the bytes of one file part into points, chunk by chunk, without
 * building a string or an array per line: profiling showed csv-parse's
 * per-record objects costing more than the database write. The common line
 * (`digits,decimal`, optional blanks, LF or CRLF) is read straight from the
 * bytes. Any other line (quotes, wrong field count, bad values) goes the slow
 * way through csv-parse and point-line.ts, so accepted input, values and error
 * reasons stay exactly those of the CSV reader: a UTF-8 BOM is skipped, empty
 * lines are skipped but counted, fields are trimmed.
 *
 * A line is held across chunks only up to `maxLineBytes`, so memory stays
 * bounded whatever the client sends.
 */
export class PointScanner {
  /** Points accepted so far. */
  points = 0;
  /** Number of the last line read, 1-based, empty lines included. */
  private line = 0;
  private carry: Buffer | null = null;

  constructor(
    private readonly part: string,
    private readonly options: ScannerOptions,
    private readonly onPoint: PointCallback,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    if (this.carry) {
      const end = chunk.indexOf(LF);
      if (end === -1) {
        this.carry = Buffer.concat([this.carry, chunk]);
        this.assertPendingFits(this.carry);
        return;
      }
      const joined = Buffer.concat([this.carry, chunk.subarray(0, end)]);
      this.carry = null;
      this.readLine(joined, 0, joined.length);
      start = end + 1;
    }
    for (;;) {
      const end = chunk.indexOf(LF, start);
      if (end === -1) break;
      this.readLine(chunk, start, end);
      start = end + 1;
    }
    if (start < chunk.length) {
      // Copied: keeping a view would pin the whole chunk in memory.
      this.carry = Buffer.from(chunk.subarray(start));
      this.assertPendingFits(this.carry);
    }
  }

  /** The part ended: the last line may lack its newline. */
  end(): void {
    if (this.carry) {
      const last = this.carry;
      this.carry = null;
      this.readLine(last, 0, last.length);
    }
  }

  private assertPendingFits(pending: Buffer) {
    // A trailing CR may still turn out to be half of a CRLF.
    const length = pending[pending.length - 1] === CR ? pending.length - 1 : pending.length;
    if (length > this.options.maxLineBytes) throw this.lineTooLong(this.line + 1);
  }

  private readLine(buf: Buffer, start: number, end: number): void {
    this.line++;
    if (end > start && buf[end - 1] === CR) end--;
    if (end - start > this.options.maxLineBytes) throw this.lineTooLong(this.line);
    if (
      this.line === 1 &&
      buf[start] === 0xef &&
      buf[start + 1] === 0xbb &&
      buf[start + 2] === 0xbf
    ) {
      start += 3;
    }
    if (start === end) return;
    if (!this.readPlainLine(buf, start, end)) this.readOtherLine(buf.toString('utf8', start, end));
  }

  /** The fast path; false means "not a plain line", never "invalid". */
  private readPlainLine(buf: Buffer, start: number, end: number): boolean {
    let i = skipBlanks(buf, start, end);
    const digitsStart = i;
    let epochMs = 0;
    for (; i < end; i++) {
      const c = buf[i]!;
      if (c < ZERO || c > NINE) break;
      epochMs = epochMs * 10 + (c - ZERO);
    }
    const digits = i - digitsStart;
    i = skipBlanks(buf, i, end);
    if (digits === 0 || digits > 16 || buf[i] !== COMMA) return false;
    const range = this.options.timestampRange;
    if (epochMs < range.minEpochMs || epochMs > range.maxEpochMs) return false;
    const valueStart = skipBlanks(buf, i + 1, end);
    let valueEnd = end;
    while (valueEnd > valueStart && isBlank(buf[valueEnd - 1]!)) valueEnd--;
    for (let j = valueStart; j < valueEnd; j++) {
      const c = buf[j]!;
      if (c === COMMA || c === QUOTE) return false;
    }
    const text = buf.toString('latin1', valueStart, valueEnd);
    if (!DECIMAL.test(text)) return false;
    const value = Number(text);
    // The slow path explains the refusal (out of range, underflow).
    if (!Number.isFinite(value) || underflowsToZero(text, value)) return false;
    this.points++;
    this.onPoint(epochMs, value);
    return true;
  }

  /** The slow path: exactly what the CSV reader accepts, or its reason for refusing. */
  private readOtherLine(text: string): void {
    let records: string[][];
    try {
      records = parseCsv(text, { trim: true, relax_column_count: true, skip_empty_lines: true });
    } catch (err) {
      throw this.invalidLine(this.line, (err as Error).message);
    }
    if (records.length === 0) return;
    if (records.length > 1) throw this.invalidLine(this.line, 'a carriage return inside the line');
    const point = parsePointRecord(records[0]!, this.options.timestampRange);
    if (typeof point === 'string') throw this.invalidLine(this.line, point);
    this.points++;
    this.onPoint(point.epochMs, point.value);
  }

  private invalidLine(line: number, reason: string) {
    return badRequest('invalid_line', `part "${this.part}" line ${line}: ${reason}`, {
      part: this.part,
      line,
      reason,
    });
  }

  private lineTooLong(line: number) {
    const limit = this.options.maxLineBytes;
    return tooLarge(
      'line_too_long',
      `part "${this.part}" line ${line}: longer than ${limit} bytes`,
      {
        part: this.part,
        line,
        limit,
      },
    );
  }
}

const isBlank = (c: number) => c === SPACE || c === TAB;

function skipBlanks(buf: Buffer, i: number, end: number): number {
  while (i < end && isBlank(buf[i]!)) i++;
  return i;
}

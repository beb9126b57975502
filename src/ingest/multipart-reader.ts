import { AppError, badRequest, tooLarge } from '../http/app-error.js';
import {
  HeaderSyntaxError,
  readPartHead,
  TransferEncodingError,
  type PartHead,
} from './multipart-headers.js';

/** What the reader reports, in order: start, data..., end, for each part. */
export interface MultipartSink {
  partStart(head: PartHead & { index: number }): void;
  /** A view into the input; the sink may keep it. */
  partData(chunk: Buffer): void;
  partEnd(): void;
}

export interface MultipartReaderLimits {
  maxParts: number;
  /** Largest header block of one part. */
  maxHeaderBytes?: number;
}

const CR = 0x0d;
const LF = 0x0a;
const DASH = 0x2d;
const SP = 0x20;
const HT = 0x09;
/** Longest run of blanks accepted between a boundary and its line end. */
const MAX_PADDING = 64;
const EMPTY = Buffer.alloc(0);

type State = 'start' | 'headers' | 'data' | 'epilogue';
type Verdict = { kind: 'part' | 'close'; next: number } | { kind: 'data' } | { kind: 'more' };

/**
 * A strict, streaming multipart/form-data reader (RFC 2046 §5.1.1, RFC 7578).
 * It holds at most one part header block or one possible delimiter between
 * chunks, so memory stays bounded whatever the body; data is handed on as
 * views of the input, found with Buffer#indexOf (native), so large files cost
 * little more than a copy.
 *
 * It either reports every part of the body, each completely, or throws an
 * AppError (400 malformed_multipart, unexpected_field,
 * unsupported_transfer_encoding; 413 too_many_parts). In particular:
 * - the body starts with `--boundary` (one empty line before it is allowed):
 *   a preamble could hide a part, so it is refused;
 * - a delimiter is `<newline>--boundary`, then optional blanks (transport
 *   padding), then a newline (next part) or `--` (the end). A line that starts
 *   with `--boundary` followed by anything else is data;
 * - the newline is CRLF, or LF when the first boundary line ends in a bare LF
 *   (then a CR before an LF is also accepted); a body that mixes them is
 *   refused where it matters (a boundary or header line);
 * - after the closing delimiter only blanks and newlines may follow: anything
 *   else could be parts the client meant to send;
 * - a body that ends before the closing delimiter is refused.
 *
 * Why not busboy (1.6.0, unreleased since 2022): it skips what it cannot read
 * (a part with an odd Content-Disposition, the part after transport padding,
 * the rest of a part after a line starting with --boundary) and carries on,
 * so an upload could be answered 200 without all its parts. Here the only
 * outcomes are "every part, whole" and "an error".
 */
export class MultipartReader {
  private state: State = 'start';
  private held: Buffer = EMPTY;
  private crlf = true;
  private delimiter: Buffer = EMPTY;
  private readonly dashBoundary: Buffer;
  private skippedLeadingNewline = false;
  private parts = 0;
  private headerBytes = 0;
  private headerLines: string[] = [];
  private readonly maxHeaderBytes: number;

  constructor(
    boundary: string,
    private readonly sink: MultipartSink,
    private readonly limits: MultipartReaderLimits,
  ) {
    this.dashBoundary = Buffer.from(`--${boundary}`, 'latin1');
    this.maxHeaderBytes = limits.maxHeaderBytes ?? 8192;
  }

  /** True once the closing delimiter was read. */
  get complete(): boolean {
    return this.state === 'epilogue';
  }

  write(chunk: Buffer): void {
    this.run(this.held.length ? Buffer.concat([this.held, chunk]) : chunk, false);
  }

  /** The body ended: throws unless the closing delimiter was read. */
  end(): void {
    this.run(this.held, true);
    if (this.state !== 'epilogue') {
      throw malformed(
        this.state === 'start'
          ? `the body does not start with the boundary line --${this.boundaryText()}`
          : this.state === 'headers'
            ? `the body ended inside the headers of part ${this.parts}`
            : `the body ended before the closing boundary (in part ${this.parts})`,
        this.parts || undefined,
      );
    }
  }

  private run(buf: Buffer, eof: boolean): void {
    this.held = EMPTY;
    let pos = 0;
    while (pos < buf.length) {
      let next: number;
      switch (this.state) {
        case 'start':
          next = this.start(buf, pos, eof);
          break;
        case 'headers':
          next = this.headers(buf, pos);
          break;
        case 'data':
          next = this.data(buf, pos, eof);
          break;
        case 'epilogue':
          next = this.epilogue(buf, pos);
          break;
      }
      if (next < 0) {
        // Needs more input; what is held is bounded by each state.
        if (!eof) this.held = Buffer.from(buf.subarray(-next - 1));
        return;
      }
      pos = next;
    }
  }

  /** `-(pos + 1)`: "hold from pos, wait for more". */
  private static more(pos: number) {
    return -(pos + 1);
  }

  private start(buf: Buffer, pos: number, eof: boolean): number {
    if (!this.skippedLeadingNewline) {
      this.skippedLeadingNewline = true;
      if (buf[pos] === LF) return pos + 1;
      if (buf[pos] === CR) {
        if (pos + 1 >= buf.length && !eof) {
          this.skippedLeadingNewline = false;
          return MultipartReader.more(pos);
        }
        if (buf[pos + 1] === LF) return pos + 2;
      }
    }
    const db = this.dashBoundary;
    const available = Math.min(buf.length - pos, db.length);
    if (!buf.subarray(pos, pos + available).equals(db.subarray(0, available))) {
      throw malformed(
        `the body must start with the boundary line --${this.boundaryText()} (no preamble)`,
      );
    }
    if (available < db.length) {
      if (eof) return buf.length;
      return MultipartReader.more(pos);
    }
    const verdict = this.afterBoundary(buf, pos + db.length, eof, true);
    if (verdict.kind === 'more') return eof ? buf.length : MultipartReader.more(pos);
    if (verdict.kind === 'data') {
      throw malformed(
        `the first boundary line --${this.boundaryText()} is followed by other characters`,
      );
    }
    return this.enter(verdict);
  }

  /**
   * What follows `--boundary`. On the first boundary line this also decides
   * the newline of the whole body.
   */
  private afterBoundary(buf: Buffer, q: number, eof: boolean, first = false): Verdict {
    const more: Verdict = { kind: 'more' };
    if (q >= buf.length) return eof ? { kind: 'data' } : more;
    if (buf[q] === DASH) {
      if (q + 1 >= buf.length) return eof ? { kind: 'data' } : more;
      return buf[q + 1] === DASH ? { kind: 'close', next: q + 2 } : { kind: 'data' };
    }
    let i = q;
    while (i < buf.length && (buf[i] === SP || buf[i] === HT)) {
      if (++i - q > MAX_PADDING) {
        throw malformed(`more than ${MAX_PADDING} blanks after a boundary`, this.parts);
      }
    }
    if (i >= buf.length) return eof ? { kind: 'data' } : more;
    if (buf[i] === LF) {
      if (first) this.setNewline(false);
      else if (this.crlf) {
        throw malformed(
          'a boundary line ends in a bare LF in a body whose first boundary line ends in CRLF',
          this.parts,
        );
      }
      return { kind: 'part', next: i + 1 };
    }
    if (buf[i] === CR) {
      if (i + 1 >= buf.length) return eof ? { kind: 'data' } : more;
      if (buf[i + 1] !== LF) throw malformed('a boundary line ends in a CR without LF', this.parts);
      if (first) this.setNewline(true);
      return { kind: 'part', next: i + 2 };
    }
    return { kind: 'data' };
  }

  private setNewline(crlf: boolean) {
    this.crlf = crlf;
    this.delimiter = Buffer.concat([Buffer.from(crlf ? '\r\n' : '\n'), this.dashBoundary]);
  }

  /** After a delimiter line: the next part's headers, or the end. */
  private enter(verdict: { kind: 'part' | 'close'; next: number }): number {
    if (verdict.kind === 'close') {
      this.state = 'epilogue';
      return verdict.next;
    }
    this.parts++;
    if (this.parts > this.limits.maxParts) {
      throw tooLarge('too_many_parts', `upload has more than ${this.limits.maxParts} parts`, {
        limit: this.limits.maxParts,
      });
    }
    this.state = 'headers';
    this.headerBytes = 0;
    this.headerLines = [];
    return verdict.next;
  }

  private headers(buf: Buffer, pos: number): number {
    const lf = buf.indexOf(LF, pos);
    const lineEnd = lf === -1 ? buf.length : lf + 1;
    if (this.headerBytes + (lineEnd - pos) > this.maxHeaderBytes) {
      throw malformed(
        `the headers of part ${this.parts} are longer than ${this.maxHeaderBytes} bytes`,
        this.parts,
      );
    }
    if (lf === -1) return MultipartReader.more(pos);
    this.headerBytes += lineEnd - pos;
    let end = lf;
    if (buf[end - 1] === CR && end > pos) end--;
    else if (this.crlf) {
      throw malformed(
        `a header line of part ${this.parts} ends in a bare LF in a body that uses CRLF`,
        this.parts,
      );
    }
    for (let i = pos; i < end; i++) {
      const c = buf[i]!;
      if ((c < SP && c !== HT) || c === 0x7f) {
        throw malformed(
          `a header line of part ${this.parts} contains the control character 0x${c.toString(16).padStart(2, '0')}`,
          this.parts,
        );
      }
    }
    if (end === pos) {
      this.beginData();
      return lineEnd;
    }
    const line = buf.toString('latin1', pos, end);
    if (line[0] === ' ' || line[0] === '\t') {
      // A folded continuation line (RFC 5322 §2.2.3); the first line cannot be one.
      if (this.headerLines.length === 0) {
        throw malformed(
          `the first header line of part ${this.parts} starts with a blank`,
          this.parts,
        );
      }
      this.headerLines[this.headerLines.length - 1] += ` ${line.trim()}`;
    } else {
      this.headerLines.push(line);
    }
    return lineEnd;
  }

  private beginData() {
    const headers = new Map<string, string>();
    for (const line of this.headerLines) {
      const colon = line.indexOf(':');
      const name = colon > 0 ? line.slice(0, colon) : '';
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
        throw malformed(
          `part ${this.parts} has a header line that is not "Name: value": "${clip(line)}"`,
          this.parts,
        );
      }
      const key = name.toLowerCase();
      if (headers.has(key)) {
        throw malformed(`part ${this.parts} has the header ${name} twice`, this.parts);
      }
      headers.set(key, line.slice(colon + 1).trim());
    }
    let head: PartHead;
    try {
      head = readPartHead(headers);
    } catch (err) {
      if (err instanceof TransferEncodingError) {
        throw badRequest('unsupported_transfer_encoding', `part ${this.parts}: ${err.message}`, {
          part: this.parts,
          encoding: err.encoding,
        });
      }
      if (err instanceof HeaderSyntaxError) {
        throw malformed(`part ${this.parts} is unreadable: ${err.message}`, this.parts);
      }
      throw err;
    }
    if (head.filename === undefined) {
      throw badRequest(
        'unexpected_field',
        `part "${head.name}" is a form field; each series must be a file part`,
      );
    }
    this.state = 'data';
    this.sink.partStart({ ...head, index: this.parts });
  }

  private data(buf: Buffer, pos: number, eof: boolean): number {
    const delimiter = this.delimiter;
    let from = pos;
    for (;;) {
      const at = buf.indexOf(delimiter, from);
      if (at === -1) {
        const keep = eof ? 0 : partialMatch(buf, Math.max(from, pos), delimiter);
        const safeEnd = buf.length - keep;
        if (safeEnd > pos) this.sink.partData(buf.subarray(pos, safeEnd));
        return keep ? MultipartReader.more(safeEnd) : buf.length;
      }
      const verdict = this.afterBoundary(buf, at + delimiter.length, eof);
      if (verdict.kind === 'data') {
        from = at + 1;
        continue;
      }
      if (at > pos) this.sink.partData(buf.subarray(pos, at));
      if (verdict.kind === 'more') return MultipartReader.more(at);
      this.sink.partEnd();
      return this.enter(verdict);
    }
  }

  private epilogue(buf: Buffer, pos: number): number {
    for (let i = pos; i < buf.length; i++) {
      const c = buf[i];
      if (c !== SP && c !== HT && c !== CR && c !== LF) {
        throw malformed(
          'there is data after the closing boundary; nothing after it would be stored',
        );
      }
    }
    return buf.length;
  }

  private boundaryText() {
    return this.dashBoundary.toString('latin1', 2);
  }
}

/** Length of the longest end of buf[from..] that begins the delimiter. */
function partialMatch(buf: Buffer, from: number, delimiter: Buffer): number {
  const start = Math.max(from, buf.length - delimiter.length + 1);
  for (let i = start; i < buf.length; i++) {
    if (buf[i] !== delimiter[0]) continue;
    if (buf.subarray(i).equals(delimiter.subarray(0, buf.length - i))) return buf.length - i;
  }
  return 0;
}

function malformed(message: string, part?: number): AppError {
  return badRequest(
    'malformed_multipart',
    `multipart body is malformed: ${message}`,
    part === undefined ? undefined : { part },
  );
}

const clip = (s: string) => (s.length > 60 ? `${s.slice(0, 60)}…` : s);

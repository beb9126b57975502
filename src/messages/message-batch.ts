import { badRequest, tooLarge } from '../http/app-error.js';
import { isSeriesName, type SeriesInput } from '../ingest/ingest.service.js';
import { parsePointRecord, underflowsToZero, type TimestampRange } from '../ingest/point-line.js';

/**
 * JSON messages (issue 13): `{"ts": epoch_ms?, "data": {"series": number, ...}}`,
 * one or an array. Every field of `data` is a point of the series of that name
 * at `ts` (the server's time when `ts` is missing, given once the batch is
 * checked: see `inputs`). The whole batch is checked
 * before anything is written, and refused whole with a typed 4xx; the points
 * then go through the one ingest path (ingestBatch) like a multipart upload.
 */
export interface MessageLimits {
  /** Fields of `data` in one message. */
  maxFields: number;
  /** Messages in one batch (an array body). */
  maxMessages: number;
  timestampRange: TimestampRange;
}

/** Keys a message may carry; `id` and `type` are the WebSocket channel's. */
const MESSAGE_KEYS = new Set(['ts', 'data', 'id', 'type']);

interface SeriesPoints {
  epochMs: number[];
  values: number[];
  /** Where the one point of a message without `ts` is, if any: it takes the server's time. */
  atServerTime?: number;
}

/** The points of a checked batch, grouped by series in order of first appearance. */
export class MessageBatch {
  private constructor(
    private readonly series: Map<string, SeriesPoints>,
    /** Whether a message without `ts` took the server's time. */
    readonly usesServerTime: boolean,
  ) {}

  get points(): number {
    let n = 0;
    for (const s of this.series.values()) n += s.epochMs.length;
    return n;
  }

  /**
   * The series as ingest inputs; the first value of a repeated timestamp wins,
   * as in uploads. `serverTimeMs` is the time of the messages without `ts`,
   * needed when `usesServerTime`.
   */
  inputs(serverTimeMs?: number): SeriesInput[] {
    if (this.usesServerTime && serverTimeMs === undefined) {
      throw new Error('a batch with messages without ts needs the server time');
    }
    return [...this.series].map(([name, points]) => ({
      name,
      async feed(add) {
        for (let i = 0; i < points.epochMs.length; i++) {
          add(i === points.atServerTime ? serverTimeMs! : points.epochMs[i]!, points.values[i]!);
        }
        return points.epochMs.length;
      },
    }));
  }

  /**
   * Checks a parsed body (one message or an array of them). `rawText`, when
   * given, is the body as sent: a literal such as `1e-400` parses to 0 and
   * would be stored changed, so it is refused as in uploads.
   */
  static from(body: unknown, limits: MessageLimits, rawText?: string): MessageBatch {
    const messages = Array.isArray(body) ? body : [body];
    if (messages.length === 0) {
      throw badRequest('empty_batch', 'the array holds no messages');
    }
    if (messages.length > limits.maxMessages) {
      throw tooLarge(
        'too_many_messages',
        `${messages.length} messages in one batch; at most ${limits.maxMessages} (FLEETGATE_MAX_MESSAGES)`,
        { limit: limits.maxMessages },
      );
    }
    if (rawText !== undefined) assertFaithfulJson(rawText);
    const series = new Map<string, SeriesPoints>();
    /** Series that already have a point at the server's time (a message without ts). */
    const atServerTime = new Set<string>();
    messages.forEach((message, index) => {
      const where = Array.isArray(body) ? `message ${index}` : 'the message';
      const at = Array.isArray(body) ? { message: index } : {};
      if (!isPlainObject(message)) {
        throw badRequest('invalid_message', `${where} is not a JSON object`, at);
      }
      for (const key of Object.keys(message)) {
        if (!MESSAGE_KEYS.has(key)) {
          throw badRequest(
            'invalid_message',
            `${where} has an unknown field "${clip(key)}" (expected ts and data)`,
            {
              ...at,
              field: clip(key),
            },
          );
        }
      }
      const epochMs = timestampOf(message.ts, limits.timestampRange, where, at);
      const data = message.data;
      if (!isPlainObject(data)) {
        throw badRequest('invalid_message', `${where} has no "data" object`, at);
      }
      const fields = Object.keys(data);
      if (fields.length === 0) {
        throw badRequest('invalid_message', `${where} has no fields in "data"`, at);
      }
      if (fields.length > limits.maxFields) {
        throw tooLarge(
          'too_many_fields',
          `${where} has ${fields.length} fields in "data"; at most ${limits.maxFields} (FLEETGATE_MAX_MESSAGE_FIELDS)`,
          { ...at, limit: limits.maxFields },
        );
      }
      for (const name of fields) {
        if (!isSeriesName(name)) {
          throw badRequest(
            'invalid_series_name',
            `${where}: "${clip(name)}" is not a valid series name (1-128 of A-Z a-z 0-9 _ . : / -)`,
            { ...at, field: clip(name, 128) },
          );
        }
        const value = data[name];
        if (typeof value !== 'number' || !Number.isFinite(value)) {
          throw badRequest(
            'invalid_value',
            `${where}: the value of "${name}" is not a finite number`,
            { ...at, field: name },
          );
        }
        if (message.ts === undefined) {
          // Two readings at one server time: the second would be kept as a "duplicate"
          // and lost, in an answer that says 200.
          if (atServerTime.has(name)) {
            throw badRequest(
              'invalid_timestamp',
              `${where} has no "ts" and neither has an earlier message of this batch with "${name}": ` +
                'both would get the same server time and one reading would be lost; give each message its ts',
              { ...at, field: name, reason: 'missing_in_batch' },
            );
          }
          atServerTime.add(name);
        }
        const points: SeriesPoints = series.get(name) ?? { epochMs: [], values: [] };
        series.set(name, points);
        // At most one per series (above); its time is given by `inputs`.
        if (epochMs === undefined) points.atServerTime = points.epochMs.length;
        points.epochMs.push(epochMs ?? 0);
        points.values.push(value);
      }
    });
    return new MessageBatch(series, atServerTime.size > 0);
  }
}

/**
 * Refuses JSON text whose parse would not say what was sent: a number that
 * parses to 0 or Infinity, or a key given twice in one object.
 */
export function assertFaithfulJson(rawText: string): void {
  assertNoChangedLiteral(rawText);
  assertNoDuplicateKeys(rawText);
}

/** The message's `ts` checked, or undefined when it has none (the server's time). */
function timestampOf(
  ts: unknown,
  range: TimestampRange,
  where: string,
  at: Record<string, unknown>,
): number | undefined {
  if (ts === undefined) return undefined;
  if (typeof ts !== 'number') {
    throw badRequest('invalid_timestamp', `${where}: "ts" is not a number of epoch milliseconds`, {
      ...at,
    });
  }
  // The same rules and reasons as an upload line (integer ms, floor, clock skew).
  const point = parsePointRecord([String(ts), '0'], range);
  if (typeof point === 'string') {
    throw badRequest('invalid_timestamp', `${where}: ${point}`, { ...at, reason: point });
  }
  return point.epochMs;
}

/** A number literal outside strings that JSON.parse would turn into 0 or Infinity. */
function assertNoChangedLiteral(text: string): void {
  const literal = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // Skip the string, escapes included.
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) {
        if (text.charCodeAt(i) === 0x5c) i++;
      }
      continue;
    }
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      literal.lastIndex = i;
      const match = literal.exec(text);
      if (!match) continue;
      const value = Number(match[0]);
      if (!Number.isFinite(value) || underflowsToZero(match[0], value)) {
        throw badRequest(
          'invalid_value',
          `the number ${clip(match[0])} is out of the double precision range`,
        );
      }
      i += match[0].length - 1;
    }
  }
}

/**
 * JSON.parse keeps the last of two equal keys in one object, so
 * `{"data": {"a": 1, "a": 2}}` would store a=2 and answer 200 for a reading
 * that was dropped. `text` already parsed as JSON: only strings, brackets and
 * commas need following.
 */
function assertNoDuplicateKeys(text: string): void {
  /** Keys of each open object; null for an open array. */
  const open: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      const start = i;
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) {
        if (text.charCodeAt(i) === 0x5c) i++;
      }
      const keys = open[open.length - 1];
      if (!expectKey || !keys) continue;
      expectKey = false;
      const key = JSON.parse(text.slice(start, i + 1)) as string;
      if (keys.has(key)) {
        throw badRequest(
          'invalid_message',
          `the key "${clip(key)}" appears twice in one object; JSON would keep only its last value`,
          { field: clip(key) },
        );
      }
      keys.add(key);
    } else if (c === 0x7b) {
      open.push(new Set());
      expectKey = true;
    } else if (c === 0x5b) {
      open.push(null);
      expectKey = false;
    } else if (c === 0x7d || c === 0x5d) {
      open.pop();
      expectKey = false;
    } else if (c === 0x2c) {
      expectKey = (open[open.length - 1] ?? null) !== null;
    }
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function clip(text: string, max = 40): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}

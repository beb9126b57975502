/**
 * Validation of one `epoch_ms,value` record. Returns a reason string instead of
 * throwing: the caller knows the part and line number and builds the error.
 */
export interface ParsedPoint {
  epochMs: number;
  value: number;
}

/** Integer milliseconds, no sign, no fraction: what every device clock gives. */
const EPOCH_MS = /^\d{1,16}$/;
/** A plain decimal number. Rejects NaN, Infinity, hex and the empty string. */
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,4})?$/;

export interface TimestampRange {
  minEpochMs: number;
  maxEpochMs: number;
}

export function parsePointRecord(
  fields: readonly string[],
  range: TimestampRange,
): ParsedPoint | string {
  if (fields.length !== 2) return `expected 2 fields (epoch_ms,value), got ${fields.length}`;
  const [tsText, valueText] = fields as [string, string];
  if (!EPOCH_MS.test(tsText))
    return `timestamp "${clip(tsText)}" is not a non-negative integer of epoch milliseconds`;
  const epochMs = Number(tsText);
  if (epochMs < range.minEpochMs || epochMs > range.maxEpochMs) return outOfRange(epochMs, range);
  if (!DECIMAL.test(valueText)) return `value "${clip(valueText)}" is not a finite decimal number`;
  const value = Number(valueText);
  if (!Number.isFinite(value) || underflowsToZero(valueText, value)) {
    return `value "${clip(valueText)}" is out of the double precision range`;
  }
  return { epochMs, value };
}

/**
 * Why a timestamp is refused, with the likely mistake when there is one: a
 * clock in seconds (10 digits today) or in microseconds (16 digits) lands
 * far outside the range, and the same number scaled by 1000 lands inside.
 */
function outOfRange(epochMs: number, range: TimestampRange): string {
  const inRange = (ms: number) => ms >= range.minEpochMs && ms <= range.maxEpochMs;
  const bounds = `${range.minEpochMs} (${iso(range.minEpochMs)}) .. ${range.maxEpochMs} (${iso(range.maxEpochMs)})`;
  if (epochMs < range.minEpochMs) {
    const hint = inRange(epochMs * 1000) ? '; it looks like seconds, not milliseconds' : '';
    return `timestamp ${epochMs} is outside the accepted range ${bounds}: before its start${hint}`;
  }
  const hint = inRange(Math.floor(epochMs / 1000))
    ? '; it looks like microseconds, not milliseconds'
    : '';
  return `timestamp ${epochMs} is outside the accepted range ${bounds}: after its end (the server clock plus the allowed skew)${hint}`;
}

function iso(epochMs: number): string {
  const date = new Date(epochMs);
  return Number.isNaN(date.getTime()) ? String(epochMs) : date.toISOString();
}

function clip(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}

/**
 * `1e-400` parses to 0: storing it would silently change the reading, so it
 * is refused like `1e999`. A literal is zero only if its digits are.
 */
export function underflowsToZero(text: string, value: number): boolean {
  return value === 0 && /[1-9]/.test(text.split(/[eE]/)[0]!);
}

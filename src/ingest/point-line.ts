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
  if (epochMs < range.minEpochMs || epochMs > range.maxEpochMs) {
    return `timestamp ${tsText} is outside the accepted range ${range.minEpochMs}..${range.maxEpochMs}`;
  }
  if (!DECIMAL.test(valueText)) return `value "${clip(valueText)}" is not a finite decimal number`;
  const value = Number(valueText);
  if (!Number.isFinite(value) || underflowsToZero(valueText, value)) {
    return `value "${clip(valueText)}" is out of the double precision range`;
  }
  return { epochMs, value };
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

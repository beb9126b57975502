import { badRequest } from '../http/app-error.js';

const UNIT_MS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

/** Longer lifetimes or bucket widths mean nothing, and overflow dates (500s before). */
export const MAX_DURATION_MS = 100 * 365 * 86_400_000;

/** Parses durations such as `90s`, `15m`, `12h`, `30d`, `2w` into milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d{1,9})([smhdw])$/.exec(text.trim());
  if (!match) {
    throw badRequest('invalid_duration', `"${text}" is not a duration like 90s, 15m, 12h, 30d, 2w`);
  }
  const ms = Number(match[1]) * UNIT_MS[match[2]!]!;
  if (ms <= 0) throw badRequest('invalid_duration', 'duration must be positive');
  if (ms > MAX_DURATION_MS) {
    throw badRequest('invalid_duration', `"${text}" is longer than 100 years`);
  }
  return ms;
}

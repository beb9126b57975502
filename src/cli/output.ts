import { once } from 'node:events';
import type { Writable } from 'node:stream';

/**
 * How CLI commands print: aligned columns for people, or `--json` for
 * scripts (the same objects the admin API returns).
 */
export type Cell = string | number | boolean | Date | null | undefined;

export function formatCell(value: Cell): string {
  if (value === null || value === undefined) return '-';
  if (value instanceof Date) return value.toISOString();
  return String(value);
}

export function table(headers: string[], rows: Cell[][]): string {
  const text = rows.map((row) => row.map(formatCell));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...text.map(line)].join('\n') + '\n';
}

/** `key: value` lines for one object. */
export function details(entries: Array<[string, Cell]>): string {
  const width = Math.max(...entries.map(([k]) => k.length));
  return entries.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${formatCell(v)}`).join('\n') + '\n';
}

export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

export async function writeOut(out: Writable, text: string): Promise<void> {
  if (!out.write(text)) await once(out, 'drain');
}

/** `value` as JSON when asked (--json), else in its human form. */
export function printAs(out: Writable, asJson: boolean, value: unknown, human: () => string) {
  return writeOut(out, asJson ? json(value) : human());
}

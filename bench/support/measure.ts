import fs from 'node:fs';

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}

export function seconds(startNs: bigint): number {
  return Number(process.hrtime.bigint() - startNs) / 1e9;
}

function statusField(pid: number, field: string): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return match ? Number(match[1]) * 1024 : NaN;
}

/**
 * Peak resident memory of a process while `work` runs: the kernel's high-water
 * mark (VmHWM), reset first through clear_refs, and VmRSS sampled every 50 ms
 * in case the reset is not allowed. Returns the larger, in bytes.
 */
export async function peakRss<T>(pid: number, work: () => Promise<T>): Promise<[T, number]> {
  let sampled = 0;
  let resetWorked = true;
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    resetWorked = false;
  }
  const sample = () => (sampled = Math.max(sampled, statusField(pid, 'VmRSS')));
  sample();
  const timer = setInterval(sample, 50);
  try {
    const result = await work();
    sample();
    const hwm = resetWorked ? statusField(pid, 'VmHWM') : 0;
    return [result, Math.max(sampled, hwm)];
  } finally {
    clearInterval(timer);
  }
}

export const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;
export const rate = (n: number) => Math.round(n).toLocaleString('en-US');

/** Runs `task` for every item with at most `limit` at a time. */
export async function inParallel<T>(
  items: readonly T[],
  limit: number,
  task: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      await task(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export interface Row {
  item: string;
  measure: string;
  value: string;
  reference?: string;
  ratio?: string;
  target?: string;
}

export function printTable(title: string, rows: readonly Row[]): void {
  const header: Row = {
    item: 'item',
    measure: 'measure',
    value: 'fleetgate',
    reference: 'reference',
    ratio: 'ratio',
    target: 'target',
  };
  const all = [header, ...rows];
  const keys = Object.keys(header) as Array<keyof Row>;
  const widths = keys.map((k) => Math.max(...all.map((r) => (r[k] ?? '').length)));
  const line = (r: Row) =>
    `| ${keys.map((k, i) => (r[k] ?? '').padEnd(widths[i]!)).join(' | ')} |`;
  process.stdout.write(`\n${title}\n\n${line(header)}\n`);
  process.stdout.write(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|\n`);
  for (const r of rows) process.stdout.write(`${line(r)}\n`);
}

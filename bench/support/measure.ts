import fs from 'node:fs';

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}

export function seconds(startNs: bigint): number {
  return Number(process.hrtime.bigint() - startNs) / 1e9;
}

/** A field of /proc/PID/status in bytes, e.g. VmRSS. */
export function statusField(pid: number, field: string): number {
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
  /** CPU seconds of the server / Postgres / the bench client during the item. */
  cpu?: string;
}

export function printTable(title: string, rows: readonly Row[]): void {
  const header: Row = {
    item: 'item',
    measure: 'measure',
    value: 'fleetgate',
    reference: 'reference',
    ratio: 'ratio',
    target: 'target',
    cpu: 'cpu s server/pg/client',
  };
  const all = [header, ...rows];
  const keys = Object.keys(header) as Array<keyof Row>;
  const widths = keys.map((k) => Math.max(...all.map((r) => (r[k] ?? '').length)));
  const line = (r: Row) => `| ${keys.map((k, i) => (r[k] ?? '').padEnd(widths[i]!)).join(' | ')} |`;
  process.stdout.write(`\n${title}\n\n${line(header)}\n`);
  process.stdout.write(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|\n`);
  for (const r of rows) process.stdout.write(`${line(r)}\n`);
}

const TICKS_PER_SECOND = 100;

function processTicks(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

export interface CpuSnapshot {
  server: number;
  postgres: Map<number, number>;
  client: number;
}

/**
 * CPU time so far of the fleetgate process, of the Postgres backends serving
 * the bench database, and of this (client) process: where an item's CPU went.
 */
export function cpuSnapshot(serverPid: number, postgresPids: readonly number[]): CpuSnapshot {
  const usage = process.cpuUsage();
  return {
    server: processTicks(serverPid) / TICKS_PER_SECOND,
    postgres: new Map(postgresPids.map((pid) => [pid, processTicks(pid) / TICKS_PER_SECOND])),
    // With the clients it ran and waited for (openssl s_time, pgbench, the C clients).
    client: (usage.user + usage.system) / 1e6 + childTicks() / TICKS_PER_SECOND,
  };
}

/** CPU ticks of this process's children that have ended (cutime + cstime). */
function childTicks(): number {
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[13]) + Number(fields[14]);
  } catch {
    return 0;
  }
}

/** "server / postgres / client" CPU seconds between two snapshots. */
export function cpuSplit(before: CpuSnapshot, after: CpuSnapshot): string {
  let postgres = 0;
  for (const [pid, total] of after.postgres) postgres += total - (before.postgres.get(pid) ?? 0);
  const f = (n: number) => n.toFixed(1);
  return `${f(after.server - before.server)} / ${f(postgres)} / ${f(after.client - before.client)}`;
}

/** Starts measuring; the returned function ends it and gives `cpuSplit`. */
export type CpuMeter = () => Promise<() => Promise<string>>;

export function cpuMeter(serverPid: number, postgresPids: () => Promise<number[]>): CpuMeter {
  return async () => {
    const before = cpuSnapshot(serverPid, await postgresPids());
    return async () => cpuSplit(before, cpuSnapshot(serverPid, await postgresPids()));
  };
}

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { BenchDatabase } from './support/bench-server.js';

export interface PgbenchOptions {
  clients: number;
  transactionsEach: number;
  rowsPerTransaction: number;
  /** The points go from here on, in a month whose partition exists (the fleetgate item created it). */
  startMs: number;
}

export interface PgbenchResult {
  tps: number;
  /** pgbench's own latency average, in ms. */
  latencyMs: number;
}

/**
 * PostgreSQL alone doing what a small upload stores: `pgbench`, one client
 * per device, one transaction per upload made of one `INSERT ... SELECT ...
 * ON CONFLICT DO NOTHING` of `rowsPerTransaction` rows into the same `points`
 * table (same partitions, same primary key), each client with a series id of
 * its own (and a device id of its own, as each upload has; no foreign key to
 * series or devices, as in the schema) and timestamps 1 s
 * apart from a random millisecond offset, as fleetgate's uploads are. Simple
 * query protocol, pgbench's default; `-j 2` threads for the 2 cores.
 */
export async function pgbenchSmallInserts(
  db: BenchDatabase,
  options: PgbenchOptions,
): Promise<PgbenchResult> {
  const script = path.join(db.workDir, 'small-insert.sql');
  fs.writeFileSync(
    script,
    [
      '\\set offset random(0, 864000000)',
      `insert into points (device_id, series_id, ts, value)
         select 1000000 + :client_id, 1000000 + :client_id, timestamptz 'epoch' + (:start + :offset + g * 1000) * interval '1 millisecond', (g % 2000) / 10.0
         from generate_series(0, ${options.rowsPerTransaction - 1}) g
         on conflict do nothing;`.replace(/\s+/g, ' '),
      '',
    ].join('\n'),
  );
  const args = [
    '-n',
    '-f',
    script,
    '-c',
    String(options.clients),
    '-j',
    '2',
    '-t',
    String(options.transactionsEach),
    '-D',
    `start=${Math.round(options.startMs)}`,
    db.url,
  ];
  const { code, stdout, stderr } = await run('pgbench', args);
  if (code !== 0) throw new Error(`pgbench failed (${code}): ${stderr}`);
  const tps = /tps = ([\d.]+)/.exec(stdout);
  const latency = /latency average = ([\d.]+) ms/.exec(stdout);
  if (!tps) throw new Error(`pgbench printed no tps: ${stdout}`);
  return { tps: Number(tps[1]), latencyMs: latency ? Number(latency[1]) : NaN };
}

function run(
  command: string,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

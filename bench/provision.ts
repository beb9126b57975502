/**
 * `npm run bench:provision [-- --macs N]`: provisions N MACs (default 10,000)
 * with the real CLI against a throwaway PostgreSQL database (DATABASE_URL),
 * then runs the same batch again (idempotent rerun) and prints both times.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const BIN = fileURLToPath(new URL('../../bin/fleetgate.js', import.meta.url));

async function main() {
  const base = process.env.DATABASE_URL;
  if (!base) throw new Error('set DATABASE_URL to a PostgreSQL the user may create databases on');
  const n = Number(process.argv[process.argv.indexOf('--macs') + 1] || 10_000) || 10_000;
  const dbName = `fleetgate_bench_provision_${process.pid}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  const url = new URL(base);
  url.pathname = `/${dbName}`;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-bench-provision-'));
  const env = { ...process.env, DATABASE_URL: url.toString(), FLEETGATE_CERTS_DIR: work };
  const run = (args: string[]) => execFileSync('node', [BIN, ...args], { env, stdio: 'pipe' });
  try {
    run(['migrate']);
    run(['identity', 'create', 'factory']);
    run(['ca', 'create', 'factory', '--out', path.join(work, 'ca')]);
    const macs: string[] = [];
    for (let i = 0; i < n; i++) {
      const hex = (0x02_00_00_00_00_00 + i).toString(16).padStart(12, '0');
      macs.push(hex.match(/../g)!.join(':'));
    }
    fs.writeFileSync(path.join(work, 'macs.txt'), macs.join('\n') + '\n');
    const serverCa = path.join(work, 'server-ca.crt');
    fs.writeFileSync(serverCa, fs.readFileSync(path.join(work, 'ca', 'ca.crt')));
    const args = [
      'provision',
      'factory',
      '--ca-dir',
      path.join(work, 'ca'),
      '--macs',
      path.join(work, 'macs.txt'),
      '--out',
      path.join(work, 'out'),
      '--server-ca',
      serverCa,
    ];
    let t = performance.now();
    run(args);
    const first = (performance.now() - t) / 1000;
    t = performance.now();
    run(args);
    const rerun = (performance.now() - t) / 1000;
    const lines = fs
      .readFileSync(path.join(work, 'out', 'manifest.csv'), 'utf8')
      .trim()
      .split('\n');
    console.log(
      JSON.stringify({
        macs: n,
        firstRunSeconds: Number(first.toFixed(1)),
        perSecond: Math.round(n / first),
        rerunSeconds: Number(rerun.toFixed(1)),
        manifestRows: lines.length - 1,
      }),
    );
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    await admin.query(`drop database if exists ${dbName} with (force)`);
    await admin.end();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

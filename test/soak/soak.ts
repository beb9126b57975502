/**
 * `npm run soak [-- --duration 600 --devices 200 --interval-ms 1000]`: a load
 * test, not part of `npm test`. Simulated devices upload small files over
 * keep-alive mTLS for the given number of seconds against a throwaway Postgres
 * cluster that is restarted twice meanwhile. Failed uploads are retried, as
 * firmware would, until answered 200. At the end it compares the points
 * acknowledged with 200 with the points stored (they must be equal: none lost,
 * none doubled), counts 5xx outside the restart windows (must be 0), and
 * reports the server's peak memory.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { DeviceClient, newDevice, type Answer } from '../support/device-client.js';
import { startFleetgate } from '../support/fleetgate-process.js';
import { createThrowawayPostgres } from '../support/throwaway-postgres.js';

function flag(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  return index > 0 ? Number(process.argv[index + 1]) : fallback;
}

const DURATION_S = flag('duration', 600);
const DEVICES = flag('devices', 200);
const INTERVAL_MS = flag('interval-ms', 1000);
/** A 5xx this close to a restart belongs to it. */
const RESTART_GRACE_MS = 5000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Stats {
  acknowledged: number;
  uploads: number;
  retries: number;
  fiveXx: Array<{ at: number; status: number }>;
  networkErrors: number;
}

async function main() {
  const cluster = await createThrowawayPostgres({ running: true });
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-soak-'));
  const db = {
    env: {
      DATABASE_URL: cluster.url,
      FLEETGATE_DATA_DIR: path.join(workDir, 'data'),
      FLEETGATE_CERTS_DIR: path.join(workDir, 'certs'),
    },
    workDir,
    drop: async () => fs.rmSync(workDir, { recursive: true, force: true }),
  };
  const server = await startFleetgate(db);
  const clients: DeviceClient[] = [];
  try {
    await server.cli(['identity', 'create', 'soak']);
    const psk = (
      await server.cli(['psk', 'issue', 'soak', '--max-devices', String(DEVICES)])
    ).stdout.trim();
    for (let i = 0; i < DEVICES; i++) {
      const client = new DeviceClient(server, newDevice());
      const bound = await client.bind(psk);
      if (bound.status !== 200) throw new Error(`bind failed: ${bound.text}`);
      clients.push(client);
    }
    process.stdout.write(`soak: ${DEVICES} devices bound, uploading for ${DURATION_S} s\n`);

    const stats: Stats = { acknowledged: 0, uploads: 0, retries: 0, fiveXx: [], networkErrors: 0 };
    const restarts: Array<{ from: number; to: number }> = [];
    const started = Date.now();
    const deadline = started + DURATION_S * 1000;
    const restarter = (async () => {
      for (const fraction of [1 / 3, 2 / 3]) {
        await sleep(Math.max(0, started + DURATION_S * 1000 * fraction - Date.now()));
        const from = Date.now();
        await cluster.restartAsync();
        restarts.push({ from, to: Date.now() });
        process.stdout.write(`soak: Postgres restarted (${Date.now() - from} ms)\n`);
      }
    })();
    await Promise.all(clients.map((client, i) => deviceLoop(client, i, deadline, stats)));
    await restarter;

    const stored = await countStored(cluster.url);
    const peakKb = Number(
      /VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${server.child.pid}/status`, 'utf8'))?.[1] ?? 0,
    );
    const outside = stats.fiveXx.filter(
      (e) =>
        !restarts.some((r) => e.at >= r.from - RESTART_GRACE_MS && e.at <= r.to + RESTART_GRACE_MS),
    );
    const report = {
      durationS: DURATION_S,
      devices: DEVICES,
      uploadsAcknowledged: stats.uploads,
      retries: stats.retries,
      networkErrors: stats.networkErrors,
      pointsAcknowledged: stats.acknowledged,
      pointsStored: stored,
      lost: Math.max(0, stats.acknowledged - stored),
      duplicated: Math.max(0, stored - stats.acknowledged),
      fiveXxInRestartWindows: stats.fiveXx.length - outside.length,
      fiveXxOutsideRestartWindows: outside.length,
      restarts: restarts.length,
      serverPeakRssMb: Math.round(peakKb / 102.4) / 10,
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    const ok =
      report.lost === 0 && report.duplicated === 0 && outside.length === 0 && restarts.length === 2;
    process.stdout.write(ok ? 'soak: PASSED\n' : 'soak: FAILED\n');
    if (!ok) process.exitCode = 1;
  } finally {
    for (const client of clients) await client.close().catch(() => undefined);
    await server.stop();
    cluster.destroy();
    await db.drop();
  }
}

/** One device: a file of 20 to 200 new points per upload, retried until 200. */
async function deviceLoop(client: DeviceClient, index: number, deadline: number, stats: Stats) {
  let nextTs = Date.now() - 20 * 24 * 3600_000 + index;
  await sleep(Math.random() * INTERVAL_MS);
  while (Date.now() < deadline) {
    const count = 20 + Math.floor(Math.random() * 181);
    const lines: string[] = [];
    for (let i = 0; i < count; i++, nextTs += 1000)
      lines.push(`${nextTs},${(Math.random() * 100).toFixed(3)}`);
    const content = `${lines.join('\n')}\n`;
    for (let attempt = 0; ; attempt++) {
      let answer: Answer | null = null;
      try {
        answer = await client.upload([{ name: 'temp', content }]);
      } catch {
        stats.networkErrors++;
      }
      if (answer?.status === 200) {
        stats.acknowledged += count;
        stats.uploads++;
        break;
      }
      if (answer && answer.status >= 500)
        stats.fiveXx.push({ at: Date.now(), status: answer.status });
      if (answer && answer.status < 500 && answer.status !== 429) {
        throw new Error(`device ${index}: unexpected ${answer.status} ${answer.text}`);
      }
      stats.retries++;
      await sleep(Number(answer?.headers['retry-after'] ?? 1) * 1000 * (0.5 + Math.random()));
    }
    await sleep(INTERVAL_MS * (0.5 + Math.random()));
  }
}

async function countStored(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>('select count(*) as n from points');
    return Number(rows[0]!.n);
  } finally {
    await client.end();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`soak: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 2;
});

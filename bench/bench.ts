import os from 'node:os';
import { benchBulkIngest } from './bulk-ingest.js';
import { benchChannels } from './channels.js';
import { benchCitusComparison } from './citus.js';
import { benchDeviceList } from './device-list.js';
import { benchMemory } from './memory.js';
import { benchNewConnections } from './new-connections.js';
import { benchSleepyDevices } from './sleepy-devices.js';
import { benchSmallUploads } from './small-uploads.js';
import {
  bindDevices,
  createBenchDatabase,
  startBenchServer,
  type BoundDevice,
} from './support/bench-server.js';
import { cpuMeter, printTable, type Row } from './support/measure.js';
import { withClient } from './support/bench-server.js';

/**
 * `npm run bench [-- --quick]`: items 1 to 4 and 6 to 8 of the benchmark against
 * the PostgreSQL server of DATABASE_URL, in a database of its own that is
 * dropped at the end. `--quick` runs everything at a tenth of the size;
 * `--items 1,3` runs only those items; `--cpu-prof DIR` profiles the server;
 * `--citus` runs the small-upload item on one PostgreSQL and on a 3-node Citus
 * cluster instead (bench/citus.ts).
 */
async function main() {
  const quick = process.argv.includes('--quick');
  const scale = quick ? 0.1 : 1;
  if (process.argv.includes('--citus')) {
    const cpu = os.cpus();
    printTable(
      `small uploads on one PostgreSQL and on a 3-node Citus cluster, one run: ` +
        `${cpu.length} x ${cpu[0]?.model ?? 'cpu'}, node ${process.version}, ${new Date().toISOString()}`,
      await benchCitusComparison(quick),
    );
    return;
  }
  const db = await createBenchDatabase();
  const server = await startBenchServer(db).catch(async (err: unknown) => {
    await db.drop();
    throw err;
  });
  const rows: Row[] = [];
  let devices: BoundDevice[] = [];
  try {
    devices = await bindDevices(server, 100);
    const meter = cpuMeter(server.child.pid!, () => backendPids(db.url, db.name));
    const itemsArg = process.argv.indexOf('--items');
    const items =
      itemsArg >= 0
        ? (process.argv[itemsArg + 1] ?? '').split(',')
        : ['1', '2', '3', '4', '6', '7', '8'];
    const step = (item: string, name: string) => {
      if (items.includes(item)) process.stderr.write(`${new Date().toISOString()} ${name}\n`);
      return items.includes(item);
    };
    if (step('1', '1 bulk ingest'))
      rows.push(
        ...(await benchBulkIngest(
          db,
          devices.slice(0, 8),
          server.baseUrl,
          {
            points: 2_000_000 * scale,
            pointsPerFile: 100_000 * scale,
            devices: 8,
          },
          meter,
        )),
      );
    if (step('2', '2 small uploads'))
      rows.push(
        ...(await benchSmallUploads(db, devices.slice(0, 50), server.baseUrl, 40 * scale, meter)),
      );
    if (step('3', '3 new connections'))
      rows.push(
        ...(await benchNewConnections(
          devices,
          server.port,
          server.caPem,
          db.workDir,
          {
            workers: 4,
            uploads: 1000 * scale,
            handshakeSeconds: quick ? 2 : 10,
          },
          meter,
        )),
      );
    if (step('6', '6 sleepy devices'))
      rows.push(
        ...(await benchSleepyDevices(
          server,
          devices,
          db.workDir,
          { workers: 4, uploads: 1000 * scale, handshakeSeconds: quick ? 2 : 10 },
          meter,
        )),
      );
    if (step('7', '7 channels')) {
      // 200 connected devices: the 100 bound ones and 100 more of another identity.
      const more = await bindDevices(server, 100, 'bench-mqtt');
      devices.push(...more);
      const channelDevices = devices.map((d, i) => ({
        ...d,
        identity: i < 100 ? 'bench' : 'bench-mqtt',
      }));
      rows.push(
        ...(await benchChannels(
          server,
          channelDevices.slice(0, 20),
          channelDevices,
          { batch: 100, batchesEach: Math.max(5, 50 * scale) },
          meter,
        )),
      );
    }
    if (step('4', '4 memory'))
      rows.push(
        ...(await benchMemory(
          server.child.pid!,
          devices,
          server.baseUrl,
          {
            bigBytes: 1024 ** 3 * scale,
            eachBytes: 10 * 1024 ** 2 * scale,
          },
          meter,
        )),
      );
    let plans = '';
    if (step('8', '8 device list')) {
      const listed = await benchDeviceList(db, server, { devices: 100_000 * scale, runs: 5 });
      rows.push(...listed.rows);
      plans = listed.plans;
    }
    const cpu = os.cpus();
    printTable(
      `fleetgate ingest benchmark${quick ? ' (--quick: a tenth of the sizes)' : ''}: ` +
        `${cpu.length} x ${cpu[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 1024 ** 3)} GB, ` +
        `node ${process.version}, ${new Date().toISOString()}`,
      rows,
    );
    if (plans) process.stdout.write(`\nItem 8, query plans (EXPLAIN ANALYZE):\n\n${plans}\n`);
  } finally {
    await Promise.all(devices.map((d) => d.client.close()));
    await server.stop();
    await db.drop();
  }
}

/** The Postgres backend processes serving the bench database right now. */
async function backendPids(url: string, database: string): Promise<number[]> {
  return withClient(url, async (c) => {
    const result = await c.query<{ pid: number }>(
      'select pid from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
      [database],
    );
    return result.rows.map((r) => r.pid);
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`benchmark failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});

import { citusCluster, createCitusTestDatabase } from '../test/support/citus-cluster.js';
import { benchSmallUploads } from './small-uploads.js';
import {
  bindDevices,
  createBenchDatabase,
  startBenchServer,
  withClient,
  type BenchDatabase,
  type BoundDevice,
} from './support/bench-server.js';
import { cpuSnapshot, type CpuMeter, type Row } from './support/measure.js';

/**
 * `npm run bench -- --citus`: the small-upload item (50 devices, keep-alive,
 * 100-point uploads) on one PostgreSQL (DATABASE_URL) and on a 3-node Citus
 * cluster (a throwaway one, or FLEETGATE_TEST_CITUS_URL), one after the other
 * in one run. On a 2-core machine the three Citus nodes share the same cores,
 * so this shows where the work goes (CPU per upload on each node), not a
 * speed-up.
 */
export async function benchCitusComparison(quick: boolean): Promise<Row[]> {
  const uploadsEach = quick ? 4 : 40;
  const plain = await createBenchDatabase();
  const rows = await run('PostgreSQL', plain, [{ label: 'pg', url: plain.url }], uploadsEach);
  const { nodes } = await citusCluster();
  const citus = await createCitusTestDatabase();
  const name = new URL(citus.url!).pathname.slice(1);
  const bench: BenchDatabase = {
    name,
    url: citus.url!,
    workDir: citus.workDir,
    env: citus.env,
    drop: citus.drop,
  };
  const nodeUrl = (url: string) => Object.assign(new URL(url), { pathname: `/${name}` }).toString();
  rows.push(
    ...(await run(
      'Citus 3 nodes',
      bench,
      nodes.map((n, i) => ({
        label: i === 0 ? 'coordinator' : `worker ${i}`,
        url: nodeUrl(n.url),
      })),
      uploadsEach,
    )),
  );
  return rows;
}

async function run(
  label: string,
  db: BenchDatabase,
  nodes: Array<{ label: string; url: string }>,
  uploadsEach: number,
): Promise<Row[]> {
  const server = await startBenchServer(db);
  let devices: BoundDevice[] = [];
  try {
    devices = await bindDevices(server, 50);
    const uploads = devices.length * uploadsEach;
    const meter = perNodeMeter(server.child.pid!, nodes, uploads);
    const rows = await benchSmallUploads(db, devices, server.baseUrl, uploadsEach, meter);
    return rows.map((r) => ({ ...r, item: `${r.item} (${label})` }));
  } finally {
    await Promise.all(devices.map((d) => d.client.close()));
    await server.stop();
    await db.drop();
  }
}

/**
 * CPU seconds of the fleetgate server and of the backends of each database
 * node serving this database, and CPU milliseconds per upload on each node.
 */
function perNodeMeter(
  serverPid: number,
  nodes: Array<{ label: string; url: string }>,
  uploads: number,
): CpuMeter {
  const backends = (url: string) =>
    withClient(url, async (c) => {
      const { rows } = await c.query<{ pid: number }>(
        'select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
      );
      return rows.map((r) => r.pid);
    });
  const postgresSeconds = (
    before: ReturnType<typeof cpuSnapshot>,
    after: ReturnType<typeof cpuSnapshot>,
  ) => {
    let total = 0;
    for (const [pid, t] of after.postgres) total += t - (before.postgres.get(pid) ?? 0);
    return total;
  };
  return async () => {
    const before = await Promise.all(
      nodes.map(async (n) => cpuSnapshot(serverPid, await backends(n.url))),
    );
    return async () => {
      const after = await Promise.all(
        nodes.map(async (n) => cpuSnapshot(serverPid, await backends(n.url))),
      );
      const server = after[0]!.server - before[0]!.server;
      const perNode = nodes.map((n, i) => {
        const s = postgresSeconds(before[i]!, after[i]!);
        return `${n.label} ${s.toFixed(1)} s (${((s * 1000) / uploads).toFixed(2)} ms/upload)`;
      });
      return `server ${server.toFixed(1)} s (${((server * 1000) / uploads).toFixed(2)} ms/upload); ${perNode.join('; ')}`;
    };
  };
}

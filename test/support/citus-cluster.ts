import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { migrate, type TestDatabase } from './test-database.js';
import { freePort } from './free-port.js';
import { skipBecause } from './skip.js';
import { findPostgresBinaries } from './throwaway-postgres.js';

/**
 * A Citus cluster for tests: a coordinator and two workers, each an initdb
 * cluster of its own in a temporary directory (the recipe of
 * ../shared/citus/README.md), or the one FLEETGATE_TEST_CITUS_URL names
 * (a coordinator URL; its workers are read from pg_dist_node).
 * One per test process, stopped and deleted when the process exits.
 */
export interface CitusCluster {
  /** Server URLs (database `postgres`), the coordinator first. */
  nodes: Array<{ host: string; port: number; url: string }>;
}

let cluster: Promise<CitusCluster> | undefined;
let stopOwn: (() => void) | undefined;

/** Why a Citus cluster cannot run here, or undefined when it can. */
export async function citusUnavailable(): Promise<string | undefined> {
  if (process.env.FLEETGATE_TEST_CITUS_URL) return undefined;
  const { dir, reason } = await findPostgresBinaries();
  if (!dir) return reason;
  const pkglib = execFileSync('pg_config', ['--pkglibdir'], { encoding: 'utf8' }).trim();
  if (!fs.existsSync(path.join(pkglib, 'citus.so'))) {
    return `Citus is not installed for this PostgreSQL (${pkglib}/citus.so missing; run ../shared/citus/install.sh as root)`;
  }
  if (process.getuid?.() !== 0 && os.userInfo().username !== 'postgres') {
    return 'the throwaway cluster runs initdb through runuser, which needs root';
  }
  return undefined;
}

/**
 * The first hook of a Citus suite: skips it, saying why, outside the
 * PostgreSQL run of the tests (the suite brings its own cluster, whatever the
 * database of the run, and runs once) or where a cluster cannot run; otherwise
 * starts the cluster, so that the suite's own hooks find it up.
 */
export function useCitusCluster(): void {
  before(async function () {
    this.timeout(180_000);
    if (!process.env.DATABASE_URL) {
      skipBecause(this, 'the Citus suite runs once, in the PostgreSQL run of the tests');
    }
    const why = await citusUnavailable();
    if (why) skipBecause(this, why);
    await citusCluster();
  });
}

export function citusCluster(): Promise<CitusCluster> {
  cluster ??= process.env.FLEETGATE_TEST_CITUS_URL
    ? givenCluster(process.env.FLEETGATE_TEST_CITUS_URL)
    : startOwnCluster();
  cluster.catch(() => (cluster = undefined));
  return cluster;
}

function nodeUrl(host: string, port: number, database = 'postgres'): string {
  return `postgres://postgres@${host}:${port}/${database}`;
}

async function givenCluster(url: string): Promise<CitusCluster> {
  const coordinator = new URL(url);
  const rows = await query<{ nodename: string; nodeport: number }>(
    url,
    "select nodename, nodeport from pg_dist_node where noderole = 'primary' and groupid <> 0 order by nodeport",
  );
  const user = decodeURIComponent(coordinator.username || 'postgres');
  const at = (host: string, port: number) => `postgres://${user}@${host}:${port}/postgres`;
  return {
    nodes: [
      {
        host: coordinator.hostname,
        port: Number(coordinator.port || 5432),
        url: at(coordinator.hostname, Number(coordinator.port || 5432)),
      },
      ...rows.map((r) => ({ host: r.nodename, port: r.nodeport, url: at(r.nodename, r.nodeport) })),
    ],
  };
}

async function startOwnCluster(): Promise<CitusCluster> {
  const { dir: bin, reason } = await findPostgresBinaries();
  if (!bin) throw new Error(reason);
  const root = process.getuid?.() === 0;
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-citus-'));
  fs.chmodSync(base, 0o755);
  if (root) execFileSync('chown', ['postgres:postgres', base]);
  const asOwner = (tool: string, args: string[]) => {
    const command = [path.join(bin, tool), ...args];
    const [file, argv] = root
      ? ['runuser', ['-u', 'postgres', '--', ...command]]
      : [command[0]!, command.slice(1)];
    execFileSync(file!, argv as string[], { stdio: 'pipe', cwd: base });
  };
  const ports = [await freePort(), await freePort(), await freePort()];
  const started: string[] = [];
  stopOwn = () => {
    for (const dataDir of started) {
      try {
        asOwner('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
      } catch {
        // already stopped
      }
    }
    fs.rmSync(base, { recursive: true, force: true });
  };
  process.once('exit', () => stopOwn?.());
  for (const port of ports) {
    const dataDir = path.join(base, String(port));
    asOwner('initdb', ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync']);
    fs.appendFileSync(
      path.join(dataDir, 'postgresql.conf'),
      [
        `port = ${port}`,
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${base}'`,
        "shared_preload_libraries = 'citus'",
        'fsync = off',
        'max_connections = 300',
        // Inter-node connections of a throwaway cluster need no TLS.
        "citus.node_conninfo = 'sslmode=disable'",
        '',
      ].join('\n'),
    );
    asOwner('pg_ctl', ['-D', dataDir, '-l', `${dataDir}.log`, '-w', '-t', '60', 'start']);
    started.push(dataDir);
  }
  return {
    nodes: ports.map((port) => ({ host: '127.0.0.1', port, url: nodeUrl('127.0.0.1', port) })),
  };
}

/**
 * A database of its own on every node, with the extension on all three and
 * the workers registered in it (Citus metadata is per database), migrated by
 * `fleetgate migrate`, which distributes the tables. Dropped afterwards.
 */
export async function createCitusTestDatabase(): Promise<TestDatabase> {
  const { nodes } = await citusCluster();
  const [coordinator, ...workers] = nodes;
  const name = `fleetgate_citus_${crypto.randomBytes(6).toString('hex')}`;
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-test-'));
  const urlOf = (node: { url: string }, database: string) => {
    const url = new URL(node.url);
    url.pathname = `/${database}`;
    return url.toString();
  };
  for (const node of nodes) {
    await query(node.url, `create database ${name}`);
    await query(urlOf(node, name), 'create extension citus');
  }
  const url = urlOf(coordinator!, name);
  await query(url, 'select citus_set_coordinator_host($1, $2)', [
    coordinator!.host,
    coordinator!.port,
  ]);
  for (const worker of workers) {
    await query(url, 'select citus_add_node($1, $2)', [worker.host, worker.port]);
  }
  const env = {
    FLEETGATE_DATA_DIR: path.join(workDir, 'data'),
    FLEETGATE_CERTS_DIR: path.join(workDir, 'certs'),
    FLEETGATE_MQTT_PORT: 'off',
    DATABASE_URL: url,
  };
  await migrate(env);
  return {
    env,
    url,
    workDir,
    drop: async () => {
      for (const node of [...workers, coordinator!]) {
        await query(node.url, `drop database if exists ${name} with (force)`);
      }
      fs.rmSync(workDir, { recursive: true, force: true });
    },
  };
}

export async function query<R extends pg.QueryResultRow>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

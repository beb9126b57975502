import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { DeviceClient, type TestDevice } from '../../test/support/device-client.js';
import { startFleetgate, type FleetgateProcess } from '../../test/support/fleetgate-process.js';
import { makeDeviceCertificates } from './device-certs.js';
import { inParallel } from './measure.js';

/** A database of its own on DATABASE_URL's server, dropped at the end. */
export interface BenchDatabase {
  name: string;
  url: string;
  workDir: string;
  env: Record<string, string>;
  drop(): Promise<void>;
}

export function serverUrl(): string {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('the benchmark needs DATABASE_URL (a real PostgreSQL server)');
  return url;
}

export async function withClient<T>(
  url: string,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function createBenchDatabase(name?: string): Promise<BenchDatabase> {
  const admin = serverUrl();
  const dbName = name ?? `fleetgate_bench_${crypto.randomBytes(4).toString('hex')}`;
  const exists = await withClient(admin, async (c) => {
    const found = await c.query('select 1 from pg_database where datname = $1', [dbName]);
    if (found.rowCount === 0) await c.query(`create database ${dbName}`);
    return found.rowCount !== 0;
  });
  const url = new URL(admin);
  url.pathname = `/${dbName}`;
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-bench-'));
  if (exists) process.stderr.write(`reusing database ${dbName}\n`);
  return {
    name: dbName,
    url: url.toString(),
    workDir,
    env: {
      DATABASE_URL: url.toString(),
      FLEETGATE_DATA_DIR: path.join(workDir, 'data'),
      FLEETGATE_CERTS_DIR: path.join(workDir, 'certs'),
    },
    drop: async () => {
      await withClient(admin, (c) => c.query(`drop database if exists ${dbName} with (force)`));
      fs.rmSync(workDir, { recursive: true, force: true });
    },
  };
}

/**
 * Limits raised so that the 1 GB upload is allowed, and the per-device upload
 * throttle off so that it measures ingest; logging stays at the production default.
 */
export const BENCH_SERVER_ENV = {
  FLEETGATE_MAX_UPLOAD_BYTES: String(4 * 1024 ** 3),
  FLEETGATE_UPLOADS_PER_DEVICE: '0',
  // 100 concurrent uploads share the pool: those queued must wait, not get 503.
  FLEETGATE_DB_ACQUIRE_TIMEOUT_MS: String(600_000),
  FLEETGATE_REQUEST_TIMEOUT_MS: String(3_600_000),
  FLEETGATE_LOG_LEVEL: 'info',
  // Item 7: MQTT on a free port, no per-minute cap (it measures ingest).
  FLEETGATE_MQTT_PORT: '0',
  FLEETGATE_MQTT_MESSAGES_PER_MINUTE: '0',
};

/** `--cpu-prof DIR` on the bench's command line profiles the server into DIR (see BENCHMARKS.md). */
export function startBenchServer(db: BenchDatabase): Promise<FleetgateProcess> {
  const i = process.argv.indexOf('--cpu-prof');
  const profile: Record<string, string> =
    i >= 0 && process.argv[i + 1]
      ? {
          NODE_OPTIONS: `--import=${new URL('./cpu-profile.js', import.meta.url).href}`,
          FLEETGATE_BENCH_PROFILE_DIR: path.resolve(process.argv[i + 1]!),
        }
      : {};
  return startFleetgate(
    { env: db.env, workDir: db.workDir, drop: db.drop },
    { ...BENCH_SERVER_ENV, ...profile },
  );
}

export interface BoundDevice {
  device: TestDevice;
  client: DeviceClient;
}

/** Devices with their own certificates, bound with one PSK, each with a keep-alive connection. */
export async function bindDevices(
  server: FleetgateProcess,
  count: number,
  identity = 'bench',
): Promise<BoundDevice[]> {
  const created = await server.cli(['identity', 'create', identity]);
  if (created.code !== 0 && !/exists/.test(created.stderr)) throw new Error(created.stderr);
  const issued = await server.cli(['psk', 'issue', identity]);
  if (issued.code !== 0) throw new Error(issued.stderr);
  const psk = issued.stdout.trim();
  const certificates = await makeDeviceCertificates(
    path.join(server.env.FLEETGATE_DATA_DIR!, 'devices'),
    count,
  );
  const devices: BoundDevice[] = certificates.map((device) => ({
    device,
    client: new DeviceClient(server, device),
  }));
  await inParallel(devices, 8, async ({ client }) => {
    const bound = await client.bind(psk);
    if (bound.status !== 200) throw new Error(`bind failed: ${bound.status} ${bound.text}`);
  });
  return devices;
}

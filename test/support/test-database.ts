import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

/**
 * Each test file gets a database of its own: on the server named by
 * DATABASE_URL a freshly created one (dropped afterwards), otherwise a fresh
 * embedded data directory (deleted afterwards).
 */
export interface TestDatabase {
  /** Environment for fleetgate processes that should use this database. */
  env: Record<string, string>;
  /** Set on a real Postgres: a URL for direct checks from the test. */
  url?: string;
  workDir: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-test-'));
  const serverUrl = process.env.DATABASE_URL;
  const base = {
    FLEETGATE_DATA_DIR: path.join(workDir, 'data'),
    FLEETGATE_CERTS_DIR: path.join(workDir, 'certs'),
    // MQTT tests turn it on (port 0); other servers must not all claim 8883.
    FLEETGATE_MQTT_PORT: 'off',
  };
  if (!serverUrl) {
    return {
      env: base,
      workDir,
      drop: async () => fs.rmSync(workDir, { recursive: true, force: true }),
    };
  }
  const name = `fleetgate_test_${crypto.randomBytes(6).toString('hex')}`;
  await withAdmin(serverUrl, (client) => client.query(`create database ${name}`));
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    env: { ...base, DATABASE_URL: url.toString() },
    url: url.toString(),
    workDir,
    drop: async () => {
      await withAdmin(serverUrl, (client) =>
        client.query(`drop database if exists ${name} with (force)`),
      );
      fs.rmSync(workDir, { recursive: true, force: true });
    },
  };
}

async function withAdmin(url: string, fn: (client: pg.Client) => Promise<unknown>): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await fn(client);
  } finally {
    await client.end();
  }
}

/** Runs a query against the test database (real Postgres only). */
export async function queryTestDatabase<R extends pg.QueryResultRow>(
  db: TestDatabase,
  text: string,
  values: unknown[] = [],
): Promise<R[]> {
  if (!db.url) throw new Error('direct queries need DATABASE_URL');
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
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

export interface TestDatabaseOptions {
  /**
   * Start from a database whose schema is already at the latest migration: a
   * copy of a template that `fleetgate migrate` built once for this test run
   * (`CREATE DATABASE ... TEMPLATE` on PostgreSQL, a copied data directory on
   * the embedded database). Much faster than a server creating and migrating
   * its own database (a new embedded cluster takes PGlite 10 to 40 s on a
   * loaded 2-core machine, a copy about one). Leave it off for tests about a
   * first start: an absent data directory, migrations, their messages.
   */
  migrated?: boolean;
}

export async function createTestDatabase(options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-test-'));
  const serverUrl = process.env.DATABASE_URL;
  const base = {
    FLEETGATE_DATA_DIR: path.join(workDir, 'data'),
    FLEETGATE_CERTS_DIR: path.join(workDir, 'certs'),
    // MQTT tests turn it on (port 0); other servers must not all claim 8883.
    FLEETGATE_MQTT_PORT: 'off',
  };
  if (!serverUrl) {
    if (options.migrated) {
      const template = await embeddedTemplate();
      fs.mkdirSync(base.FLEETGATE_DATA_DIR, { mode: 0o700 });
      fs.cpSync(template, path.join(base.FLEETGATE_DATA_DIR, 'pgdata'), { recursive: true });
    }
    return {
      env: base,
      workDir,
      drop: async () => fs.rmSync(workDir, { recursive: true, force: true }),
    };
  }
  const name = `fleetgate_test_${crypto.randomBytes(6).toString('hex')}`;
  const create = async () => {
    const template = options.migrated ? ` template ${await postgresTemplate(serverUrl)}` : '';
    await withAdmin(serverUrl, (client) => client.query(`create database ${name}${template}`));
  };
  try {
    await create();
  } catch (err) {
    // The template is gone (dropped by someone else sharing this server): make it again, once.
    if (!options.migrated || (err as { code?: string }).code !== '3D000') throw err;
    postgresTemplateName = undefined;
    await create();
  }
  const url = databaseUrl(serverUrl, name);
  return {
    env: { ...base, DATABASE_URL: url },
    url,
    workDir,
    drop: async () => {
      await withAdmin(serverUrl, (client) =>
        client.query(`drop database if exists ${name} with (force)`),
      );
      fs.rmSync(workDir, { recursive: true, force: true });
    },
  };
}

function databaseUrl(serverUrl: string, name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

const BIN = fileURLToPath(new URL('../../../bin/fleetgate.js', import.meta.url));

/** `fleetgate migrate` as a real process, exactly as an operator runs it. */
export function migrate(env: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [BIN, 'migrate'],
      { env: { ...process.env, ...env } },
      (error, stdout, stderr) =>
        error ? reject(new Error(`fleetgate migrate failed: ${stderr}${stdout}`)) : resolve(),
    );
  });
}

// One template per test process, made on first use and removed when the run ends.
let embeddedTemplateDir: Promise<string> | undefined;
let postgresTemplateName: Promise<string> | undefined;
let templateRoot: string | undefined;

function embeddedTemplate(): Promise<string> {
  embeddedTemplateDir ??= (async () => {
    templateRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-template-'));
    const dataDir = path.join(templateRoot, 'data');
    await migrate({
      FLEETGATE_DATA_DIR: dataDir,
      FLEETGATE_CERTS_DIR: path.join(templateRoot, 'certs'),
    });
    return path.join(dataDir, 'pgdata');
  })();
  embeddedTemplateDir.catch(() => (embeddedTemplateDir = undefined));
  return embeddedTemplateDir;
}

function postgresTemplate(serverUrl: string): Promise<string> {
  postgresTemplateName ??= (async () => {
    const name = `fleetgate_template_${crypto.randomBytes(6).toString('hex')}`;
    await withAdmin(serverUrl, (client) => client.query(`create database ${name}`));
    try {
      await migrate({ DATABASE_URL: databaseUrl(serverUrl, name) });
    } catch (err) {
      await dropTemplate(serverUrl, name);
      throw err;
    }
    return name;
  })();
  postgresTemplateName.catch(() => (postgresTemplateName = undefined));
  return postgresTemplateName;
}

async function dropTemplate(serverUrl: string, name: string): Promise<void> {
  await withAdmin(serverUrl, (client) =>
    client.query(`drop database if exists ${name} with (force)`),
  );
}

process.once('exit', () => {
  if (templateRoot) fs.rmSync(templateRoot, { recursive: true, force: true });
});

/** A mocha root hook (loaded by .mocharc.cjs): drops this run's PostgreSQL template. */
export const mochaHooks = {
  async afterAll(): Promise<void> {
    const serverUrl = process.env.DATABASE_URL;
    const pending = postgresTemplateName;
    if (!serverUrl || !pending) return;
    const name = await pending.catch(() => undefined);
    if (name) await dropTemplate(serverUrl, name);
  },
};

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

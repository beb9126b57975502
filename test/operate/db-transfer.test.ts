import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import pg from 'pg';
import { AdminClient } from '../support/admin-client.js';
import { DeviceClient, newDevice } from '../support/device-client.js';
import {
  BIN,
  runCli,
  startFleetgate,
  type FleetgateProcess,
} from '../support/fleetgate-process.js';
import type { TestDatabase } from '../support/test-database.js';

/** The PostgreSQL server the target databases are created on (CI always has one). */
const SERVER_URL = process.env.DATABASE_URL || 'postgres://root@127.0.0.1:5432/postgres';

async function onServer<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function createPgDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `fleetgate_transfer_${crypto.randomBytes(6).toString('hex')}`;
  await onServer(SERVER_URL, (c) => c.query(`create database ${name}`));
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      await onServer(SERVER_URL, (c) => c.query(`drop database if exists ${name} with (force)`));
    },
  };
}

/** Runs a shell pipeline with this environment. */
function sh(script: string, env: Record<string, string>) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      '/bin/sh',
      ['-c', script],
      { env: { ...process.env, ...env }, maxBuffer: 256 * 1024 * 1024 },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** Rows per table of an export, each table's rows sorted: comparable between two databases. */
function rowsByTable(exported: string): Record<string, string[]> {
  const tables: Record<string, string[]> = {};
  let table = '';
  for (const line of exported.split('\n').slice(1)) {
    if (line.startsWith('["table"')) tables[(table = JSON.parse(line)[1])] = [];
    else if (line.startsWith('{')) tables[table]!.push(line);
  }
  for (const rows of Object.values(tables)) rows.sort();
  return tables;
}

const JAN = Date.UTC(2024, 0, 10);
const MAR = Date.UTC(2024, 2, 10);
const values = (from: number, n: number) =>
  Array.from({ length: n }, (_, i) => `${from + i * 1000},${(i * 0.37).toFixed(2)}`).join('\n') +
  '\n';

describe('operate: fleetgate db export | db import, embedded to PostgreSQL', function () {
  this.timeout(240_000);
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-transfer-'));
  // The source is always the embedded database, whatever DATABASE_URL the suite runs with.
  const embedded: Record<string, string> = {
    DATABASE_URL: '',
    FLEETGATE_DATA_DIR: path.join(workDir, 'data'),
    FLEETGATE_CERTS_DIR: path.join(workDir, 'certs'),
  };
  const source: TestDatabase = { env: embedded, workDir, drop: async () => undefined };
  const targets: { drop(): Promise<void> }[] = [];
  let server: FleetgateProcess | undefined;
  const device = newDevice();

  before(async () => {
    server = await startFleetgate(source);
    const cli = async (args: string[]) => {
      const r = await server!.cli(args);
      if (r.code !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
      return r.stdout.trim();
    };
    await cli(['identity', 'create', 'plant-a']);
    await cli(['identity', 'create', 'plant-b']);
    const psk = await cli(['psk', 'issue', 'plant-a']);
    await cli(['psk', 'issue', 'plant-b']);
    await cli(['psk', 'revoke', '2']);
    const client = new DeviceClient(server, device);
    expect((await client.bind(psk)).status).to.equal(200);
    const upload = await client.upload([
      { name: 'temperature', content: values(JAN, 1500) },
      { name: 'humidity', content: values(MAR, 700) },
    ]);
    expect(upload.status, upload.text).to.equal(200);
    await client.close();
    // Moving off the embedded database is done with the server stopped.
    await server.stop();
    server = undefined;
  });

  after(async () => {
    await server?.stop();
    for (const t of targets) await t.drop();
    fs.rmSync(workDir, { recursive: true, force: true });
  });

  it('moves every row: the PostgreSQL copy exports the same rows, the device and its points work there', async () => {
    const target = await createPgDatabase();
    targets.push(target);
    const moved = await sh(
      `node "${BIN}" db export | DATABASE_URL="$TARGET" node "${BIN}" db import`,
      {
        ...embedded,
        TARGET: target.url,
      },
    );
    expect(moved.code, moved.stderr).to.equal(0);
    expect(moved.stderr).to.match(/imported \d+ rows/);

    const before = await runCli(embedded, ['db', 'export']);
    const after = await runCli({ ...embedded, DATABASE_URL: target.url }, ['db', 'export']);
    expect(before.code, before.stderr).to.equal(0);
    expect(after.code, after.stderr).to.equal(0);
    const a = rowsByTable(before.stdout);
    const b = rowsByTable(after.stdout);
    expect(Object.keys(b).sort()).to.deep.equal(Object.keys(a).sort());
    for (const table of Object.keys(a)) expect(b[table], table).to.deep.equal(a[table]);
    expect(a.points).to.have.length(2200);
    expect(a.devices).to.have.length(1);

    // Checked straight in PostgreSQL as well, not only through the exporter.
    const direct = await onServer(target.url, async (c) => ({
      points: (await c.query('select count(*)::int as n, sum(value) as s from points')).rows[0],
      partitions: (
        await c.query(
          `select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid
           where i.inhparent = 'points'::regclass order by 1`,
        )
      ).rows.map((r) => r.relname),
      psks: (await c.query('select id, revoked_at is not null as revoked from psks order by id'))
        .rows,
    }));
    expect(direct.points.n).to.equal(2200);
    const expectedSum = [...Array(1500).keys(), ...Array(700).keys()].reduce(
      (s, i) => s + Number((i * 0.37).toFixed(2)),
      0,
    );
    expect(direct.points.s).to.be.closeTo(expectedSum, 1e-6);
    expect(direct.partitions).to.include.members(['points_2024_01', 'points_2024_03']);
    expect(direct.psks).to.deep.equal([
      { id: 1, revoked: false },
      { id: 2, revoked: true },
    ]);

    // A server on PostgreSQL takes over: the bound device uploads, its series has every point,
    // and new rows get fresh ids (the sequences moved past the copied ids).
    server = await startFleetgate({
      env: { ...embedded, DATABASE_URL: target.url },
      workDir,
      drop: async () => undefined,
    });
    const client = new DeviceClient(server, device);
    const upload = await client.upload([{ name: 'temperature', content: values(MAR, 3) }]);
    expect(upload.status, upload.text).to.equal(200);
    await client.close();
    const admin = new AdminClient(server);
    const series = await admin.get(`/v1/devices/${device.fingerprint}/series`);
    expect(
      series.json.series.map((s: { name: string; points: number }) => [s.name, s.points]),
    ).to.deep.equal([
      ['humidity', 700],
      ['temperature', 1503],
    ]);
    expect((await admin.post('/v1/identities', { name: 'plant-c' })).status).to.equal(201);
    expect((await admin.post('/v1/identities/plant-c/psks')).status).to.equal(201);
    await admin.close();
    await server.stop();
    server = undefined;
  });

  it('refuses a database that is not empty and a truncated export, importing nothing', async () => {
    const exported = await runCli(embedded, ['db', 'export']);
    expect(exported.code).to.equal(0);
    const file = path.join(workDir, 'export.jsonl');
    const lines = exported.stdout.trimEnd().split('\n');
    fs.writeFileSync(file, `${lines.slice(0, -1).join('\n')}\n`, { mode: 0o600 });

    const fresh = await createPgDatabase();
    targets.push(fresh);
    const truncated = await sh(`DATABASE_URL="$TARGET" node "${BIN}" db import < "${file}"`, {
      ...embedded,
      TARGET: fresh.url,
    });
    expect(truncated.code).to.equal(1);
    expect(truncated.stderr).to.contain('incomplete');
    const rows = await onServer(fresh.url, async (c) => {
      const n = async (t: string) =>
        (await c.query(`select count(*)::int as n from ${t}`)).rows[0].n;
      return [await n('identities'), await n('psks'), await n('points'), await n('audit_events')];
    });
    expect(rows).to.deep.equal([0, 0, 0, 0]);

    fs.writeFileSync(file, exported.stdout, { mode: 0o600 });
    const first = await sh(`DATABASE_URL="$TARGET" node "${BIN}" db import < "${file}"`, {
      ...embedded,
      TARGET: fresh.url,
    });
    expect(first.code, first.stderr).to.equal(0);
    const again = await sh(`DATABASE_URL="$TARGET" node "${BIN}" db import < "${file}"`, {
      ...embedded,
      TARGET: fresh.url,
    });
    expect(again.code).to.equal(1);
    expect(again.stderr).to.contain('not empty');

    const noUrl = await sh(`node "${BIN}" db import < "${file}"`, embedded);
    expect(noUrl.code).to.equal(1);
    expect(noUrl.stderr).to.contain('set DATABASE_URL');
  });
});

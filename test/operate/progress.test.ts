import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import pg from 'pg';
import { DeviceClient, newDevice } from '../support/device-client.js';
import { BIN, runCli, startFleetgate } from '../support/fleetgate-process.js';

const SERVER_URL = process.env.DATABASE_URL || 'postgres://root@127.0.0.1:5432/postgres';
const ESC = '\u001b';

/** Runs a shell command line under a pseudo-terminal (util-linux `script`): what a person sees. */
function onTerminal(command: string, env: Record<string, string>) {
  return new Promise<{ code: number; seen: string }>((resolve) => {
    execFile(
      'script',
      ['-qec', command, '/dev/null'],
      { env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout) => resolve({ code: error ? Number(error.code ?? 1) : 0, seen: stdout }),
    );
  });
}

async function onServer(url: string, text: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}

describe('operate: progress bars on long CLI jobs, only for a person at a terminal', function () {
  this.timeout(180_000);
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-progress-'));
  const env: Record<string, string> = {
    DATABASE_URL: '',
    FLEETGATE_DATA_DIR: path.join(workDir, 'data'),
    FLEETGATE_CERTS_DIR: path.join(workDir, 'certs'),
  };
  const file = path.join(workDir, 'export.jsonl');
  const target = `fleetgate_progress_${crypto.randomBytes(6).toString('hex')}`;
  const targetUrl = Object.assign(new URL(SERVER_URL), { pathname: `/${target}` }).toString();

  before(async () => {
    for (const name of ['plant-a', 'plant-b', 'plant-c']) {
      const r = await runCli(env, ['identity', 'create', name]);
      expect(r.code, r.stderr).to.equal(0);
    }
    await onServer(SERVER_URL, `create database ${target}`);
  });
  after(async () => {
    await onServer(SERVER_URL, `drop database if exists ${target} with (force)`);
    fs.rmSync(workDir, { recursive: true, force: true });
  });

  it('db export into a file draws a bar on the terminal, and the file stays clean', async () => {
    const run = await onTerminal(`node "${BIN}" db export > "${file}"`, env);
    expect(run.code, run.seen).to.equal(0);
    expect(run.seen).to.contain('db export [');
    expect(run.seen).to.match(/100% \| \d+\/\d+ rows/);
    const written = fs.readFileSync(file, 'utf8');
    expect(written).not.to.contain(ESC);
    expect(JSON.parse(written.split('\n')[0]!).format).to.equal('fleetgate-db-export');
  });

  it('draws nothing when the output goes through a pipe', async () => {
    const run = await onTerminal(`node "${BIN}" db export | cat > "${file}.piped"`, env);
    expect(run.code, run.seen).to.equal(0);
    expect(run.seen).not.to.contain('db export [');
    expect(run.seen).not.to.contain(`${ESC}[?25l`); // the bar hides the cursor
    expect(run.seen).to.contain('exported');
  });

  it('db import at a terminal draws a bar for the rows it imports', async () => {
    const run = await onTerminal(
      `DATABASE_URL="${targetUrl}" node "${BIN}" db import < "${file}"`,
      {
        ...env,
      },
    );
    expect(run.code, run.seen).to.equal(0);
    expect(run.seen).to.contain('db import [');
    expect(run.seen).to.contain('imported');
  });

  it('retention --yes draws a bar at a terminal, and none with --json', async () => {
    // Points two months old and older, stored by a real device on the PostgreSQL copy.
    const onPg = { ...env, DATABASE_URL: targetUrl };
    const server = await startFleetgate({ env: onPg, workDir, drop: async () => undefined });
    try {
      const psk = await server.cli(['psk', 'issue', 'plant-a']);
      const client = new DeviceClient(server, newDevice());
      expect((await client.bind(psk.stdout.trim())).status).to.equal(200);
      const lines = (from: number) =>
        Array.from({ length: 100 }, (_, i) => `${from + i * 1000},${i}`).join('\n') + '\n';
      const upload = await client.upload([
        { name: 'old', content: lines(Date.UTC(2020, 0, 5)) },
        { name: 'older', content: lines(Date.UTC(2019, 5, 5)) },
      ]);
      expect(upload.status, upload.text).to.equal(200);
      await client.close();
    } finally {
      await server.stop();
    }
    const json = await onTerminal(`node "${BIN}" retention --older-than 400d --yes --json`, onPg);
    expect(json.code, json.seen).to.equal(0);
    expect(json.seen).not.to.contain(ESC);
    expect(JSON.parse(json.seen.replace(/\r/g, '')).applied).to.equal(true);

    // Emptied; store them again and delete with the bar this time.
    const again = await startFleetgate({ env: onPg, workDir, drop: async () => undefined });
    try {
      const psk = await again.cli(['psk', 'issue', 'plant-b']);
      const client = new DeviceClient(again, newDevice());
      expect((await client.bind(psk.stdout.trim())).status).to.equal(200);
      const content = Array.from({ length: 50 }, (_, i) => `${Date.UTC(2020, 0, 5) + i},1`);
      expect(
        (await client.upload([{ name: 'old', content: `${content.join('\n')}\n` }])).status,
      ).to.equal(200);
      await client.close();
    } finally {
      await again.stop();
    }
    const human = await onTerminal(`node "${BIN}" retention --older-than 400d --yes`, onPg);
    expect(human.code, human.seen).to.equal(0);
    expect(human.seen).to.contain('retention [');
    expect(human.seen).to.match(/100% \| 50\/50 points/);
  });
});

import { skipBecause } from '../support/skip.js';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { AdminClient } from '../support/admin-client.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import { BIN, REPO_ROOT, runCli, startFleetgate } from '../support/fleetgate-process.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';
import { serverLogCaughtUp } from '../support/server-log.js';

/** Issue 14, "a smoother first hour": each rough edge a newcomer hit, as a test. */

const oneLine = (stderr: string) => {
  expect(stderr.endsWith('\n'), stderr).to.equal(true);
  expect(stderr.trimEnd().split('\n'), stderr).to.have.length(1);
};

describe('first hour: command line manners', () => {
  let db: TestDatabase;
  before(async () => (db = await createTestDatabase()));
  after(async () => db.drop());

  it('`--version` prints the package version', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8'));
    for (const flag of ['--version', '-V']) {
      const result = await runCli(db.env, [flag]);
      expect(result.code).to.equal(0);
      expect(result.stdout).to.equal(`${pkg.version}\n`);
    }
  });

  it('a usage mistake is one line on stderr and exit 1, not the whole help', async () => {
    for (const args of [
      ['identity', 'create'],
      ['bogus'],
      ['psk', 'issue', 'x', '--max-devices', 'many'],
      ['serve', '--unknown-flag'],
    ]) {
      const result = await runCli(db.env, args);
      expect(result.code, args.join(' ')).to.equal(1);
      oneLine(result.stderr);
      expect(result.stderr).to.match(/^fleetgate: error: .*--help/);
      expect(result.stdout).to.equal('');
    }
  });

  it('a configuration error names the environment variable, in one line', async () => {
    const result = await runCli({ ...db.env, FLEETGATE_PORT: 'http' }, ['serve']);
    expect(result.code).to.equal(1);
    oneLine(result.stderr);
    expect(result.stderr).to.match(/^fleetgate: invalid configuration: FLEETGATE_PORT: /);
  });

  it('DATABASE_URL=mysql://... says fleetgate needs PostgreSQL, naming DATABASE_URL', async () => {
    for (const args of [['identity', 'list'], ['serve']]) {
      const result = await runCli(
        { ...db.env, DATABASE_URL: 'mysql://root:secret@127.0.0.1:3306/fleet' },
        args,
      );
      expect(result.code).to.equal(1);
      oneLine(result.stderr);
      expect(result.stderr).to.match(/DATABASE_URL: must be a PostgreSQL URL/);
      expect(result.stderr).to.not.include('secret');
    }
  });
});

describe('first hour: the generated admin token survives a failed first start', () => {
  let db: TestDatabase;
  before(async () => (db = await createTestDatabase()));
  after(async () => db.drop());

  it('is not shown nor stored when a listener cannot start; the next start shows it', async () => {
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', () => resolve()));
    const busyPort = (busy.address() as AddressInfo).port;
    let failed = '';
    try {
      await startFleetgate(db, { FLEETGATE_ADMIN_TOKEN: '' }, ['--port', String(busyPort)]);
      expect.fail('the server started on a port in use');
    } catch (err) {
      failed = (err as Error).message;
    } finally {
      busy.close();
    }
    expect(failed).to.match(/server exited with 1/);
    expect(failed).to.match(/EADDRINUSE/);
    expect(failed).to.not.match(/fgadm_/);

    const server = await startFleetgate(db, { FLEETGATE_ADMIN_TOKEN: '' });
    try {
      await serverLogCaughtUp(server);
      const printed = server.output().match(/fgadm_[A-Za-z0-9_-]{43}/g) ?? [];
      expect(printed, server.output()).to.have.length(1);
      expect(server.output()).to.match(/"token":"generated"/);
      const admin = new AdminClient(server, printed[0]!);
      expect((await admin.get('/v1/identities')).status).to.equal(200);
      await admin.close();
    } finally {
      await server.stop();
    }
  });
});

describe('first hour: the CLI beside a server on PostgreSQL', () => {
  let db: TestDatabase;
  before(async function () {
    db = await createTestDatabase();
    if (!db.url) {
      await db.drop();
      skipBecause(this, 'needs a server on PostgreSQL (DATABASE_URL)');
    }
  });
  after(async () => db?.url && db.drop());

  it('refuses to create an embedded database when DATABASE_URL is missing, and says why', async () => {
    const server = await startFleetgate(db);
    const withoutUrl = { ...db.env };
    delete withoutUrl.DATABASE_URL;
    const pgdata = path.join(db.env.FLEETGATE_DATA_DIR!, 'pgdata');
    try {
      const result = await runCli({ ...withoutUrl, DATABASE_URL: '' }, ['psk', 'issue', 'anyone']);
      expect(result.code).to.equal(1);
      oneLine(result.stderr);
      expect(result.stderr).to.match(/uses PostgreSQL at postgres.*set it|DATABASE_URL/);
      expect(result.stderr).to.include(`pid ${server.child.pid}`);
      expect(result.stdout).to.equal('');
      expect(fs.existsSync(pgdata)).to.equal(false);
      // With DATABASE_URL the same command works.
      expect((await server.cli(['identity', 'create', 'anyone'])).code).to.equal(0);
    } finally {
      await server.stop();
    }
    // The note goes with the server: the directory is free for an embedded database again.
    const after = await runCli({ ...withoutUrl, DATABASE_URL: '' }, ['identity', 'list']);
    expect(after.code, after.stderr).to.equal(0);
    expect(after.stderr).to.match(/creating an embedded one there/);
  });
});

describe('first hour: the run note never stops a server on PostgreSQL', () => {
  let db: TestDatabase;
  before(async function () {
    db = await createTestDatabase();
    if (!db.url) {
      await db.drop();
      skipBecause(this, 'needs a server on PostgreSQL (DATABASE_URL)');
    }
  });
  after(async () => db?.url && db.drop());

  it('starts when the data directory cannot be written, with a warning', async () => {
    const file = path.join(db.workDir, 'a-file');
    fs.writeFileSync(file, '');
    const server = await startFleetgate(db, { FLEETGATE_DATA_DIR: path.join(file, 'data') });
    try {
      expect(server.output()).to.match(/could not leave the run note/);
      expect((await server.cli(['identity', 'list'])).code).to.equal(0);
    } finally {
      await server.stop();
    }
  });
});

describe('first hour: output for scripts', () => {
  const fixture = useFixture();

  it('`--json` prints the same body as the admin API', async () => {
    const { server } = fixture();
    const identity = uniqueName('json');
    const { device, client } = await fixture().boundDevice(identity);
    expect(
      (await client.upload([{ name: 'temp', content: '1700000000000,1\n1700000001000,2\n' }]))
        .status,
    ).to.equal(200);
    const admin = new AdminClient(server);
    try {
      const fp = device.fingerprint;
      const pairs: Array<[string[], string]> = [
        [['identity', 'list'], '/v1/identities'],
        [['identity', 'show', identity], `/v1/identities/${identity}`],
        [['psk', 'list', identity], `/v1/identities/${identity}/psks`],
        [['devices', 'list', identity], `/v1/identities/${identity}/devices`],
        [['device', 'show', fp], `/v1/devices/${fp}`],
        [['audit', identity], `/v1/audit?identity=${identity}`],
        [['series', 'list', fp], `/v1/devices/${fp}/series`],
        [['query', fp, 'temp', '--limit', '1'], `/v1/devices/${fp}/points?series=temp&limit=1`],
        [['query', fp, 'temp', '--bucket', '1h'], `/v1/devices/${fp}/points?series=temp&bucket=1h`],
      ];
      for (const [args, route] of pairs) {
        const cli = await server.cli([...args, '--json']);
        expect(cli.code, cli.stderr).to.equal(0);
        const api = await admin.get(route);
        expect(api.status, route).to.equal(200);
        expect(JSON.parse(cli.stdout), args.join(' ')).to.deep.equal(api.json);
      }
    } finally {
      await admin.close();
    }
  });

  it('`fleetgate export ... | head` ends quietly with success', async () => {
    const { server } = fixture();
    const { device, client } = await fixture().boundDevice(uniqueName('head'));
    const lines = Array.from({ length: 40_000 }, (_, i) => `${1700000000000 + i},${i}`);
    const stored = await client.upload([{ name: 'temp', content: lines.join('\n') }]);
    expect(stored.status, stored.text).to.equal(200);
    const result = await new Promise<{ code: number; stdout: string; stderr: string }>(
      (resolve) => {
        execFile(
          'bash',
          [
            '-c',
            `set -o pipefail; "${process.execPath}" "${BIN}" export ${device.fingerprint} temp | head -n 2`,
          ],
          { env: { ...process.env, ...server.env } },
          (error, stdout, stderr) =>
            resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
        );
      },
    );
    expect(result.stderr).to.not.match(/EPIPE/);
    expect(result.stderr).to.equal('');
    expect(result.code).to.equal(0);
    expect(result.stdout).to.equal(`${lines[0]}\n${lines[1]}\n`);
  });
});

describe('first hour: no silent compile on the first `npx fleetgate`', () => {
  const script = path.join(REPO_ROOT, 'scripts', 'build-if-stale.mjs');
  const run = (cwd: string, args: string[] = []) =>
    new Promise<{ code: number; stderr: string; ms: number }>((resolve) => {
      const started = Date.now();
      execFile(process.execPath, [script, ...args], { cwd }, (error, _stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, stderr, ms: Date.now() - started }),
      );
    });

  it('`prepare` and `npm start` build only what is stale', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8'));
    expect(pkg.scripts.prepare).to.equal('node scripts/build-if-stale.mjs');
    expect(pkg.scripts.prestart).to.equal('node scripts/build-if-stale.mjs');

    // A checkout of its own, without TypeScript installed: a build attempt would fail.
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-stale-'));
    try {
      fs.mkdirSync(path.join(root, 'src', 'cli'), { recursive: true });
      fs.mkdirSync(path.join(root, 'dist', 'src', 'cli'), { recursive: true });
      fs.writeFileSync(path.join(root, 'package.json'), '{"name":"x"}');
      fs.writeFileSync(path.join(root, 'tsconfig.json'), '{}');
      fs.writeFileSync(path.join(root, 'src', 'cli', 'main.ts'), 'export {};\n');
      const marker = path.join(root, 'dist', 'src', 'cli', 'main.js');
      fs.writeFileSync(marker, 'export {};\n');
      const past = new Date(Date.now() - 60_000);
      fs.utimesSync(path.join(root, 'src', 'cli', 'main.ts'), past, past);
      fs.utimesSync(path.join(root, 'tsconfig.json'), past, past);

      expect((await run(root, ['--check'])).code).to.equal(0);
      const fresh = await run(root);
      expect(fresh.code, fresh.stderr).to.equal(0);
      expect(fresh.stderr).to.equal('');

      fs.utimesSync(marker, new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));
      expect((await run(root, ['--check'])).code).to.equal(3);
      const stale = await run(root);
      expect(stale.code).to.not.equal(0); // it tried to compile, and there is no tsc here
      expect(stale.stderr).to.match(/compiling TypeScript/);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

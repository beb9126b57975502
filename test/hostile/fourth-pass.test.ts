import { spawn } from 'node:child_process';
import path from 'node:path';
import { expect } from 'chai';
import pg from 'pg';
import { request } from 'undici';
import { PreparingClient } from '../../src/db/prepared-statements.js';
import { REPO_ROOT } from '../support/fleetgate-process.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import { sample, scrape } from '../support/metrics-scrape.js';
import { skipBecause } from '../support/skip.js';
import { queryTestDatabase } from '../support/test-database.js';

/**
 * Findings of the fourth adversarial pass (docs/security-review-2026-12.md,
 * "Fourth pass"): each case failed before its fix.
 */
describe('fourth pass: prepared statements', function () {
  this.timeout(120_000);
  // One pooled connection: every request uses the connection that prepared the statements.
  const fx = useFixture({ FLEETGATE_DB_POOL_SIZE: '1' });

  it('keeps answering 200 after a schema change alters what a prepared statement returns (cached plan must not change result type)', async function () {
    if (!fx().db.url)
      skipBecause(this, 'changes the schema from a second session; the embedded database has one');
    const { client } = await fx().boundDevice(uniqueName('plan'));
    const upload = (i: number) =>
      client.upload([{ name: 'plan', content: `${1_764_500_000_000 + i},${i}\n` }]);
    // The first upload creates the series; the second goes through the fast path's
    // named statement. Both looked the device up through its named statement.
    for (const i of [0, 1]) expect((await upload(i)).status).to.equal(200);
    // A migration of another node (expand: a wider type) changes the result types
    // of both statements while this node runs.
    await queryTestDatabase(fx().db, 'alter table identities alter column name type varchar(200)');
    await queryTestDatabase(fx().db, 'alter table series alter column id type bigint');
    for (const i of [2, 3, 4]) {
      const answer = await upload(i);
      expect(answer.status, answer.text).to.equal(200);
    }
  });

  it('binds a device in the first transaction after such a schema change', async function () {
    if (!fx().db.url)
      skipBecause(this, 'changes the schema from a second session; the embedded database has one');
    const { client } = await fx().boundDevice(uniqueName('plan-tx'));
    expect((await client.upload([{ name: 'tx', content: '1764500000000,1\n' }])).status).to.equal(
      200,
    );
    await queryTestDatabase(fx().db, 'alter table identities alter column name type varchar(300)');
    // Binding looks the certificate up inside its transaction, where a failed
    // statement cannot be sent again: the transaction is aborted.
    const { client: next } = await fx().boundDevice(uniqueName('plan-tx-next'));
    const answer = await next.upload([{ name: 'tx', content: '1764500000000,1\n' }]);
    expect(answer.status, answer.text).to.equal(200);
  });
  it('sends a named query config of the pool (the single-statement upload) again after its plan went stale', async function () {
    if (!fx().db.url) skipBecause(this, 'needs a PostgreSQL server');
    await queryTestDatabase(fx().db, 'create table plan_probe (id int, v text)');
    await queryTestDatabase(fx().db, "insert into plan_probe values (1, 'a')");
    const pool = new pg.Pool({ connectionString: fx().db.url, max: 1, Client: PreparingClient });
    try {
      const probe = () =>
        pool.query({ name: 'fourth_pass_probe', text: 'select id, v from plan_probe', values: [] });
      expect((await probe()).rows).to.deep.equal([{ id: 1, v: 'a' }]);
      await queryTestDatabase(fx().db, 'alter table plan_probe alter column id type bigint');
      expect((await probe()).rows).to.deep.equal([{ id: '1', v: 'a' }]);
      expect((await probe()).rows).to.deep.equal([{ id: '1', v: 'a' }]);
    } finally {
      await pool.end();
    }
  });
});

describe('fourth pass: server log', function () {
  this.timeout(60_000);

  it('holds a bounded amount of unwritten lines while nobody reads stdout (asynchronous log)', async () => {
    // The server's logger (sync: false) with a stdout pipe nobody reads: ~80 MB of
    // request lines. Before the fix every one of them waited in memory.
    const logger = path.join(REPO_ROOT, 'dist', 'src', 'server', 'logger.js');
    const script = `
      const { createLogger } = await import(${JSON.stringify(logger)});
      const log = createLogger('info', 1, { sync: false });
      const before = process.memoryUsage().heapUsed;
      for (let i = 0; i < 600000; i++) {
        log.info({ reqId: 'r'.repeat(36), path: '/device_endpoint', status: 401, i }, 'request');
      }
      globalThis.gc();
      process.stderr.write(JSON.stringify({ grown: process.memoryUsage().heapUsed - before }));
      process.kill(process.pid, 'SIGKILL');
    `;
    const child = spawn(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pause();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await new Promise((resolve) => child.once('exit', resolve));
    child.stdout.destroy();
    const { grown } = JSON.parse(stderr) as { grown: number };
    expect(grown, 'bytes of heap held by unwritten log lines').to.be.below(40 * 1024 * 1024);
  });
});

describe('fourth pass: server log of a real server', function () {
  this.timeout(120_000);
  const fx = useFixture();

  it('counts the lines it drops while nobody reads stdout, and keeps answering', async () => {
    const { server } = fx();
    const { client } = await fx().boundDevice(uniqueName('log-drop'));
    // Nobody reads the server's stdout from here on: the pipe fills, then the
    // 16 MiB buffer, then lines are dropped. Each admin request logs its path,
    // 12 KB here, so a few thousand requests are enough.
    server.child.stdout!.pause();
    const longPath = `/${'x'.repeat(12_000)}`;
    let dropped = 0;
    try {
      for (let batch = 0; batch < 200 && dropped === 0; batch++) {
        await Promise.all(
          Array.from({ length: 20 }, async () => {
            const res = await request(`${server.adminUrl}${longPath}`);
            await res.body.dump();
          }),
        );
        if (batch % 10 === 9)
          dropped = sample((await scrape(server)).text, 'fleetgate_log_lines_dropped_total');
      }
      expect(dropped, 'log lines dropped (metric)').to.be.above(0);
      const upload = await client.upload([{ name: 'drop', content: '1764500000000,1\n' }]);
      expect(upload.status, upload.text).to.equal(200);
      expect((await scrape(server)).status).to.equal(200);
    } finally {
      server.child.stdout!.resume();
    }
  });
});

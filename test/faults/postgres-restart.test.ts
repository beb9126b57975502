import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { buildMultipart, DeviceClient, newDevice, type Answer } from '../support/device-client.js';
import { BIN, startFleetgate, type FleetgateProcess } from '../support/fleetgate-process.js';
import { bindDevice, storedPoints } from '../support/stored-points.js';
import { gate, gatedBody, sessionsInTransaction, waitFor } from '../support/concurrency.js';
import { skipBecause } from '../support/skip.js';
import { queryTestDatabase, type TestDatabase } from '../support/test-database.js';
import {
  createThrowawayPostgres,
  findPostgresBinaries,
  type ThrowawayPostgres,
} from '../support/throwaway-postgres.js';
import { serverLogCaughtUp } from '../support/server-log.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const LINES = 40_000;

function seriesContent(start: number) {
  return Array.from({ length: LINES }, (_, i) => `${start + i},${i}`).join('\n') + '\n';
}

/** Bytes that COPY has received so far, over all sessions of the database (pg_stat_progress_copy). */
async function copiedBytes(db: TestDatabase): Promise<string> {
  const [row] = await queryTestDatabase<{ n: string }>(
    db,
    `select coalesce(sum(bytes_processed), 0)::text as n from pg_stat_progress_copy
     where datname = current_database()`,
  );
  return row!.n;
}

describe('faults: Postgres restarted under fleetgate', function () {
  this.timeout(180_000);
  let cluster: ThrowawayPostgres;
  let db: TestDatabase;
  let server: FleetgateProcess | undefined;

  before(async function () {
    const binaries = await findPostgresBinaries();
    if (!binaries.dir) skipBecause(this, binaries.reason!);
    cluster = await createThrowawayPostgres();
    const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-faults-'));
    db = {
      env: {
        DATABASE_URL: cluster.url,
        FLEETGATE_DATA_DIR: path.join(workDir, 'data'),
        FLEETGATE_CERTS_DIR: path.join(workDir, 'certs'),
      },
      url: cluster.url,
      workDir,
      drop: async () => fs.rmSync(workDir, { recursive: true, force: true }),
    };
  });
  after(async () => {
    await server?.stop();
    cluster?.destroy();
    await db?.drop();
  });

  it('waits for a database that is unreachable at start, with clear log lines and no stack trace', async () => {
    const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--host', '127.0.0.1'], {
      env: { ...process.env, ...db.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += String(chunk)));
    child.stderr.on('data', (chunk) => (output += String(chunk)));
    try {
      await waitFor(
        'two "database unreachable" log lines',
        () => (output.match(/database unreachable/g) ?? []).length >= 2,
        15_000,
      ).catch(() => undefined); // the expectations below say what is missing
      expect(output).to.match(/database unreachable, retrying/);
      expect(output).to.match(/ECONNREFUSED/);
      expect(output).to.not.match(/\n\s+at /);
      expect(child.exitCode).to.equal(null);
      cluster.start();
      await waitFor('fleetgate listening', () => /fleetgate listening/.test(output), 30_000).catch(
        () => undefined,
      );
      expect(output).to.match(/fleetgate listening/);
      // No stack trace at all, the lines of the retries still on their way included.
      const port = /"port":(\d+)[^\n]*fleetgate listening/.exec(output)?.[1];
      await serverLogCaughtUp({
        baseUrl: `https://localhost:${port}`,
        caPem: fs.readFileSync(path.join(db.env.FLEETGATE_CERTS_DIR!, 'dev-ca.crt'), 'utf8'),
        output: () => output,
      });
      expect(output).to.not.match(/\n\s+at /);
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    server = await startFleetgate(db, { FLEETGATE_UPLOADS_PER_DEVICE: '0' });
  });

  it('answers 503 with Retry-After to uploads cut by a restart, keeps none of them, and recovers by itself', async () => {
    const clients = Array.from({ length: 4 }, () => new DeviceClient(server!, newDevice()));
    for (const client of clients) await bindDevice(server!, client, 'fleet');
    const start = Date.now() - 10 * 60_000;
    // Each body is sent in two halves; the second waits for the gate.
    const secondHalves = gate();
    let firstHalvesSent = 0;
    const uploads = clients.map((client) => {
      const { body, contentType } = buildMultipart([
        { name: 'temp', content: seriesContent(start) },
      ]);
      const half = Math.floor(body.length / 2);
      return client
        .send(
          'POST',
          gatedBody(body, secondHalves.opened, () => firstHalvesSent++, half) as unknown as Buffer,
          { 'content-type': contentType },
        )
        .catch((err: Error) => ({ status: 0, text: err.message }) as Answer);
    });
    // Restart only once every first half is in an open transaction and fleetgate has
    // passed on all of it: the client has written it, each of the four sessions waits
    // for fleetgate to send more (pg_stat_activity: ClientRead), and the bytes COPY has
    // received stop growing. Restarting earlier cuts clients still writing (EPIPE).
    await waitFor('the four clients to write their first halves', () => firstHalvesSent === 4);
    let last = '';
    let steady = 0;
    await waitFor(
      'four uploads mid-transaction with all their first halves in PostgreSQL',
      async () => {
        const waiting = await sessionsInTransaction(db, { waitingForServer: true });
        const now = `${waiting}/${await copiedBytes(db)}`;
        steady = waiting === 4 && now === last ? steady + 1 : 0;
        last = now;
        return steady >= 3;
      },
      60_000,
      100,
    );
    cluster.restart();
    secondHalves.open();
    const answers = await Promise.all(uploads);
    for (const answer of answers) {
      expect(answer.status, `${answer.text}\n${server!.output().slice(-4000)}`).to.equal(503);
      expect(answer.json.code).to.equal('unavailable');
      expect(Number(answer.headers['retry-after'])).to.be.greaterThan(0);
    }
    for (const client of clients) {
      expect(await storedPoints(db, server!, client.device!, 'temp')).to.have.length(0);
    }

    // While the database is down: a quick 503, never a 500 or a hang.
    cluster.stop();
    const down = await clients[0]!.upload([{ name: 'temp', content: `${start},1\n` }]);
    expect(down.status, down.text).to.equal(503);
    expect(down.headers['retry-after']).to.be.a('string');
    cluster.start();

    // The same server, not restarted, takes the retries.
    for (const client of clients) {
      let answer: Answer | undefined;
      for (let attempt = 0; attempt < 20; attempt++) {
        answer = await client.upload([{ name: 'temp', content: seriesContent(start) }]);
        if (answer.status !== 503) break;
        await sleep(Number(answer.headers['retry-after'] ?? 1) * 200);
      }
      expect(answer!.status, answer!.text).to.equal(200);
      expect(answer!.json.stored).to.equal(LINES);
      expect(await storedPoints(db, server!, client.device!, 'temp')).to.have.length(LINES);
    }
    expect(server!.child.exitCode).to.equal(null);
    await serverLogCaughtUp(server!);
    expect(server!.output()).to.not.match(/"status":500/);
    for (const client of clients) await client.close();
  });
});

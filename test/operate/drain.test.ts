import net from 'node:net';
import { PassThrough } from 'node:stream';
import { expect } from 'chai';
import { request } from 'undici';
import { AdminClient, boundDevice } from '../support/admin-client.js';
import { newDevice, type Answer, type DeviceClient } from '../support/device-client.js';
import { startFleetgate, type FleetgateProcess } from '../support/fleetgate-process.js';
import { sessionsInTransaction, waitFor } from '../support/concurrency.js';
import { storedPoints } from '../support/stored-points.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';

/**
 * SIGTERM with an upload in flight, on a real process: the server stops
 * accepting, /readyz says 503, the upload finishes (200, all stored) within
 * the drain deadline, or is cut and rolled back (nothing stored) after it.
 */
const BOUNDARY = '----fgdrain0123456789';
const lines = (from: number, count: number) =>
  Array.from({ length: count }, (_, i) => `${1700000000000 + from + i},${from + i}\n`).join('');

function slowUpload(client: DeviceClient) {
  const body = new PassThrough();
  body.write(
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="temp"; filename="temp.csv"\r\n` +
      'Content-Type: text/plain\r\n\r\n',
  );
  body.write(lines(0, 2500));
  const answer: Promise<Answer> = client.send('POST', body, {
    'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
  });
  return {
    answer,
    /**
     * The server is reading the upload: the client has sent what was written
     * and, on PostgreSQL, the upload's transaction is open (pg_stat_activity).
     */
    async inFlight(db: TestDatabase) {
      await waitFor('the client to send the first 2500 lines', () => body.readableLength === 0);
      if (db.url) {
        await waitFor(
          'the upload inside a transaction',
          async () => (await sessionsInTransaction(db)) >= 1,
        );
      }
    },
    finish() {
      body.write(lines(2500, 500));
      body.end(`\r\n--${BOUNDARY}--\r\n`);
    },
  };
}

const exited = (server: FleetgateProcess) =>
  new Promise<number | null>((resolve) => {
    if (server.child.exitCode !== null) resolve(server.child.exitCode);
    else server.child.once('exit', (code) => resolve(code));
  });

const connectRefused = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });

async function setUp(db: TestDatabase, env: Record<string, string>) {
  const server = await startFleetgate(db, env);
  const admin = new AdminClient(server);
  const psk = await admin.identityWithPsk(`drain-${Date.now()}`);
  await admin.close();
  const device = newDevice();
  const client = await boundDevice(server, device, psk);
  return { server, device, client };
}

describe('operate: graceful drain on SIGTERM', () => {
  let db: TestDatabase;
  beforeEach(async () => (db = await createTestDatabase({ migrated: true })));
  afterEach(async () => db.drop());

  it('finishes the upload in flight, refuses new connections, and says 503 on /readyz meanwhile', async () => {
    const { server, device, client } = await setUp(db, { FLEETGATE_DRAIN_TIMEOUT_MS: '20000' });
    try {
      const upload = slowUpload(client);
      await upload.inFlight(db);
      const exit = exited(server);
      server.child.kill('SIGTERM');
      await waitFor('the drain to start', () => /"msg":"draining/.test(server.output()));

      const ready = await request(`${server.adminUrl}/readyz`);
      expect(ready.statusCode).to.equal(503);
      expect(
        ((await ready.body.json()) as { checks: { draining: string } }).checks.draining,
      ).to.equal('draining');
      expect(await connectRefused(server.port)).to.equal(true);
      expect(server.child.exitCode).to.equal(null); // still waiting for the upload

      upload.finish();
      const answer = await upload.answer;
      expect(answer.status, answer.text).to.equal(200);
      expect(answer.json.stored).to.equal(3000);
      expect(await exit).to.equal(0);
      expect(server.output()).to.match(/"msg":"drained"/);
      expect(await storedPoints(db, server, device, 'temp')).to.have.length(3000);
    } finally {
      await client.close().catch(() => undefined);
      await server.stop();
    }
  });

  it('cuts an upload still in flight at FLEETGATE_DRAIN_TIMEOUT_MS and stores nothing of it', async () => {
    const { server, device, client } = await setUp(db, { FLEETGATE_DRAIN_TIMEOUT_MS: '1500' });
    try {
      const upload = slowUpload(client);
      await upload.inFlight(db);
      const started = Date.now();
      const exit = exited(server);
      server.child.kill('SIGTERM');
      const outcome = await upload.answer.then(
        (answer) => `answered ${answer.status}`,
        (err: Error) => `cut: ${err.message}`,
      );
      expect(outcome).to.match(/^cut: /);
      expect(await exit).to.equal(0);
      expect(Date.now() - started).to.be.within(1000, 10_000);
      expect(server.output()).to.match(/drain deadline reached/);
      expect(await storedPoints(db, server, device, 'temp')).to.deep.equal([]);
    } finally {
      await client.close().catch(() => undefined);
      await server.stop();
    }
  });
});

import fs from 'node:fs';
import { expect } from 'chai';
import { buildMultipart, DeviceClient, type TestDevice } from '../support/device-client.js';
import type { FleetgateProcess } from '../support/fleetgate-process.js';
import { connectRaw, readUntilClosed } from '../support/raw-tls.js';
import {
  startWithBoundDevice,
  stopBoundDevice,
  countAllRows,
  countStoredPoints,
  expectJsonError,
  expectServerUp,
} from '../support/stored-points.js';
import { queryTestDatabase, type TestDatabase } from '../support/test-database.js';
import { serverLogCaughtUp } from '../support/server-log.js';

const B = 'hostileboundary';
const CT = `multipart/form-data; boundary=${B}`;
const NOW = Date.now();
const head = (name: string, extra = '; filename="s.csv"') =>
  `--${B}\r\nContent-Disposition: form-data; name="${name}"${extra}\r\nContent-Type: text/csv\r\n\r\n`;
const lines = (n: number) =>
  Array.from({ length: n }, (_, i) => `${NOW - 10_000 + i},${i}.5`).join('\n') + '\n';

describe('hostile multipart uploads', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let server: FleetgateProcess;
  let device: TestDevice;
  let client: DeviceClient;
  const series = ['good', 't', 'x', 'tiny', 'abort', 'big'];

  before(
    async () =>
      ({ db, server, device, client } = await startWithBoundDevice({
        FLEETGATE_UPLOADS_PER_DEVICE: '0',
      })),
  );
  after(() => stopBoundDevice({ db, server, client }));

  async function expectRefusedAndNothingStored(
    body: string | Buffer,
    status: number,
    code: string | string[],
    contentType = CT,
  ) {
    const before = await countAllRows(db);
    const answer = await client.send('POST', body, { 'content-type': contentType });
    expectJsonError(answer, status, code);
    expect(await countStoredPoints(db, server, device, series)).to.equal(0);
    if (before) expect(await countAllRows(db)).to.deep.equal(before);
    await expectServerUp(server, client);
  }

  it('refuses a closing boundary right after a part header', async () => {
    await expectRefusedAndNothingStored(`${head('t')}--${B}--\r\n`, 400, 'malformed_multipart');
    await expectRefusedAndNothingStored(
      `--${B}\r\nContent-Disposition: form-data; name="t"; filename="s.csv"\r\n--${B}--\r\n`,
      400,
      ['malformed_multipart', 'empty_upload'],
    );
  });

  it('refuses a truncated body, keeping none of the lines before the cut', async () => {
    const { body, contentType } = buildMultipart([{ name: 'good', content: lines(20_000) }]);
    await expectRefusedAndNothingStored(
      body.subarray(0, body.length - 5000),
      400,
      'malformed_multipart',
      contentType,
    );
  });

  it('refuses a multipart content type without a boundary', async () => {
    await expectRefusedAndNothingStored(
      `${head('t')}${lines(3)}\r\n--${B}--\r\n`,
      400,
      'malformed_multipart',
      'multipart/form-data',
    );
  });

  it('refuses an empty field name', async () => {
    await expectRefusedAndNothingStored(
      `${head('')}${lines(3)}\r\n--${B}--\r\n`,
      400,
      'invalid_series_name',
    );
  });

  it('refuses part headers starting with a space', async () => {
    const body = `--${B}\r\n Content-Disposition: form-data; name="t"; filename="s.csv"\r\n\r\n${lines(3)}\r\n--${B}--\r\n`;
    await expectRefusedAndNothingStored(body, 400, ['malformed_multipart', 'empty_upload']);
  });

  it('refuses an 80 KB part header without a colon', async () => {
    const body = `--${B}\r\n${'A'.repeat(80 * 1024)}\r\n\r\n${lines(3)}\r\n--${B}--\r\n`;
    await expectRefusedAndNothingStored(body, 400, ['malformed_multipart', 'empty_upload']);
  });

  it('refuses thousands of tiny parts, storing none of the first ones', async () => {
    const parts = Array.from({ length: 3000 }, (_, i) => `${head('tiny')}${NOW - i},1\r\n`).join(
      '',
    );
    await expectRefusedAndNothingStored(`${parts}--${B}--\r\n`, 413, 'too_many_parts');
  });

  it('refuses a form field where a file part is expected', async () => {
    const body = `${head('good')}${lines(3)}\r\n${head('x', '')}1,2\r\n--${B}--\r\n`;
    await expectRefusedAndNothingStored(body, 400, 'unexpected_field');
  });

  /** Sessions of the server inside a transaction (Postgres only). */
  async function openTransactions(): Promise<number> {
    const [row] = await queryTestDatabase<{ n: string }>(
      db,
      `select count(*) as n from pg_stat_activity
       where datname = current_database() and pid <> pg_backend_pid() and xact_start is not null`,
    );
    return Number(row!.n);
  }

  async function waitFor(what: string, condition: () => Promise<boolean>) {
    for (let i = 0; i < 150; i++) {
      if (await condition()) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`timed out waiting until ${what}`);
  }

  it('stores nothing and leaks no descriptor when the client aborts mid-file', async () => {
    const pid = server.child.pid!;
    const fds = () => fs.readdirSync(`/proc/${pid}/fd`).length;
    const abortOnce = async () => {
      const socket = await connectRaw(server, device);
      const received = readUntilClosed(socket);
      const first = `${head('abort')}${lines(50_000)}`;
      socket.write(
        `POST /device_endpoint HTTP/1.1\r\nHost: localhost\r\nContent-Type: ${CT}\r\nContent-Length: ${first.length * 2}\r\n\r\n${first}`,
      );
      // On Postgres, wait until the server is writing the upload in a transaction.
      if (db.url)
        await waitFor('the upload is in a transaction', async () => (await openTransactions()) > 0);
      else await new Promise((resolve) => setTimeout(resolve, 300));
      socket.destroy();
      await received.catch(() => undefined);
      // What the server did: rolled back and gave the connection back...
      if (db.url)
        await waitFor('the transaction is gone', async () => (await openTransactions()) === 0);
      // ...so the next upload gets one (on the embedded database it would wait forever)...
      await expectServerUp(server, client);
      // ...and stored nothing of the aborted one.
      expect(await countStoredPoints(db, server, device, ['abort'])).to.equal(0);
    };
    // The first abort may open a database connection that stays in the pool: not a leak.
    await abortOnce();
    const fdsBefore = fds();
    for (let attempt = 0; attempt < 5; attempt++) await abortOnce();
    // The server notices the aborts asynchronously; wait until its descriptors settle.
    let now = fds();
    for (let i = 0; i < 50 && now > fdsBefore; i++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      now = fds();
    }
    expect(now).to.be.at.most(fdsBefore);
    expect(await countStoredPoints(db, server, device, ['abort'])).to.equal(0);
    await serverLogCaughtUp(server);
    expect(server.output()).to.not.match(/"level":50/);
  });
});

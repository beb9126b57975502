import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { DeviceClient, newDevice } from '../support/device-client.js';
import { startFleetgate, type FleetgateProcess } from '../support/fleetgate-process.js';
import { linesPastHeldPoints, waitFor } from '../support/concurrency.js';
import { connectRaw, parseRawAnswer, readUntilClosed } from '../support/raw-tls.js';
import { bindDevice, expectJsonError } from '../support/stored-points.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';

/** Always the embedded database, whatever DATABASE_URL says. */
const EMBEDDED = { DATABASE_URL: '' };

function modesUnder(dir: string): Array<{ file: string; mode: number; dir: boolean }> {
  const found: Array<{ file: string; mode: number; dir: boolean }> = [];
  const walk = (target: string) => {
    const stat = fs.lstatSync(target);
    if (stat.isSymbolicLink()) return;
    found.push({ file: target, mode: stat.mode & 0o777, dir: stat.isDirectory() });
    if (stat.isDirectory())
      for (const entry of fs.readdirSync(target)) walk(path.join(target, entry));
  };
  walk(dir);
  return found;
}

describe('embedded database: file permissions and a busy connection', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let server: FleetgateProcess;
  const clients: DeviceClient[] = [];

  before(async () => {
    db = await createTestDatabase();
    // An older version (or a loose umask) left the data world-readable.
    const pgdata = path.join(db.env.FLEETGATE_DATA_DIR!, 'pgdata');
    fs.mkdirSync(path.join(pgdata, 'old'), { recursive: true });
    fs.writeFileSync(path.join(pgdata, 'old', 'stray'), 'x');
    for (const dir of [db.env.FLEETGATE_DATA_DIR!, pgdata, path.join(pgdata, 'old')]) {
      fs.chmodSync(dir, 0o777);
    }
    fs.chmodSync(path.join(pgdata, 'old', 'stray'), 0o666);
    const previous = process.umask(0);
    try {
      server = await startFleetgate(db, {
        ...EMBEDDED,
        FLEETGATE_DB_ACQUIRE_TIMEOUT_MS: '1000',
        FLEETGATE_MIN_BODY_BYTES_PER_SECOND: '0',
        FLEETGATE_BODY_IDLE_TIMEOUT_MS: '20000',
      });
    } finally {
      process.umask(previous);
    }
  });
  after(async () => {
    for (const c of clients) await c.close();
    await server?.stop();
    await db?.drop();
  });

  it('keeps its data directory 0700 and its files 0600 under umask 000, and fixes old ones at start', async () => {
    const client = new DeviceClient(server, newDevice());
    clients.push(client);
    await bindDevice(server, client);
    const answer = await client.upload([{ name: 'perm', content: `${Date.now()},1\n` }]);
    expect(answer.status, answer.text).to.equal(200);
    const modes = modesUnder(path.join(db.env.FLEETGATE_DATA_DIR!, 'pgdata'));
    expect(modes.filter((m) => !m.dir).length).to.be.greaterThan(10);
    const loose = modes.filter((m) => m.mode !== (m.dir ? 0o700 : 0o600));
    expect(loose.map((m) => `${m.file} ${m.mode.toString(8)}`)).to.deep.equal([]);
  });

  it('answers 503 with Retry-After after the acquire timeout while an upload holds the database', async () => {
    const holder = newDevice();
    const holderClient = new DeviceClient(server, holder);
    const other = new DeviceClient(server, newDevice());
    clients.push(holderClient, other);
    await bindDevice(server, holderClient);
    await bindDevice(server, other);
    // An upload that stops after more points than a batch's first series is held in
    // memory for (so its transaction is open) holds the one embedded connection.
    const socket = await connectRaw(server, holder);
    const closed = readUntilClosed(socket);
    const head =
      '--b\r\nContent-Disposition: form-data; name="hold"; filename="a.csv"\r\n\r\n' +
      linesPastHeldPoints(Date.now() - 60_000);
    socket.write(
      'POST /device_endpoint HTTP/1.1\r\nHost: localhost\r\n' +
        'Content-Type: multipart/form-data; boundary=b\r\n' +
        `Content-Length: ${head.length + 1000}\r\n\r\n${head}`,
    );
    // Until the holder's upload has the connection, a status request may still be
    // served; once it has, the next one must wait out the acquire timeout and get 503.
    let status = await other.send('GET');
    await waitFor('a status request to meet the held database', async () => {
      if (status.status === 503) return true;
      status = await other.send('GET');
      return status.status === 503;
    });
    expectJsonError(status, 503, 'unavailable');
    expect(Number(status.headers['retry-after'])).to.be.greaterThan(0);
    socket.destroy();
    await closed;
    parseRawAnswer('');
    // Once the holder is gone the database serves again.
    await waitFor(
      'the database to serve again',
      async () => (await other.send('GET')).status === 200,
    );
  });
});

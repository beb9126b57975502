import { expect } from 'chai';
import { DeviceClient, newDevice } from '../support/device-client.js';
import { startFleetgate, type FleetgateProcess } from '../support/fleetgate-process.js';
import { bindDevice, expectJsonError, storedPoints } from '../support/stored-points.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';

describe('throttling', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let server: FleetgateProcess;
  const clients: DeviceClient[] = [];
  const client = () => {
    const created = new DeviceClient(server, newDevice());
    clients.push(created);
    return created;
  };

  before(async () => {
    db = await createTestDatabase({ migrated: true });
    server = await startFleetgate(db, {
      FLEETGATE_BIND_FAILURES_PER_ADDRESS: '5',
      FLEETGATE_BIND_FAILURES_PER_CERTIFICATE: '3',
      FLEETGATE_BIND_FAILURE_WINDOW_SECONDS: '3600',
      FLEETGATE_UPLOADS_PER_DEVICE: '3',
      FLEETGATE_UPLOAD_WINDOW_SECONDS: '3600',
    });
  });
  after(async () => {
    for (const c of clients) await c.close();
    await server?.stop();
    await db?.drop();
  });

  it('limits uploads per device and says so in RateLimit headers', async () => {
    const local = client();
    await bindDevice(server, local, 'acme');
    const now = Date.now();
    for (let i = 0; i < 3; i++) {
      const answer = await local.upload([{ name: 'rate', content: `${now - 10 + i},${i}\n` }]);
      expect(answer.status, answer.text).to.equal(200);
      expect(answer.headers['ratelimit-policy']).to.equal('"uploads";q=3;w=3600');
      expect(answer.headers.ratelimit).to.match(new RegExp(`^"uploads";r=${2 - i};t=\\d+$`));
    }
    const refused = await local.upload([{ name: 'rate', content: `${now},99\n` }]);
    expectJsonError(refused, 429, 'upload_rate_limited');
    expect(Number(refused.headers['retry-after'])).to.be.greaterThan(0);
    expect(refused.headers.ratelimit).to.match(/^"uploads";r=0;t=\d+$/);
    expect((await storedPoints(db, server, local.device!, 'rate')).map(([, v]) => v)).to.deep.equal(
      [0, 1, 2],
    );
  });

  it('limits failed PSK attempts per certificate, then per address, with 429 and Retry-After', async () => {
    const psk = (await server.cli(['psk', 'issue', 'acme'])).stdout.trim();
    const guesser = client();
    for (let i = 0; i < 3; i++)
      expectJsonError(await guesser.bind(`wrong-psk-guess-${i}-xxxxxxxxxxxx`), 400, 'invalid_psk');
    const blocked = await guesser.bind(psk);
    expectJsonError(blocked, 429, 'too_many_failed_binds');
    expect(Number(blocked.headers['retry-after'])).to.be.greaterThan(0);
    // A fresh certificate from the same address has two failures left before the address limit.
    const second = client();
    for (let i = 0; i < 2; i++)
      expectJsonError(await second.bind(`another-wrong-guess-${i}-xxxxxxxx`), 400, 'invalid_psk');
    expectJsonError(await client().bind(psk), 429, 'too_many_failed_binds');
  });
});

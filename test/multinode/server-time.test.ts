/**
 * Two fleetgate nodes on one PostgreSQL, one device talking to both: the
 * server's time of its messages without `ts` must be unique across the nodes,
 * or two readings of the same millisecond collide on (device, series, ts) and
 * one is answered 200 as a "duplicate" although it was never stored.
 */
import path from 'node:path';
import { expect } from 'chai';
import { DeviceClient, newDevice } from '../support/device-client.js';
import { startFleetgate, type FleetgateProcess } from '../support/fleetgate-process.js';
import { burstWithoutTs, expectBurstStoredOnce } from '../support/server-time-burst.js';
import { skipBecause } from '../support/skip.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';

describe('server time of messages without ts on two nodes of one PostgreSQL', function () {
  this.timeout(180_000);
  let db: TestDatabase;
  const nodes: FleetgateProcess[] = [];

  before(async function () {
    if (!process.env.DATABASE_URL) {
      skipBecause(
        this,
        'several nodes share one PostgreSQL server; the embedded database belongs to one process',
      );
    }
    db = await createTestDatabase({ migrated: true });
    // One after the other: the first one creates the development certificates the second reads.
    for (const i of [0, 1]) {
      nodes.push(
        await startFleetgate(db, {
          FLEETGATE_UPLOADS_PER_DEVICE: '1000000',
          FLEETGATE_DATA_DIR: path.join(db.workDir, `data-${i}`),
        }),
      );
    }
  });
  after(async function () {
    this.timeout(60_000);
    await Promise.all(nodes.map((node) => node.stop()));
    await db?.drop();
  });

  it('stores exactly once every reading without ts that either node answered with 200', async () => {
    const [a, b] = nodes as [FleetgateProcess, FleetgateProcess];
    const identity = `nots-nodes-${process.pid}`;
    expect((await a.cli(['identity', 'create', identity])).code).to.equal(0);
    const psk = (await a.cli(['psk', 'issue', identity])).stdout.trim();
    const device = newDevice();
    const clients = [new DeviceClient(a, device, 16), new DeviceClient(b, device, 16)];
    try {
      const bound = await clients[0]!.bind(psk);
      expect(bound.status, bound.text).to.equal(200);
      // Before the fix each node kept its own last server time: requests handled in the
      // same millisecond on both nodes shared one, and the second answered
      // 200 {"stored":0,"duplicates":1} for a reading that was stored nowhere.
      await expectBurstStoredOnce(db, device.fingerprint, await burstWithoutTs(clients));
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  });
});

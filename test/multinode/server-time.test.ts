/**
 * Two fleetgate nodes on one PostgreSQL, one device talking to both: the
 * server's time of its messages without `ts` must be unique across the nodes,
 * or two readings of the same millisecond collide on (device, series, ts) and
 * one is answered 200 as a "duplicate" although it was never stored.
 */
import path from 'node:path';
import { expect } from 'chai';
import { DeviceClient, newDevice, type Answer } from '../support/device-client.js';
import { startFleetgate, type FleetgateProcess } from '../support/fleetgate-process.js';
import { skipBecause } from '../support/skip.js';
import {
  createTestDatabase,
  queryTestDatabase,
  type TestDatabase,
} from '../support/test-database.js';

const T0 = 1_764_500_000_000;

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
    const post = (node: number, body: unknown) =>
      clients[node]!.send(
        'POST',
        JSON.stringify(body),
        { 'content-type': 'application/json' },
        '/device_endpoint/messages',
      );
    /** A 503 conflict_retry is to be retried, as documented. */
    const sent = async (node: number, body: unknown): Promise<Answer> => {
      for (;;) {
        const answer = await post(node, body);
        if (answer.status !== 503) return answer;
        expect(answer.json.code, answer.text).to.equal('conflict_retry');
      }
    };
    try {
      const bound = await clients[0]!.bind(psk);
      expect(bound.status, bound.text).to.equal(200);
      // Open every connection to both nodes first, so that a round's requests arrive together.
      await Promise.all(
        Array.from({ length: 32 }, (_, i) => sent(i % 2, { ts: T0 + i, data: { warm: i } })),
      );
      const acknowledged: number[] = [];
      const answersOf: Answer[] = [];
      for (let round = 0; round < 3; round += 1) {
        const values = Array.from({ length: 64 }, (_, i) => round * 64 + i);
        const answers = await Promise.all(values.map((v) => sent(v % 2, { data: { burst: v } })));
        answers.forEach((answer, i) => {
          answersOf.push(answer);
          if (answer.status === 200) acknowledged.push(values[i]!);
        });
      }
      const rows = await queryTestDatabase<{ value: number }>(
        db,
        `select p.value from points p join series s on s.id = p.series_id
         join device_certificates c on c.device_id = s.device_id
         where c.fingerprint = $1 and s.name = 'burst' order by p.value`,
        [device.fingerprint],
      );
      // Before the fix each node kept its own last server time: requests handled in the
      // same millisecond on both nodes shared one, and the second answered
      // 200 {"stored":0,"duplicates":1} for a reading that was stored nowhere.
      expect(
        rows.map((r) => r.value),
        'every acknowledged reading stored once',
      ).to.deep.equal([...acknowledged].sort((x, y) => x - y));
      for (const answer of answersOf) {
        expect(answer.status, answer.text).to.equal(200);
        expect(answer.json, answer.text).to.include({ stored: 1, duplicates: 0 });
      }
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  });
});

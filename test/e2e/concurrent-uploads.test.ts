import { expect } from 'chai';
import { buildMultipart, DeviceClient, newDevice, type Answer } from '../support/device-client.js';
import {
  expectAllInFlightTogether,
  gate,
  gatedBody,
  PAST_HELD_POINTS_BYTES,
  servedIntervals,
  sessionsInTransaction,
  waitFor,
} from '../support/concurrency.js';
import { startFleetgate, type FleetgateProcess } from '../support/fleetgate-process.js';
import { bindDevice, storedPoints } from '../support/stored-points.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';

/**
 * How much of a gated upload is sent before the gate. On PostgreSQL the test
 * waits until each upload has its transaction open, so the head must pass the
 * 2,000 points a batch's first series is held in memory for; the embedded
 * database is not watched, and there a small head keeps the server from
 * working on one upload's points before it has read every upload's head.
 */
const headBytes = process.env.DATABASE_URL ? PAST_HELD_POINTS_BYTES : 1024;

/** Racers; each has its own connection (its own undici Agent). */
const RACERS = 6;
/** Points per upload: above the small-part limit, so Postgres takes the COPY path. */
const POINTS = 12_000;
/** Upload i covers points [i * SHIFT, i * SHIFT + POINTS): neighbours share 3/4 of them. */
const SHIFT = 3000;
const DISTINCT = (RACERS - 1) * SHIFT + POINTS;

/**
 * N uploads of overlapping points into one series, really at the same time:
 * every point must be stored exactly once, whoever wins.
 */
describe('concurrent uploads into one series', function () {
  this.timeout(300_000);
  let db: TestDatabase;
  let server: FleetgateProcess;
  const device = newDevice();
  let clients: DeviceClient[] = [];

  before(async () => {
    db = await createTestDatabase({ migrated: true });
    // N uploads of one device race below; the default cap of concurrent uploads is 4.
    server = await startFleetgate(db, { FLEETGATE_MAX_CONCURRENT_UPLOADS_PER_DEVICE: '32' });
    clients = Array.from({ length: RACERS }, () => new DeviceClient(server, device));
    await bindDevice(server, clients[0]!);
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await server?.stop();
    await db?.drop();
  });

  /** Upload i's body: its timestamps, one second apart from `base`, with the value i. */
  function body(series: string, base: number, i: number) {
    let content = '';
    for (let j = i * SHIFT; j < i * SHIFT + POINTS; j++) content += `${base + j * 1000},${i}\n`;
    return buildMultipart([{ name: series, content }]);
  }

  /**
   * Starts all uploads, holds each after its first bytes until every one of
   * them is in (on Postgres: until each has a transaction open), then lets
   * them all run. A device told `conflict_retry` (a deadlock between two of
   * its uploads) retries, as the README tells it to.
   */
  async function race(series: string, base: number): Promise<Answer[]> {
    const start = gate();
    let headsSent = 0;
    const first = clients.map((client, i) => {
      const { body: bytes, contentType } = body(series, base, i);
      return client.send(
        'POST',
        gatedBody(bytes, start.opened, () => (headsSent += 1), headBytes),
        {
          'content-type': contentType,
        },
      );
    });
    await waitFor(`${RACERS} uploads to send their first bytes`, () => headsSent === RACERS);
    if (db.url) {
      await waitFor(`${RACERS} uploads with a transaction open`, async () => {
        return (await sessionsInTransaction(db)) >= RACERS;
      });
    }
    start.open();
    const answers = await Promise.all(first);
    // The overlap is checked on the server's own clock, from its request log.
    expectAllInFlightTogether(await servedIntervals(server, answers));
    return Promise.all(
      answers.map(async (answer, i) => {
        for (let attempt = 0; answer.json?.code === 'conflict_retry' && attempt < 10; attempt++) {
          const { body: bytes, contentType } = body(series, base, i);
          answer = await clients[i]!.send('POST', bytes, { 'content-type': contentType });
        }
        return answer;
      }),
    );
  }

  async function expectStoredExactlyOnce(series: string, base: number, answers: Answer[]) {
    for (const answer of answers) {
      expect(answer.status, answer.text).to.equal(200);
      const counts = answer.json.series[series];
      expect(counts.stored + counts.duplicates, answer.text).to.equal(POINTS);
    }
    const storedByAnswers = answers.reduce((sum, a) => sum + Number(a.json.stored), 0);
    expect(storedByAnswers, 'points reported stored, summed over the racers').to.equal(DISTINCT);
    const rows = (await storedPoints(db, server, device, series)).filter(([ms]) => ms >= base);
    expect(rows, 'rows stored').to.have.length(DISTINCT);
    for (let j = 0; j < DISTINCT; j++) {
      const [ms, value] = rows[j]!;
      expect(ms, `point ${j}`).to.equal(base + j * 1000);
      // The value is the index of an upload that carried this timestamp.
      expect(value * SHIFT, `point ${j}`).to.be.at.most(j);
      expect(value * SHIFT + POINTS, `point ${j}`).to.be.above(j);
    }
  }

  it('stores every point once when N uploads race into a new series', async () => {
    const base = Date.UTC(2025, 1, 1);
    const answers = await race('fresh', base);
    await expectStoredExactlyOnce('fresh', base, answers);
  });

  it('stores every point once when N uploads race into an existing series', async () => {
    const base = Date.UTC(2025, 2, 1);
    // The series exists (one point well before the race), so the uploads race on points only.
    const seed = await clients[0]!.upload([{ name: 'existing', content: `${base - 1e9},9\n` }]);
    expect(seed.status, seed.text).to.equal(200);
    const answers = await race('existing', base);
    await expectStoredExactlyOnce('existing', base, answers);
    expect((await storedPoints(db, server, device, 'existing'))[0]).to.deep.equal([base - 1e9, 9]);
  });

  it('answers each racing device for its own points only, with separate devices', async () => {
    const others = await Promise.all(
      Array.from({ length: 3 }, async () => {
        const client = new DeviceClient(server, newDevice());
        clients.push(client);
        await bindDevice(server, client);
        return client;
      }),
    );
    const base = Date.UTC(2025, 3, 1);
    const start = gate();
    let headsSent = 0;
    const pending = others.map((client) => {
      const { body: bytes, contentType } = body('shared-name', base, 0);
      return client.send(
        'POST',
        gatedBody(bytes, start.opened, () => (headsSent += 1), headBytes),
        {
          'content-type': contentType,
        },
      );
    });
    await waitFor('3 devices to send their first bytes', () => headsSent === others.length);
    if (db.url)
      await waitFor('3 open transactions', async () => (await sessionsInTransaction(db)) >= 3);
    start.open();
    const answers = await Promise.all(pending);
    expectAllInFlightTogether(await servedIntervals(server, answers));
    for (const [i, answer] of answers.entries()) {
      expect(answer.status, answer.text).to.equal(200);
      expect(answer.json.stored, answer.text).to.equal(POINTS);
      const rows = await storedPoints(db, server, others[i]!.device!, 'shared-name');
      expect(rows).to.have.length(POINTS);
    }
  });
});

import { expect } from 'chai';
import {
  expectAllInFlightTogether,
  gate,
  gatedBody,
  PAST_HELD_POINTS_BYTES,
  servedIntervals,
  sessionsInTransaction,
  waitFor,
} from '../support/concurrency.js';
import { buildMultipart, DeviceClient, newDevice, type Answer } from '../support/device-client.js';
import { startFleetgate, type FleetgateProcess } from '../support/fleetgate-process.js';
import { bindDevice, storedPoints } from '../support/stored-points.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';

const DAY_MS = 24 * 3600 * 1000;

/**
 * How much of a gated upload is sent before the gate. On PostgreSQL the test
 * waits until each upload has its transaction open, so the head must pass the
 * 2,000 points a batch's first series is held in memory for; the embedded
 * database is not watched, and there a small head keeps the server from
 * working on one upload's points before it has read every upload's head.
 */
const headBytes = process.env.DATABASE_URL ? PAST_HELD_POINTS_BYTES : 1024;

/** `count` lines from `startMs`, one per second, value = index. */
function lines(startMs: number, count: number, value = (i: number) => `${i}.5`): string {
  let out = '';
  for (let i = 0; i < count; i++) out += `${startMs + i * 1000},${value(i)}\n`;
  return out;
}

/**
 * The write path (COPY on Postgres, unnest on the embedded database) and the
 * monthly partitions under it, end to end over mTLS.
 */
describe('ingest write path', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let server: FleetgateProcess;
  let client: DeviceClient;

  before(async () => {
    db = await createTestDatabase({ migrated: true });
    server = await startFleetgate(db, { FLEETGATE_MAX_LINE_BYTES: '100' });
    expect((await server.cli(['identity', 'create', 'acme'])).code).to.equal(0);
    const psk = (await server.cli(['psk', 'issue', 'acme'])).stdout.trim();
    client = new DeviceClient(server, newDevice());
    expect((await client.bind(psk)).status).to.equal(200);
  });

  const extraClients: DeviceClient[] = [];
  const track = (extra: DeviceClient) => (extraClients.push(extra), extra);

  /**
   * Sends the uploads each on its own connection, holds each after its first
   * bytes until all of them are in (on Postgres: each in an open transaction),
   * and checks on the server's clock that they really were served at once.
   */
  async function together(
    uploads: Array<{ client: DeviceClient; body: Buffer; contentType: string }>,
  ): Promise<Answer[]> {
    const start = gate();
    let headsSent = 0;
    const pending = uploads.map(({ client: sender, body, contentType }) =>
      sender.send(
        'POST',
        gatedBody(body, start.opened, () => (headsSent += 1), headBytes),
        {
          'content-type': contentType,
        },
      ),
    );
    await waitFor('every upload to send its first bytes', () => headsSent === uploads.length);
    if (db.url)
      await waitFor(
        'every upload to open its transaction',
        async () => (await sessionsInTransaction(db)) >= uploads.length,
      );
    start.open();
    const answers = await Promise.all(pending);
    expectAllInFlightTogether(await servedIntervals(server, answers));
    return answers;
  }

  after(async () => {
    await Promise.all(extraClients.map((c) => c.close()));
    await client?.close();
    await server?.stop();
    await db?.drop();
  });

  async function exported(series: string): Promise<string[]> {
    const result = await server.cli(['export', client.device!.fingerprint, series]);
    expect(result.code, result.stderr).to.equal(0);
    return result.stdout.split('\n').filter(Boolean);
  }

  it('stores a large part across segments and months, counting duplicates exactly', async () => {
    // 250,000 points: several COPY segments; spans three months of 2024.
    const start = Date.UTC(2024, 0, 31, 23, 0, 0);
    const body = lines(start, 250_000, (i) => String(i));
    const first = await client.upload([{ name: 'big', content: body }]);
    expect(first.status, first.text).to.equal(200);
    expect(first.json).to.deep.equal({
      series: { big: { stored: 250_000, duplicates: 0 } },
      stored: 250_000,
      duplicates: 0,
    });
    const again = await client.upload([{ name: 'big', content: body }]);
    expect(again.json).to.deep.include({ stored: 0, duplicates: 250_000 });
    const rows = await exported('big');
    expect(rows).to.have.length(250_000);
    expect(rows[0]).to.equal(`${start},0`);
    expect(rows[249_999]).to.equal(`${start + 249_999 * 1000},249999`);
  });

  it('keeps the first of two points with the same timestamp in one file', async () => {
    const t = Date.UTC(2025, 5, 1);
    const res = await client.upload([
      { name: 'dup', content: `${t},1\n${t + 1},2\n${t},3\n${t + 1},4\n${t + 2},5\n` },
    ]);
    expect(res.json).to.deep.equal({
      series: { dup: { stored: 3, duplicates: 2 } },
      stored: 3,
      duplicates: 2,
    });
    expect(await exported('dup')).to.deep.equal([`${t},1`, `${t + 1},2`, `${t + 2},5`]);
  });

  it('keeps the first of two equal timestamps also on the COPY path (large parts)', async () => {
    const t = Date.UTC(2025, 4, 1);
    const firsts = lines(t, 5000, (i) => `${i}`);
    const repeats = lines(t, 5000, (i) => `${-i}`);
    const res = await client.upload([{ name: 'dupbig', content: firsts + repeats }]);
    expect(res.json.series.dupbig).to.deep.equal({ stored: 5000, duplicates: 5000 });
    const rows = await exported('dupbig');
    expect(rows[4999]).to.equal(`${t + 4999 * 1000},4999`);
  });

  it('stores each point once when the same large file arrives twice at the same time', async () => {
    const { body, contentType } = buildMultipart([
      { name: 'race', content: lines(Date.UTC(2025, 3, 1), 6000) },
    ]);
    // Two connections of the same device, each held after its first bytes until both are in.
    const racers = [0, 1].map(() => track(new DeviceClient(server, client.device)));
    const answers = await together(racers.map((racer) => ({ client: racer, body, contentType })));
    const [a, b] = answers as [Answer, Answer];
    expect(a.status, a.text).to.equal(200);
    expect(b.status, b.text).to.equal(200);
    expect(a.json.stored + b.json.stored).to.equal(6000);
    expect(a.json.duplicates + b.json.duplicates).to.equal(6000);
    expect(await exported('race')).to.have.length(6000);
  });

  it('creates partitions on demand for old timestamps, in the same upload as recent ones', async () => {
    const now = Date.now() - DAY_MS;
    // The oldest accepted timestamp is 2000-01-01 (FLEETGATE_MIN_TIMESTAMP_MS).
    const y2k = Date.UTC(2000, 0, 1);
    const res = await client.upload([
      { name: 'clock', content: `${y2k},1\n${y2k + DAY_MS},2\n${now},3\n` },
      { name: 'clock', content: `1000000000000,4\n` },
    ]);
    expect(res.status, res.text).to.equal(200);
    expect(res.json.series.clock).to.deep.equal({ stored: 4, duplicates: 0 });
    expect(await exported('clock')).to.deep.equal([
      `${y2k},1`,
      `${y2k + DAY_MS},2`,
      '1000000000000,4',
      `${now},3`,
    ]);
  });

  it('reads BOM, CRLF, blank lines, padding and quoted fields like the CSV reader', async () => {
    const t = Date.UTC(2025, 6, 1);
    const content = `\ufeff${t},1.5\r\n\r\n ${t + 1} , -2e3 \r\n"${t + 2}","3"\n${t + 3},.25`;
    const res = await client.upload([{ name: 'shapes', content }]);
    expect(res.status, res.text).to.equal(200);
    expect(await exported('shapes')).to.deep.equal([
      `${t},1.5`,
      `${t + 1},-2000`,
      `${t + 2},3`,
      `${t + 3},0.25`,
    ]);
  });

  it('rejects a bad line deep in a large part with its line number, storing nothing', async () => {
    const start = Date.UTC(2023, 2, 1);
    const body = `${lines(start, 150_000)}${start},oops\n${lines(start + 1e9, 10)}`;
    const res = await client.upload([
      { name: 'fine', content: lines(start, 10) },
      { name: 'broken', content: body },
    ]);
    expect(res.status).to.equal(400);
    expect(res.json.code).to.equal('invalid_line');
    expect(res.json.details).to.deep.include({ part: 'broken', line: 150_001 });
    expect(res.json.error).to.match(/value "oops" is not a finite decimal number/);
    // Nothing of either part, although the first one was complete and valid.
    expect(await storedPoints(db, server, client.device!, 'fine')).to.deep.equal([]);
    expect(await storedPoints(db, server, client.device!, 'broken')).to.deep.equal([]);
    // The connection that failed is usable again: the next upload goes through.
    const next = await client.upload([{ name: 'after', content: lines(start, 5) }]);
    expect(next.status, next.text).to.equal(200);
  });

  it('answers 413 for a line longer than the limit, also when it spans chunks', async () => {
    const res = await client.upload([
      { name: 'long', content: `1700000001000,1\n1700000002000,${'1'.repeat(300_000)}\n` },
    ]);
    expect(res.status).to.equal(413);
    expect(res.json.code).to.equal('line_too_long');
    expect(res.json.details).to.deep.include({ part: 'long', line: 2, limit: 100 });
  });

  it('serves concurrent uploads of many devices into the same months', async () => {
    const t = Date.UTC(2022, 10, 15);
    const devices = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const own = track(new DeviceClient(server, newDevice()));
        await bindDevice(server, own);
        return own;
      }),
    );
    const answers = await together(
      devices.map((own, i) => ({
        client: own,
        ...buildMultipart([{ name: `c${i}`, content: lines(t, 20_000) }]),
      })),
    );
    for (const [i, answer] of answers.entries()) {
      expect(answer.status, answer.text).to.equal(200);
      expect(answer.json.stored).to.equal(20_000);
      expect(await storedPoints(db, server, devices[i]!.device!, `c${i}`)).to.have.length(20_000);
    }
  });
});

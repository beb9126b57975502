import path from 'node:path';
import { expect } from 'chai';
import { AdminClient } from '../support/admin-client.js';
import { DeviceClient, newDevice, type TestDevice } from '../support/device-client.js';
import { uniqueName } from '../support/fixture.js';
import { startFleetgate, type FleetgateProcess } from '../support/fleetgate-process.js';
import { storedPoints } from '../support/stored-points.js';
import {
  createTestDatabase,
  queryTestDatabase,
  type TestDatabase,
} from '../support/test-database.js';

const MAX_SERIES = 5;
const ENV = {
  FLEETGATE_MAX_SERIES_PER_DEVICE: String(MAX_SERIES),
  // 12 uploads of one device run at once below; the default cap of concurrent uploads is 4.
  FLEETGATE_MAX_CONCURRENT_UPLOADS_PER_DEVICE: '16',
};
const MINUTE = 60_000;

/** `count` lines one `stepMs` apart from `startMs`. */
function lines(startMs: number, count: number, stepMs = MINUTE): string {
  let text = '';
  for (let i = 0; i < count; i++) text += `${startMs + i * stepMs},${i}\n`;
  return text;
}

/** One point on the first day of every month of the given years. */
function monthly(fromYear: number, toYear: number): string {
  let text = '';
  for (let y = fromYear; y <= toYear; y++) {
    for (let m = 0; m < 12; m++) text += `${Date.UTC(y, m, 1, 12)},${m}\n`;
  }
  return text;
}

/**
 * Issue 9 section 4: refused uploads leave no partitions behind, the accepted
 * time range is bounded below (seconds sent as milliseconds are refused and
 * said so), the number of series per device is capped, and the series list
 * is paginated.
 */
describe('growth limits: partitions, timestamp floor, series cap, series pages', function () {
  this.timeout(180_000);
  let db: TestDatabase;
  let server: FleetgateProcess;
  let admin: AdminClient;
  let psk: string;
  const clients: DeviceClient[] = [];

  async function start() {
    server = await startFleetgate(db, ENV);
    admin = new AdminClient(server);
  }

  async function stop() {
    await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
    await admin?.close();
    await server?.stop();
  }

  before(async () => {
    db = await createTestDatabase({ migrated: true });
    await start();
    const identity = uniqueName('growth');
    expect((await server.cli(['identity', 'create', identity])).code).to.equal(0);
    psk = (await server.cli(['psk', 'issue', identity])).stdout.trim();
  });

  after(async () => {
    await stop();
    await db?.drop();
  });

  function client(device: TestDevice): DeviceClient {
    const c = new DeviceClient(server, device);
    clients.push(c);
    return c;
  }

  async function boundDevice(): Promise<TestDevice> {
    const device = newDevice();
    const answer = await client(device).bind(psk);
    expect(answer.status, answer.text).to.equal(200);
    return device;
  }

  /**
   * The month partitions of `points`: straight from Postgres, or on the
   * embedded database (which only one process may open) by stopping the
   * server, reading its data directory, and starting it again.
   */
  async function partitionNames(): Promise<string[]> {
    const sql = `select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
                 where i.inhparent = 'points'::regclass order by 1`;
    if (db.url) return (await queryTestDatabase<{ name: string }>(db, sql)).map((r) => r.name);
    await stop();
    const { PGlite } = await import('@electric-sql/pglite');
    const pglite = await PGlite.create(path.join(db.env.FLEETGATE_DATA_DIR!, 'pgdata'));
    try {
      return (await pglite.query<{ name: string }>(sql)).rows.map((r) => r.name);
    } finally {
      await pglite.close();
      await start();
    }
  }

  async function seriesNames(device: TestDevice): Promise<string[]> {
    const answer = await admin.get(`/v1/devices/${device.fingerprint}/series?limit=1000`);
    expect(answer.status, answer.text).to.equal(200);
    return answer.json.series.map((s: { name: string }) => s.name);
  }

  describe('partitions', () => {
    it('an upload refused for a bad line leaves none of the partitions it needed behind', async () => {
      const device = await boundDevice();
      const before = await partitionNames();
      // A bad line in the second part, after the first part reached 120 new months.
      const badLine = await client(device).upload([
        { name: 'history', content: monthly(2001, 2010) },
        { name: 'broken', content: `${Date.UTC(2011, 0, 1)},1\nnot a line\n` },
      ]);
      expect(badLine.status, badLine.text).to.equal(400);
      expect(badLine.json.code).to.equal('invalid_line');
      expect(await partitionNames()).to.deep.equal(before);
      expect(await storedPoints(db, server, device, 'history')).to.deep.equal([]);
      expect(await seriesNames(device)).to.deep.equal([]);
    });

    it('an upload refused over the series cap leaves none of the partitions it needed behind', async () => {
      const device = await boundDevice();
      const before = await partitionNames();
      // The first parts reach 24 new months, the last one is a series too many.
      const parts = [{ name: 'history', content: monthly(2011, 2012) }];
      for (let i = 0; i < MAX_SERIES; i++) {
        parts.push({ name: `s${i}`, content: `${Date.UTC(2013, i, 1)},1\n` });
      }
      const overCap = await client(device).upload(parts);
      expect(overCap.status, overCap.text).to.equal(422);
      expect(overCap.json.code).to.equal('too_many_series');
      expect(await partitionNames()).to.deep.equal(before);
      expect(await storedPoints(db, server, device, 'history')).to.deep.equal([]);
      expect(await seriesNames(device)).to.deep.equal([]);
    });

    it('uploads of many devices that reach the same new month at once all succeed', async () => {
      const devices = await Promise.all(Array.from({ length: 6 }, () => boundDevice()));
      const before = await partitionNames();
      // 3,000 points a minute apart from 2015-03-31: two new months, and the COPY path on Postgres.
      const start = Date.UTC(2015, 2, 31);
      const body = lines(start, 3000);
      const uploads = devices.flatMap((device) => [
        client(device).upload([{ name: 'backfill', content: body }]),
        // A second upload of the same device at the same time, into another series.
        client(device).upload([{ name: 'backfill2', content: lines(start + 1, 500) }]),
      ]);
      const answers = await Promise.all(uploads);
      for (const answer of answers) expect(answer.status, answer.text).to.equal(200);
      const after = await partitionNames();
      expect(after.filter((name) => !before.includes(name))).to.deep.equal([
        'points_2015_03',
        'points_2015_04',
      ]);
      for (const device of devices) {
        expect(await storedPoints(db, server, device, 'backfill')).to.have.length(3000);
        expect(await storedPoints(db, server, device, 'backfill2')).to.have.length(500);
      }
    });
  });

  describe('timestamp range', () => {
    const refusal = async (content: string) => {
      const device = await boundDevice();
      const answer = await client(device).upload([{ name: 'clock', content }]);
      expect(answer.status, answer.text).to.equal(400);
      expect(answer.json.code).to.equal('invalid_line');
      expect(await storedPoints(db, server, device, 'clock')).to.deep.equal([]);
      return answer.json;
    };

    it('refuses seconds sent as milliseconds, and says so', async () => {
      const error = await refusal(`${Date.UTC(2025, 0, 1)},1\n1700000000,2\n`);
      expect(error.details).to.include({ part: 'clock', line: 2 });
      expect(error.details.reason).to.match(/looks like seconds, not milliseconds/);
      expect(error.details.reason).to.contain('2000-01-01T00:00:00.000Z');
      expect(error.error).to.match(/looks like seconds, not milliseconds/);
    });

    it('refuses timestamps before 2000-01-01 by default, and accepts the first millisecond of 2000', async () => {
      const error = await refusal(`${Date.UTC(2000, 0, 1) - 1},1\n`);
      expect(error.details.reason).to.match(/outside the accepted range .*: before its start/);
      expect(error.details.reason).to.not.match(/seconds/);
      await refusal('0,1\n');
      const device = await boundDevice();
      const ok = await client(device).upload([
        { name: 'y2k', content: `${Date.UTC(2000, 0, 1)},1\n` },
      ]);
      expect(ok.status, ok.text).to.equal(200);
    });

    it('refuses microseconds and timestamps beyond the allowed clock skew, saying which', async () => {
      const micros = await refusal(`${Date.UTC(2025, 0, 1) * 1000},1\n`);
      expect(micros.details.reason).to.match(/looks like microseconds, not milliseconds/);
      const future = await refusal(`${Date.now() + 3 * 24 * 3600 * 1000},1\n`);
      expect(future.details.reason).to.match(/outside the accepted range .*: after its end/);
      expect(future.details.reason).to.not.match(/microseconds/);
    });
  });

  describe('series per device', () => {
    it('refuses an upload that would go over the cap with 422 too_many_series, storing nothing of it', async () => {
      const device = await boundDevice();
      const t = Date.UTC(2025, 5, 1);
      const first = await client(device).upload(
        ['a', 'b', 'c'].map((name) => ({ name, content: lines(t, 3) })),
      );
      expect(first.status, first.text).to.equal(200);
      const over = await client(device).upload([
        { name: 'a', content: lines(t + 10 * MINUTE, 3) },
        { name: 'd', content: lines(t, 3) },
        { name: 'e', content: lines(t, 3) },
        { name: 'f', content: lines(t, 3) },
      ]);
      expect(over.status, over.text).to.equal(422);
      expect(over.json.code).to.equal('too_many_series');
      expect(over.json.details).to.deep.equal({ part: 'f', limit: MAX_SERIES });
      expect(over.json.error).to.contain('FLEETGATE_MAX_SERIES_PER_DEVICE');
      expect(await seriesNames(device)).to.deep.equal(['a', 'b', 'c']);
      expect(await storedPoints(db, server, device, 'a')).to.have.length(3);
      // Up to the cap is fine; existing series always take more points.
      const upTo = await client(device).upload([
        { name: 'd', content: lines(t, 3) },
        { name: 'e', content: lines(t, 3) },
      ]);
      expect(upTo.status, upTo.text).to.equal(200);
      const oneMore = await client(device).upload([{ name: 'g', content: lines(t, 3) }]);
      expect(oneMore.status).to.equal(422);
      const existing = await client(device).upload([{ name: 'e', content: lines(t + MINUTE, 3) }]);
      expect(existing.status, existing.text).to.equal(200);
      expect(await seriesNames(device)).to.deep.equal(['a', 'b', 'c', 'd', 'e']);
    });

    it('holds the cap under concurrent uploads of one device', async () => {
      const device = await boundDevice();
      const t = Date.UTC(2025, 6, 1);
      const answers = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          client(device).upload([
            // A part of an existing-or-not series first, so uploads overlap before the new one.
            { name: 'common', content: lines(t + i * 1000 * MINUTE, 200) },
            { name: `new${String(i).padStart(2, '0')}`, content: lines(t, 200) },
          ]),
        ),
      );
      const statuses = answers.map((a) => a.status);
      expect(
        statuses.filter((s) => s === 200),
        JSON.stringify(statuses),
      ).to.have.length(MAX_SERIES - 1);
      expect(statuses.filter((s) => s === 422)).to.have.length(12 - (MAX_SERIES - 1));
      expect(await seriesNames(device)).to.have.length(MAX_SERIES);
      expect(await storedPoints(db, server, device, 'common')).to.have.length(
        200 * (MAX_SERIES - 1),
      );
    });
  });

  describe('series list pages', () => {
    let device: TestDevice;
    const names = ['a', 'b', 'c', 'd', 'e'];

    before(async () => {
      device = await boundDevice();
      const answer = await client(device).upload(
        names.map((name, i) => ({ name, content: lines(Date.UTC(2025, 1, 1), i + 1) })),
      );
      expect(answer.status, answer.text).to.equal(200);
    });

    it('pages the admin API list with limit and cursor, in name order', async () => {
      const base = `/v1/devices/${device.fingerprint}/series`;
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const query: string = cursor ? `?limit=2&cursor=${encodeURIComponent(cursor)}` : '?limit=2';
        const page = await admin.get(`${base}${query}`);
        expect(page.status, page.text).to.equal(200);
        expect(page.json.series.length).to.be.at.most(2);
        seen.push(...page.json.series.map((s: { name: string }) => s.name));
        cursor = page.json.nextCursor;
        pages++;
      } while (cursor);
      expect(seen).to.deep.equal(names);
      expect(pages).to.equal(3);
      const all = await admin.get(base);
      expect(all.json.nextCursor).to.equal(null);
      expect(all.json.series[2]).to.include({ name: 'c', points: 3 });
      const bad = await admin.get(`${base}?cursor=${Buffer.from('raw:1').toString('base64url')}`);
      expect(bad.status).to.equal(400);
      expect(bad.json.code).to.equal('invalid_cursor');
      expect((await admin.get(`${base}?limit=0`)).status).to.equal(400);
      expect((await admin.get(`${base}?limit=1001`)).status).to.equal(400);
    });

    it('pages the CLI list with --limit and --cursor, and lists everything without', async () => {
      const page = await server.cli([
        'series',
        'list',
        device.fingerprint,
        '--limit',
        '3',
        '--json',
      ]);
      expect(page.code, page.stderr).to.equal(0);
      const first = JSON.parse(page.stdout);
      expect(first.series.map((s: { name: string }) => s.name)).to.deep.equal(['a', 'b', 'c']);
      const rest = await server.cli([
        'series',
        'list',
        device.fingerprint,
        '--limit',
        '3',
        '--cursor',
        first.nextCursor,
      ]);
      expect(rest.code, rest.stderr).to.equal(0);
      expect(rest.stdout).to.match(/^d\s+4\s/m);
      expect(rest.stdout).to.match(/^e\s+5\s/m);
      expect(rest.stdout).to.not.match(/next page/);
      const all = await server.cli(['series', 'list', device.fingerprint, '--json']);
      // --json prints the admin API's body: `{"series": [...]}`.
      expect(JSON.parse(all.stdout).series.map((s: { name: string }) => s.name)).to.deep.equal(
        names,
      );
    });
  });
});

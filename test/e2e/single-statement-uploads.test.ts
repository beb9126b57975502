import { expect } from 'chai';
import { sql } from 'kysely';
import pino from 'pino';
import { loadConfig } from '../../src/config/config.js';
import { openDatabase, type DatabaseHandle } from '../../src/db/connect.js';
import { badRequest } from '../../src/http/app-error.js';
import { createIngestBackend } from '../../src/ingest/ingest-backend.js';
import { ingestBatch, type SeriesInput } from '../../src/ingest/ingest.service.js';
import { PointPartitions } from '../../src/ingest/partition-months.js';
import type { IngestBackend } from '../../src/ingest/upload-transaction.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';

/**
 * The common batch (one small series the device already has) is stored by
 * one statement instead of a transaction of five round trips. These check,
 * on the real database of the run (PostgreSQL or embedded), that it keeps
 * every promise of the transactional path: dedupe, first of a repeat wins,
 * nothing partial, new series and partitions through the transaction,
 * last-seen time, and that it is really taken (`begin` not called).
 */
describe('ingest: one statement for a batch of one small series', function () {
  this.timeout(120_000);
  let testDb: TestDatabase;
  let database: DatabaseHandle;
  let backend: IngestBackend;
  let begun = 0;
  let deviceId = 0;
  const partitions = new PointPartitions();
  const DAY = 24 * 3600 * 1000;
  const base = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 1) + DAY;

  before(async () => {
    testDb = await createTestDatabase({ migrated: true });
    database = await openDatabase(loadConfig(testDb.env), pino({ level: 'silent' }));
    await partitions.load(database.db);
    await partitions.createAhead(database.db, base, 1);
    const real = createIngestBackend(database, partitions);
    expect(real.storeSingleSeries).to.be.a('function');
    backend = {
      method: real.method,
      begin: (id) => {
        begun++;
        return real.begin(id);
      },
      storeSingleSeries: real.storeSingleSeries!.bind(real),
    };
    await sql`insert into identities (name) values ('single')`.execute(database.db);
    await sql`insert into psks (identity_id, secret_hash, prefix) values (1, '\\x01', 'p')`.execute(
      database.db,
    );
    const device = await sql<{ id: number }>`
      insert into devices (identity_id, psk_id) values (1, 1) returning id`.execute(database.db);
    deviceId = device.rows[0]!.id;
  });

  after(async () => {
    await database?.close();
    await testDb?.drop();
  });

  beforeEach(() => (begun = 0));

  const points = (from: number, count: number, step = 1000): Array<[number, number]> =>
    Array.from({ length: count }, (_, i) => [from + i * step, i / 10]);

  /** A series input as a channel makes one: points handed over in chunks of 500, flushed between. */
  function input(name: string, list: Array<[number, number]>, fail?: Error): SeriesInput {
    return {
      name,
      async feed(add, flush) {
        for (let i = 0; i < list.length; i++) {
          add(list[i]![0], list[i]![1]);
          if (i % 500 === 499) await flush();
        }
        await flush();
        if (fail) throw fail;
        return list.length;
      },
    };
  }

  const upload = (inputs: SeriesInput[] | AsyncIterable<SeriesInput>, max = 100) =>
    ingestBatch(backend, deviceId, inputs, { maxSeriesPerDevice: max });

  async function stored(name: string): Promise<Array<{ ms: number; value: number }>> {
    const result = await sql<{ ms: string; value: number }>`
      select (extract(epoch from p.ts) * 1000)::bigint::text as ms, p.value
      from points p join series s on s.id = p.series_id
      where s.device_id = ${deviceId} and s.name = ${name} order by p.ts`.execute(database.db);
    return result.rows.map((r) => ({ ms: Number(r.ms), value: r.value }));
  }

  async function errorOf(work: Promise<unknown>): Promise<Error> {
    try {
      await work;
    } catch (err) {
      return err as Error;
    }
    throw new Error('expected a refusal');
  }

  it('creates a new series through the transaction, then stores the next batch in one statement', async () => {
    const first = await upload([input('temp', points(base, 100))]);
    expect(first.stored).to.equal(100);
    expect(begun).to.equal(1);
    await sql`update devices set last_seen_at = null where id = ${deviceId}`.execute(database.db);

    begun = 0;
    const second = await upload([input('temp', points(base + 100_000, 100))]);
    expect(second).to.deep.equal({
      series: { temp: { stored: 100, duplicates: 0 } },
      stored: 100,
      duplicates: 0,
    });
    expect(begun).to.equal(0);
    expect((await stored('temp')).length).to.equal(200);
    const seen = await sql<{ last_seen_at: Date | null }>`
      select last_seen_at from devices where id = ${deviceId}`.execute(database.db);
    expect(seen.rows[0]!.last_seen_at).to.be.an.instanceOf(Date);
  });

  it('counts a retried batch as duplicates and keeps the first of a repeated timestamp', async () => {
    const retry = await upload([input('temp', points(base + 100_000, 100))]);
    expect(retry).to.deep.include({ stored: 0, duplicates: 100 });
    const repeated: Array<[number, number]> = [
      [base + 500_000, 1],
      [base + 500_000, 2],
      [base + 501_000, 3],
    ];
    const answer = await upload([input('temp', repeated)]);
    expect(answer).to.deep.include({ stored: 2, duplicates: 1 });
    expect(begun).to.equal(0);
    const kept = (await stored('temp')).filter((p) => p.ms >= base + 500_000);
    expect(kept).to.deep.equal([
      { ms: base + 500_000, value: 1 },
      { ms: base + 501_000, value: 3 },
    ]);
  });

  it('stores nothing of a small first series when a later series is refused', async () => {
    const before = (await stored('temp')).length;
    const err = await errorOf(
      upload([
        input('temp', points(base + 2 * DAY, 100)),
        input('other', points(base + 2 * DAY, 10), badRequest('bad_line', 'line 3 is bad')),
      ]),
    );
    expect(err.message).to.equal('line 3 is bad');
    expect((await stored('temp')).length).to.equal(before);
    expect(await stored('other')).to.deep.equal([]);
  });

  it('stores nothing when the input fails after a complete small series (a cut body)', async () => {
    const before = (await stored('temp')).length;
    async function* cut(): AsyncGenerator<SeriesInput> {
      yield input('temp', points(base + 3 * DAY, 100));
      throw badRequest('truncated_body', 'the body ended inside a part');
    }
    const err = await errorOf(upload(cut()));
    expect(err.message).to.equal('the body ended inside a part');
    expect((await stored('temp')).length).to.equal(before);
  });

  it('writes a first series past the held size as it streams, counting duplicates exactly', async () => {
    const list = points(base + 4 * DAY, 2500);
    list.splice(1000, 0, [list[999]![0], 99]);
    const answer = await upload([input('big', list)]);
    expect(answer).to.deep.include({ stored: 2500, duplicates: 1 });
    expect(begun).to.equal(1);
    const again = await upload([input('big', list)]);
    expect(again).to.deep.include({ stored: 0, duplicates: 2501 });
    const kept = await stored('big');
    expect(kept.length).to.equal(2500);
    expect(kept[999]!.value).to.equal(list[999]![1]);
  });

  it('takes the transaction for a month without partition, and creates it', async () => {
    const old = Date.UTC(2019, 4, 10);
    expect(partitions.missing([Date.UTC(2019, 4, 1)])).to.have.length(1);
    const answer = await upload([input('temp', points(old, 50))]);
    expect(answer.stored).to.equal(50);
    expect(begun).to.equal(1);
    expect(partitions.missing([Date.UTC(2019, 4, 1)])).to.deep.equal([]);
  });

  it('stores each point once when the same small batch arrives twice at the same time', async () => {
    const list = points(base + 5 * DAY, 100);
    const answers = await Promise.all([
      upload([input('temp', list)]),
      upload([input('temp', list)]),
    ]);
    expect(answers.map((a) => a.stored).sort()).to.deep.equal([0, 100]);
    expect(answers.map((a) => a.duplicates).sort()).to.deep.equal([0, 100]);
    expect(begun).to.equal(0);
  });

  it('still refuses a new series over the cap, storing nothing', async () => {
    const count = await sql<{ n: number }>`
      select count(*)::int as n from series where device_id = ${deviceId}`.execute(database.db);
    const err = await errorOf(upload([input('one-too-many', points(base, 10))], count.rows[0]!.n));
    expect((err as Error & { code?: string }).code).to.equal('too_many_series');
    expect(await stored('one-too-many')).to.deep.equal([]);
  });
});

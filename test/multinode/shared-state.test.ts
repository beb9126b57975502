/**
 * The stores several nodes share, each tested with two or more "nodes" (own
 * connection pools, own clients) on one migrated PostgreSQL database.
 */
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { pino } from 'pino';
import { ensureAdminToken } from '../../src/admin/admin-token.service.js';
import { startDeviceEventBus } from '../../src/control/device-event-bus.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import type { Database } from '../../src/db/schema.js';
import { deviceEvents } from '../../src/devices/device-events.js';
import { notifyDeviceEvent } from '../../src/devices/device-events.repository.js';
import { PostgresThrottleStore } from '../../src/throttle/postgres-throttle-store.js';
import { RedisThrottleStore } from '../../src/throttle/redis-throttle-store.js';
import { MemoryThrottleStore, type NamedPolicy } from '../../src/throttle/throttle-store.js';
import { loadSharedTicketKeys, PostgresSessionStore } from '../../src/tls/shared-tls-state.js';
import { skipBecause } from '../support/skip.js';
import {
  createTestDatabase,
  queryTestDatabase,
  type TestDatabase,
} from '../support/test-database.js';

const REDIS_URL = process.env.FLEETGATE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const log = pino({ level: 'silent' });

function nodePool(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('error', () => undefined);
  return pool;
}

describe('shared node state on PostgreSQL', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  const nodes: Kysely<Database>[] = [];
  const closers: Array<() => Promise<void> | void> = [];

  /** One more "node": its own pool on the test database. */
  function node(): Kysely<Database> {
    const kysely = new Kysely<Database>({
      dialect: new PostgresDialect({ pool: nodePool(db.url!) }),
    });
    nodes.push(kysely);
    return kysely;
  }

  before(async function () {
    if (!process.env.DATABASE_URL) {
      skipBecause(
        this,
        'these stores live in PostgreSQL; the embedded database keeps them in memory',
      );
    }
    db = await createTestDatabase();
    await migrateToLatest(node() as Kysely<unknown>);
  });
  after(async () => {
    for (const close of closers) await close();
    await Promise.all(nodes.map((kysely) => kysely.destroy()));
    await db?.drop();
  });

  const policy = (name: string, capacity: number, windowMs = 3_600_000): NamedPolicy => ({
    name,
    capacity,
    windowMs,
  });

  it('migrations started by several nodes at once apply once', async () => {
    const fresh = await createTestDatabase();
    const pools = Array.from({ length: 4 }, () => {
      const pool = new pg.Pool({ connectionString: fresh.url });
      // A connection cut when the database is dropped at the end is not this test's failure.
      pool.on('error', () => undefined);
      return pool;
    });
    try {
      const runs = await Promise.all(
        pools.map((pool) =>
          migrateToLatest(new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) })),
        ),
      );
      const applied = runs.flat().map((result) => result.migrationName);
      expect(new Set(applied).size, 'each migration applied by one node').to.equal(applied.length);
      expect(applied.length).to.be.greaterThan(0);
    } finally {
      await Promise.all(pools.map((pool) => pool.end()));
      await fresh.drop();
    }
  });

  it('PostgreSQL buckets: concurrent takes from two nodes never overrun the capacity', async () => {
    const a = new PostgresThrottleStore(node(), log);
    const b = new PostgresThrottleStore(node(), log);
    closers.push(
      () => a.close(),
      () => b.close(),
    );
    const limit = policy('test_concurrent', 5);
    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) => (i % 2 ? a : b).take(limit, 'one-key')),
    );
    expect(results.filter((r) => r.allowed)).to.have.length(5);
    const refused = results.find((r) => !r.allowed)!;
    expect(refused.remaining).to.equal(0);
    expect(refused.retryAfterSeconds).to.be.greaterThan(0);
    await a.refund(limit, 'one-key');
    expect((await b.take(limit, 'one-key')).allowed, 'the refunded token').to.equal(true);
    expect((await a.take(limit, 'one-key')).allowed).to.equal(false);
    expect((await a.take(limit, 'other-key')).allowed, 'keys are separate').to.equal(true);
  });

  it('PostgreSQL buckets: per-device buckets carry device_id, idle ones are swept', async () => {
    const store = new PostgresThrottleStore(node(), log);
    closers.push(() => store.close());
    const uploads = { ...policy('test_uploads', 3, 1), perDevice: true };
    await store.take(uploads, '42');
    const rows = await queryTestDatabase<{ device_id: string }>(
      db,
      `select device_id::text from throttle_buckets where bucket = 'test_uploads'`,
    );
    expect(rows).to.deep.equal([{ device_id: '42' }]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await store.sweep()).to.be.greaterThan(0);
    const left = await queryTestDatabase(
      db,
      `select 1 from throttle_buckets where bucket = 'test_uploads'`,
    );
    expect(left).to.have.length(0);
  });

  describe('Redis buckets', () => {
    before(async function () {
      const probe = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0 });
      probe.on('error', () => undefined);
      const answered = await probe
        .connect()
        .then(() => probe.ping())
        .then(
          (pong) => pong === 'PONG',
          () => false,
        );
      probe.disconnect();
      if (!answered) skipBecause(this, `no Redis at ${REDIS_URL} (apt-get install redis-server)`);
    });

    it('concurrent takes from two nodes never overrun the capacity; refund gives one back', async () => {
      const a = RedisThrottleStore.connect(REDIS_URL, new MemoryThrottleStore(), log);
      const b = RedisThrottleStore.connect(REDIS_URL, new MemoryThrottleStore(), log);
      closers.push(
        () => a.close(),
        () => b.close(),
      );
      await Promise.all([waitReady(a), waitReady(b)]);
      const limit = policy(`test-${process.pid}-${Date.now()}`, 5);
      const results = await Promise.all(
        Array.from({ length: 24 }, (_, i) => (i % 2 ? a : b).take(limit, 'one-key')),
      );
      expect(results.filter((r) => r.allowed)).to.have.length(5);
      // A refund gives back a token that was taken (refused takes count in Redis's
      // fixed window until it ends, so a fresh key shows it).
      for (let i = 0; i < 5; i++) expect((await a.take(limit, 'fresh')).allowed).to.equal(true);
      await a.refund(limit, 'fresh');
      expect((await b.take(limit, 'fresh')).allowed, 'the refunded token').to.equal(true);
      expect((await a.take(limit, 'fresh')).allowed).to.equal(false);
    });

    it('Redis down: takes go to the fallback store and are still limited (never open)', async () => {
      const fallback = new PostgresThrottleStore(node(), log);
      // Nothing listens on port 1: every Redis call fails at once.
      const down = RedisThrottleStore.connect('redis://127.0.0.1:1', fallback, log);
      closers.push(() => down.close());
      const limit = policy('test_redis_down', 2);
      const results = [];
      for (let i = 0; i < 4; i++) results.push((await down.take(limit, 'k')).allowed);
      expect(results).to.deep.equal([true, true, false, false]);
      const rows = await queryTestDatabase(
        db,
        `select 1 from throttle_buckets where bucket = 'test_redis_down'`,
      );
      expect(rows, 'the fallback kept the count in PostgreSQL').to.have.length(1);
    });
  });

  it('admin token: nodes setting it up together on an empty database generate one', async () => {
    const setups = await Promise.all(
      Array.from({ length: 5 }, () => ensureAdminToken(node(), undefined)),
    );
    expect(setups.filter((s) => s.source === 'generated')).to.have.length(1);
    expect(setups.filter((s) => s.source === 'stored')).to.have.length(4);
    const rows = await queryTestDatabase(db, 'select 1 from admin_tokens');
    expect(rows).to.have.length(1);
  });

  it('TLS sessions saved by one node are found by another; expired ones are not', async () => {
    const a = new PostgresSessionStore(node(), 60_000, log);
    const b = new PostgresSessionStore(node(), 60_000, log);
    const expired = new PostgresSessionStore(node(), -1000, log);
    closers.push(
      () => a.close(),
      () => b.close(),
      () => expired.close(),
    );
    await a.set(Buffer.from('id-1'), Buffer.from('session-1'));
    expect(await b.get(Buffer.from('id-1'))).to.deep.equal(Buffer.from('session-1'));
    expect(await b.get(Buffer.from('id-2'))).to.equal(undefined);
    await expired.set(Buffer.from('id-3'), Buffer.from('session-3'));
    expect(await a.get(Buffer.from('id-3'))).to.equal(undefined);
  });

  it('ticket keys: nodes loading together agree on one key; a due rotation keeps the old one as previous', async () => {
    const loaded = await Promise.all(
      Array.from({ length: 5 }, () => loadSharedTicketKeys(node(), 3_600_000)),
    );
    const names = new Set(loaded.map((keys) => keys.current.name.toString('hex')));
    expect(names.size).to.equal(1);
    const rotated = await loadSharedTicketKeys(node(), 0);
    expect(rotated.current.name.equals(loaded[0]!.current.name)).to.equal(false);
    expect(rotated.previous?.name.equals(loaded[0]!.current.name)).to.equal(true);
  });

  it('news sent in a committed transaction reaches every node through the device event bus, a rolled-back one none', async () => {
    const busA = startDeviceEventBus(db.url!, log);
    const busB = startDeviceEventBus(db.url!, log);
    closers.push(
      () => busA.close(),
      () => busB.close(),
    );
    const kysely = node();
    // The application sends the news: no trigger on devices (it would fire on a Citus worker).
    const triggers = await queryTestDatabase<{ n: string }>(
      db,
      "select count(*)::text as n from pg_trigger where tgname = 'devices_notify_change'",
    );
    expect(triggers[0]!.n).to.equal('0');
    // Both buses are listening once their connections have run LISTEN.
    for (let attempt = 0; attempt < 200; attempt++) {
      const listening = await queryTestDatabase<{ n: string }>(
        db,
        `select count(*)::text as n from pg_stat_activity
         where datname = current_database() and state = 'idle'
           and query = 'listen fleetgate_device_events'`,
      );
      if (listening[0]!.n === '2') break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const heard: number[] = [];
    const refused: string[] = [];
    const onRevoked = (deviceId: number) => heard.push(deviceId);
    const onRefused = (fingerprints: readonly string[]) => refused.push(...fingerprints);
    deviceEvents.on('revoked', onRevoked);
    deviceEvents.on('certificatesRefused', onRefused);
    try {
      const rolledBack = await kysely
        .transaction()
        .execute(async (trx) => {
          await notifyDeviceEvent(trx, { event: 'revoked', deviceId: 1001 });
          throw new Error('rolled back');
        })
        .catch((err: Error) => err.message);
      expect(rolledBack).to.equal('rolled back');
      // A list longer than one NOTIFY payload takes several; every node hears all of it.
      const deviceIds = Array.from({ length: 3000 }, (_, i) => 2000 + i);
      const fingerprints = ['a'.repeat(64), 'b'.repeat(64)];
      const allHeard = new Promise<void>((resolve) => {
        const check = () => {
          if (heard.filter((id) => id === 1002).length === 2 && refused.length === 4) {
            deviceEvents.off('revoked', check);
            deviceEvents.off('certificatesRefused', check);
            resolve();
          }
        };
        deviceEvents.on('revoked', check);
        deviceEvents.on('certificatesRefused', check);
      });
      await kysely.transaction().execute(async (trx) => {
        await notifyDeviceEvent(trx, { event: 'identity_disabled', deviceIds });
        await notifyDeviceEvent(trx, { event: 'certificates_refused', fingerprints });
        await notifyDeviceEvent(trx, { event: 'revoked', deviceId: 1002 });
      });
      await allHeard;
      // Delivered in order, at commit: the rolled-back news never came.
      expect(heard).to.not.include(1001);
      expect(heard).to.have.length(2 * (deviceIds.length + 1));
      expect(new Set(heard)).to.deep.equal(new Set([...deviceIds, 1002]));
      expect(refused.sort()).to.deep.equal([...fingerprints, ...fingerprints].sort());
    } finally {
      deviceEvents.off('revoked', onRevoked);
      deviceEvents.off('certificatesRefused', onRefused);
    }
  });
});

async function waitReady(store: RedisThrottleStore): Promise<void> {
  const client = (store as unknown as { client: { status: string } }).client;
  for (let attempt = 0; attempt < 100 && client.status !== 'ready'; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

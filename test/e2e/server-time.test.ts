import { expect } from 'chai';
import { sql } from 'kysely';
import pino from 'pino';
import { loadConfig } from '../../src/config/config.js';
import { openDatabase, type DatabaseHandle } from '../../src/db/connect.js';
import { takeServerTime } from '../../src/devices/device.repository.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';

/**
 * The server's time of messages without `ts` comes from the device's row, so
 * that every node sharing the database draws from one value. Checked here on
 * the real database of the run (PostgreSQL or embedded) with a given clock;
 * test/multinode/server-time.test.ts checks it with two nodes.
 */
describe('server time of messages without ts (per device, in the database)', function () {
  this.timeout(120_000);
  let testDb: TestDatabase;
  let database: DatabaseHandle;
  const devices: number[] = [];

  before(async () => {
    testDb = await createTestDatabase({ migrated: true });
    database = await openDatabase(loadConfig(testDb.env), pino({ level: 'silent' }));
    await sql`insert into identities (name) values ('clock')`.execute(database.db);
    await sql`insert into psks (identity_id, secret_hash, prefix) values (1, '\\x01', 'p')`.execute(
      database.db,
    );
    for (let i = 0; i < 3; i++) {
      const device = await sql<{ id: number }>`
        insert into devices (identity_id, psk_id) values (1, 1) returning id`.execute(database.db);
      devices.push(device.rows[0]!.id);
    }
  });

  after(async () => {
    await database?.close();
    await testDb?.drop();
  });

  const take = (device: number, nowMs: number) => takeServerTime(database.db, device, nowMs);

  it('gives a device one millisecond after its last time while the clock has not passed it', async () => {
    const [one, two] = devices as [number, number];
    const clock = 1_764_500_000_000;
    expect([await take(one, clock), await take(one, clock), await take(one, clock)]).to.deep.equal([
      clock,
      clock + 1,
      clock + 2,
    ]);
    // A node whose clock is behind still gets a later time than the last one given.
    expect(await take(one, clock - 5_000)).to.equal(clock + 3);
    // Another device is not affected; once the clock has passed, it is the clock again.
    expect(await take(two, clock)).to.equal(clock);
    expect(await take(one, clock + 60_000)).to.equal(clock + 60_000);
    expect(await take(one, clock + 60_000)).to.equal(clock + 60_001);
  });

  it('gives concurrent askers of one device different times', async () => {
    const device = devices[2]!;
    const clock = 1_764_600_000_000;
    const times = await Promise.all(Array.from({ length: 40 }, () => take(device, clock)));
    expect([...times].sort((x, y) => x! - y!)).to.deep.equal(
      Array.from({ length: 40 }, (_, i) => clock + i),
    );
  });

  it('has no time for a device that does not exist', async () => {
    expect(await take(2_000_000_000, 1_764_500_000_000)).to.equal(undefined);
  });
});

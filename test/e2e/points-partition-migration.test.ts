import { expect } from 'chai';
import { sql } from 'kysely';
import { createMigrator } from '../../src/db/migrate.js';
import { useUnmigratedDatabase } from '../support/migration-database.js';

/** The partitioning migration converts a table that already holds points, and back. */
describe('points partitioning migration', function () {
  this.timeout(60_000);
  const database = useUnmigratedDatabase();

  const points = () =>
    sql<{ series_id: number; ms: string; value: number }>`
      select series_id, (extract(epoch from ts) * 1000)::bigint::text as ms, value
      from points order by series_id, ts`.execute(database.db);
  const partitions = () =>
    sql<{ name: string }>`
      select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
      where i.inhparent = 'points'::regclass order by 1`.execute(database.db);

  it('moves existing points into month partitions and can go back', async () => {
    const migrator = createMigrator(database.db as never);
    const first = await migrator.migrateTo('2026-11-22T0001_devices_and_points');
    expect(first.error).to.equal(undefined);
    await sql`
      insert into points (series_id, ts, value) values
        (1, '2021-03-31 23:59:59.999+00', 1), (1, '2021-04-01 00:00:00+00', 2),
        (2, '1970-01-01 00:00:00+00', 3)`.execute(database.db);
    const before = (await points()).rows;

    const up = await migrator.migrateToLatest();
    expect(up.error).to.equal(undefined);
    expect((await points()).rows).to.deep.equal(before);
    const names = (await partitions()).rows.map((r) => r.name);
    expect(names).to.include.members(['points_1970_01', 'points_2021_03', 'points_2021_04']);
    // The primary key still skips a point that is already stored.
    const again = await sql`
      insert into points (series_id, ts, value, device_id)
      values (1, '2021-04-01 00:00:00+00', 9, 0) on conflict do nothing`.execute(database.db);
    expect(Number(again.numAffectedRows)).to.equal(0);

    // Down to just before the partitioning, whatever migrations came after it.
    const down = await migrator.migrateTo('2026-11-22T1000_device_lifecycle_and_audit');
    expect(down.error).to.equal(undefined);
    expect((await points()).rows).to.deep.equal(before);
    expect((await partitions()).rows).to.deep.equal([]);
    expect((await migrator.migrateToLatest()).error).to.equal(undefined);
  });
});

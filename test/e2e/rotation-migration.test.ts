import { expect } from 'chai';
import { sql } from 'kysely';
import { createMigrator } from '../../src/db/migrate.js';
import { useUnmigratedDatabase } from '../support/migration-database.js';

/** The proof-of-possession migration drops unproven pending certificates of the old scheme. */
describe('rotation proof-of-possession migration', function () {
  this.timeout(60_000);
  const database = useUnmigratedDatabase();

  const fp = (c: string) => c.repeat(64);
  const states = async () =>
    (
      await sql<{ fingerprint: string; state: string }>`
        select fingerprint, state from device_certificates order by fingerprint`.execute(
        database.db,
      )
    ).rows;

  it('removes pending certificates, keeps the others, forbids the pending state, and goes back', async () => {
    const migrator = createMigrator(database.db as never);
    expect((await migrator.migrateTo('2026-11-22T2000_partition_points_by_month')).error).to.equal(
      undefined,
    );
    await sql`insert into identities (name) values ('old')`.execute(database.db);
    await sql`insert into psks (identity_id, secret_hash, prefix) values (1, '\\x01', 'p')`.execute(
      database.db,
    );
    await sql`insert into devices (identity_id, psk_id) values (1, 1)`.execute(database.db);
    await sql`
      insert into device_certificates
        (fingerprint, device_id, subject, issuer, serial_number, not_before, not_after, state)
      values
        (${fp('a')}, 1, 'CN=a', 'CN=a', '01', now(), now() + interval '1 day', 'active'),
        (${fp('b')}, 1, 'CN=b', 'CN=b', '02', now(), now() + interval '1 day', 'pending')`.execute(
      database.db,
    );

    expect((await migrator.migrateToLatest()).error).to.equal(undefined);
    expect(await states()).to.deep.equal([{ fingerprint: fp('a'), state: 'active' }]);
    let refused: unknown;
    try {
      await sql`update device_certificates set state = 'pending'`.execute(database.db);
    } catch (err) {
      refused = err;
    }
    expect(String(refused)).to.match(/device_certificates_state_check/);

    expect((await migrator.migrateTo('2026-11-22T2000_partition_points_by_month')).error).to.equal(
      undefined,
    );
    await sql`update device_certificates set state = 'pending'`.execute(database.db);
    expect((await migrator.migrateToLatest()).error).to.equal(undefined);
    expect(await states()).to.deep.equal([]);
  });
});

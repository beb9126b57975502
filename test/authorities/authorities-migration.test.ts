import { expect } from 'chai';
import { sql } from 'kysely';
import { createMigrator } from '../../src/db/migrate.js';
import { useUnmigratedDatabase } from '../support/migration-database.js';

/** The certificate-authorities migration keeps PSK devices and is reversible. */
describe('certificate authorities migration', function () {
  this.timeout(60_000);
  const database = useUnmigratedDatabase();

  it('keeps existing devices, allows a device without a PSK only with a CA, and goes back', async () => {
    const migrator = createMigrator(database.db as never);
    const before = '2026-11-30T0100_rotation_proof_of_possession';
    expect((await migrator.migrateTo(before)).error).to.equal(undefined);
    await sql`insert into identities (name) values ('old')`.execute(database.db);
    await sql`insert into psks (identity_id, secret_hash, prefix) values (1, '\\x01', 'p')`.execute(
      database.db,
    );
    await sql`insert into devices (identity_id, psk_id) values (1, 1)`.execute(database.db);

    expect((await migrator.migrateToLatest()).error).to.equal(undefined);
    const kept = await sql<{ psk_id: number }>`select psk_id from devices`.execute(database.db);
    expect(kept.rows).to.deep.equal([{ psk_id: 1 }]);
    let refused: unknown;
    try {
      await sql`insert into devices (identity_id) values (1)`.execute(database.db);
    } catch (err) {
      refused = err;
    }
    expect(String(refused)).to.contain('devices_enrolled_by');
    await sql`insert into devices (identity_id, enrolled_by_ca) values (1, ${'a'.repeat(64)})`.execute(
      database.db,
    );
    await sql`delete from devices where psk_id is null`.execute(database.db);

    expect((await migrator.migrateTo(before)).error).to.equal(undefined);
    const tables = await sql<{ n: number }>`
      select count(*)::int as n from information_schema.tables
      where table_name in ('certificate_authorities', 'ca_revoked_serials', 'device_names')`.execute(
      database.db,
    );
    expect(tables.rows[0].n).to.equal(0);
    expect((await migrator.migrateToLatest()).error).to.equal(undefined);
  });
});

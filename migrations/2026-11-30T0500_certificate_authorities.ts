import { sql, type Kysely } from 'kysely';

/**
 * Certificate authorities per identity, their CRLs, and pre-registered device
 * names (issue 11). A device enrolled by certificate chain has no PSK, so
 * devices.psk_id becomes nullable and devices.enrolled_by_ca keeps the fingerprint of the CA that admitted it (a
 * fingerprint, not a reference: removing a CA stops new enrollments, it does
 * not erase how existing devices came in).
 * Frozen in time: never import application code here.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  // A CA certificate (by fingerprint) belongs to one identity only.
  await db.schema
    .createTable('certificate_authorities')
    .addColumn('id', 'integer', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('identity_id', 'integer', (c) => c.notNull().references('identities.id'))
    .addColumn('fingerprint', 'text', (c) =>
      c
        .notNull()
        .unique()
        .check(sql`fingerprint ~ '^[0-9a-f]{64}$'`),
    )
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('issuer', 'text', (c) => c.notNull())
    .addColumn('not_before', 'timestamptz', (c) => c.notNull())
    .addColumn('not_after', 'timestamptz', (c) => c.notNull())
    .addColumn('certificate_pem', 'text', (c) => c.notNull())
    // Where a device's name comes from: its subject CN (the only choice today).
    .addColumn('name_from', 'text', (c) =>
      c
        .notNull()
        .defaultTo('cn')
        .check(sql`name_from in ('cn')`),
    )
    .addColumn('crl_this_update', 'timestamptz')
    .addColumn('crl_next_update', 'timestamptz')
    .addColumn('added_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createIndex('certificate_authorities_identity_idx')
    .on('certificate_authorities')
    .column('identity_id')
    .execute();

  // Serials revoked by a CA's latest CRL (replaced as a whole when a CRL loads).
  await db.schema
    .createTable('ca_revoked_serials')
    .addColumn('ca_id', 'integer', (c) =>
      c.notNull().references('certificate_authorities.id').onDelete('cascade'),
    )
    .addColumn('serial_number', 'text', (c) => c.notNull())
    .addColumn('revoked_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('ca_revoked_serials_pk', ['ca_id', 'serial_number'])
    .execute();

  // Device names of an identity: pre-registered (provisioned) or taken by a device.
  await db.schema
    .createTable('device_names')
    .addColumn('identity_id', 'integer', (c) => c.notNull().references('identities.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('provisioned', 'active')`))
    // Pre-registered by an admin (provision, devices preregister): once an
    // identity has any, only those names may enroll.
    .addColumn('preregistered', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('device_id', 'integer', (c) => c.references('devices.id').unique())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('device_names_pk', ['identity_id', 'name'])
    .execute();

  await sql`alter table devices alter column psk_id drop not null`.execute(db);
  await sql`alter table devices add column enrolled_by_ca text`.execute(db);
  // Every device came in one way or the other.
  await sql`alter table devices add constraint devices_enrolled_by check (psk_id is not null or enrolled_by_ca is not null)`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // Devices enrolled by chain cannot exist without a PSK in the old schema.
  await sql`alter table devices drop constraint devices_enrolled_by`.execute(db);
  await sql`alter table devices drop column enrolled_by_ca`.execute(db);
  await sql`alter table devices alter column psk_id set not null`.execute(db);
  await db.schema.dropTable('device_names').execute();
  await db.schema.dropTable('ca_revoked_serials').execute();
  await db.schema.dropTable('certificate_authorities').execute();
}

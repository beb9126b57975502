import { sql, type Kysely } from 'kysely';

/**
 * Identities own PSKs and devices. A device is a record that certificates
 * point at, so a later certificate rotation keeps the device's series.
 * Frozen in time: never import application code here.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('identities')
    .addColumn('id', 'integer', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('disabled_at', 'timestamptz')
    .execute();

  await db.schema
    .createTable('psks')
    .addColumn('id', 'integer', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('identity_id', 'integer', (c) => c.notNull().references('identities.id'))
    .addColumn('secret_hash', 'bytea', (c) => c.notNull().unique())
    .addColumn('prefix', 'text', (c) => c.notNull())
    .addColumn('max_devices', 'integer', (c) => c.check(sql`max_devices > 0`))
    .addColumn('expires_at', 'timestamptz')
    .addColumn('revoked_at', 'timestamptz')
    .addColumn('devices_bound', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('psks_identity_idx').on('psks').column('identity_id').execute();

  await db.schema
    .createTable('devices')
    .addColumn('id', 'integer', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('identity_id', 'integer', (c) => c.notNull().references('identities.id'))
    .addColumn('psk_id', 'integer', (c) => c.notNull().references('psks.id'))
    .addColumn('bound_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('bound_from', 'text')
    .addColumn('last_seen_at', 'timestamptz')
    .addColumn('revoked_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('devices_identity_idx').on('devices').column('identity_id').execute();
  await db.schema.createIndex('devices_psk_idx').on('devices').column('psk_id').execute();

  await db.schema
    .createTable('device_certificates')
    .addColumn('fingerprint', 'text', (c) =>
      c.primaryKey().check(sql`fingerprint ~ '^[0-9a-f]{64}$'`),
    )
    .addColumn('device_id', 'integer', (c) => c.notNull().references('devices.id'))
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('issuer', 'text', (c) => c.notNull())
    .addColumn('serial_number', 'text', (c) => c.notNull())
    .addColumn('not_before', 'timestamptz', (c) => c.notNull())
    .addColumn('not_after', 'timestamptz', (c) => c.notNull())
    .addColumn('added_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createIndex('device_certificates_device_idx')
    .on('device_certificates')
    .column('device_id')
    .execute();

  await db.schema
    .createTable('series')
    .addColumn('id', 'integer', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('device_id', 'integer', (c) => c.notNull().references('devices.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addUniqueConstraint('series_device_name_key', ['device_id', 'name'])
    .execute();

  // No foreign key from points to series: it would cost a lookup per inserted
  // row on the hot path, and series rows are never deleted.
  await db.schema
    .createTable('points')
    .addColumn('series_id', 'integer', (c) => c.notNull())
    .addColumn('ts', 'timestamptz', (c) => c.notNull())
    .addColumn('value', 'double precision', (c) => c.notNull())
    .addPrimaryKeyConstraint('points_pkey', ['series_id', 'ts'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of [
    'points',
    'series',
    'device_certificates',
    'devices',
    'psks',
    'identities',
  ]) {
    await db.schema.dropTable(table).execute();
  }
}

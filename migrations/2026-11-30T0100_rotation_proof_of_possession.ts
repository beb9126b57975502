import { sql, type Kysely } from 'kysely';

/**
 * Certificate rotation with proof of possession. A certificate submitted for
 * rotation no longer lives in device_certificates (where it blocked binds and
 * activated at its first presentation): it waits in pending_rotations, proven
 * by a signature of its own key over a single-use server challenge, and joins
 * the device only when presented over mTLS with the completion secret.
 * Frozen in time: never import application code here.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  // Pending certificates of the old scheme never proved anything: drop them.
  await sql`delete from device_certificates where state = 'pending'`.execute(db);
  await sql`alter table device_certificates drop constraint if exists device_certificates_state_check`.execute(
    db,
  );
  await sql`alter table device_certificates add constraint device_certificates_state_check check (state in ('active', 'retired'))`.execute(
    db,
  );

  // One outstanding challenge per device; a new one replaces it.
  await db.schema
    .createTable('rotation_challenges')
    .addColumn('device_id', 'integer', (c) => c.primaryKey().references('devices.id'))
    .addColumn('challenge_hash', 'bytea', (c) => c.notNull().unique())
    .addColumn('presented_by', 'text', (c) => c.notNull())
    .addColumn('issued_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();

  // One pending rotation per device; a new one replaces it. The same
  // certificate may be pending for two devices (both proved its key): only
  // one can ever complete, since device_certificates.fingerprint is unique.
  await db.schema
    .createTable('pending_rotations')
    .addColumn('id', 'integer', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('device_id', 'integer', (c) => c.notNull().unique().references('devices.id'))
    .addColumn('fingerprint', 'text', (c) => c.notNull().check(sql`fingerprint ~ '^[0-9a-f]{64}$'`))
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('issuer', 'text', (c) => c.notNull())
    .addColumn('serial_number', 'text', (c) => c.notNull())
    .addColumn('not_before', 'timestamptz', (c) => c.notNull())
    .addColumn('not_after', 'timestamptz', (c) => c.notNull())
    .addColumn('replaces', 'text', (c) => c.notNull())
    .addColumn('completion_hash', 'bytea', (c) => c.notNull().unique())
    .addColumn('requested_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('pending_rotations_fingerprint_idx')
    .on('pending_rotations')
    .column('fingerprint')
    .execute();
  await db.schema
    .createIndex('pending_rotations_expires_idx')
    .on('pending_rotations')
    .column('expires_at')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('pending_rotations').execute();
  await db.schema.dropTable('rotation_challenges').execute();
  await sql`alter table device_certificates drop constraint if exists device_certificates_state_check`.execute(
    db,
  );
  await sql`alter table device_certificates add constraint device_certificates_state_check check (state in ('pending', 'active', 'retired'))`.execute(
    db,
  );
}

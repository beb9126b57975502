import { sql, type Kysely } from 'kysely';

/**
 * Device lifecycle: a per-identity device limit, certificate states for
 * rotation without re-enrolment, an append-only audit log, and the hash of
 * the admin API token. Frozen in time: never import application code here.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('identities')
    .addColumn('max_devices', 'integer', (c) => c.check(sql`max_devices > 0`))
    .execute();

  await db.schema
    .alterTable('psks')
    .addColumn('single_use', 'boolean', (c) => c.notNull().defaultTo(false))
    .execute();

  await db.schema.alterTable('devices').addColumn('revoked_reason', 'text').execute();

  // `pending`: submitted by the device for rotation, not yet presented over
  // mTLS. `active`: accepted. `retired`: replaced by a newer certificate; still
  // accepted until retired_at (the grace period), refused after.
  await db.schema
    .alterTable('device_certificates')
    .addColumn('state', 'text', (c) =>
      c
        .notNull()
        .defaultTo('active')
        .check(sql`state in ('pending', 'active', 'retired')`),
    )
    .addColumn('activated_at', 'timestamptz')
    .addColumn('retired_at', 'timestamptz')
    .execute();
  await sql`update device_certificates set activated_at = added_at`.execute(db);

  // No foreign keys: a foreign key check takes a KEY SHARE lock on the identity
  // and PSK rows, and a refused bind recorded outside the bind transaction
  // would then deadlock against concurrent binds holding those rows FOR UPDATE.
  // An audit log is a record of history; it must never block or be blocked.
  await db.schema
    .createTable('audit_events')
    .addColumn('id', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('identity_id', 'integer')
    .addColumn('psk_id', 'integer')
    .addColumn('device_id', 'integer')
    .addColumn('fingerprint', 'text')
    .addColumn('remote_address', 'text')
    .addColumn('details', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .execute();
  await db.schema
    .createIndex('audit_events_identity_idx')
    .on('audit_events')
    .columns(['identity_id', 'id'])
    .execute();
  await db.schema
    .createIndex('audit_events_device_idx')
    .on('audit_events')
    .columns(['device_id', 'id'])
    .execute();
  await db.schema
    .createIndex('audit_events_fingerprint_idx')
    .on('audit_events')
    .columns(['fingerprint', 'id'])
    .execute();

  await db.schema
    .createTable('admin_tokens')
    .addColumn('id', 'integer', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('token_hash', 'bytea', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('admin_tokens').execute();
  await db.schema.dropTable('audit_events').execute();
  await db.schema
    .alterTable('device_certificates')
    .dropColumn('state')
    .dropColumn('activated_at')
    .dropColumn('retired_at')
    .execute();
  await db.schema.alterTable('devices').dropColumn('revoked_reason').execute();
  await db.schema.alterTable('psks').dropColumn('single_use').execute();
  await db.schema.alterTable('identities').dropColumn('max_devices').execute();
}

import { sql, type Kysely } from 'kysely';

/**
 * Owner confirmation with a PIN (issue 12). An identity may require that its
 * owner confirms every new device: the device is created on its bind or
 * enrollment but stays `pending_confirmation` (uploads refused) until a
 * registration request is confirmed by the owner (PIN + serial) and completed
 * by the device (nonce). Registrations grow with the fleet, so they carry
 * device_id (the distribution column later) and their key includes it.
 * Frozen in time: never import application code here.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table identities add column if not exists require_confirmation boolean not null default false`.execute(
    db,
  );
  await sql`alter table devices add column if not exists pending_confirmation boolean not null default false`.execute(
    db,
  );
  await db.schema
    .createTable('registrations')
    .ifNotExists()
    .addColumn('device_id', 'integer', (c) => c.notNull().references('devices.id'))
    .addColumn('rid', 'text', (c) => c.notNull().check(sql`rid ~ '^[0-9a-f]{32}$'`))
    .addColumn('identity_id', 'integer', (c) => c.notNull().references('identities.id'))
    .addColumn('fingerprint', 'text', (c) => c.notNull().check(sql`fingerprint ~ '^[0-9a-f]{64}$'`))
    .addColumn('serial_last4', 'text', (c) => c.notNull())
    // SHA-256 of rid and PIN, of the nonce: neither is stored in clear.
    .addColumn('pin_hash', 'bytea', (c) => c.notNull())
    .addColumn('nonce_hash', 'bytea', (c) => c.notNull())
    .addColumn('status', 'text', (c) =>
      c
        .notNull()
        .check(
          sql`status in ('PENDING_USER_CONFIRMATION', 'PENDING_DEVICE_COMPLETION', 'REGISTERED', 'EXPIRED', 'REVOKED')`,
        ),
    )
    .addColumn('failed_attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('requested_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('requested_from', 'text')
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('confirmed_at', 'timestamptz')
    .addColumn('confirmed_by', 'text')
    .addColumn('confirmed_from', 'text')
    .addColumn('completed_at', 'timestamptz')
    .addColumn('ended_at', 'timestamptz')
    .addColumn('ended_reason', 'text')
    .addPrimaryKeyConstraint('registrations_pk', ['device_id', 'rid'])
    .execute();
  await db.schema
    .createIndex('registrations_rid_idx')
    .ifNotExists()
    .on('registrations')
    .column('rid')
    .execute();
  await db.schema
    .createIndex('registrations_identity_status_idx')
    .ifNotExists()
    .on('registrations')
    .columns(['identity_id', 'status'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('registrations').ifExists().execute();
  await sql`alter table devices drop column if exists pending_confirmation`.execute(db);
  await sql`alter table identities drop column if exists require_confirmation`.execute(db);
}

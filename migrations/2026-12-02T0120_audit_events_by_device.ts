import { sql, type Kysely } from 'kysely';

/**
 * Audit entries per device become distributable by `device_id` (issue 15):
 * a distribution column cannot be NULL, so an event of no device (an
 * identity or PSK change, a stranger's refused bind) has device 0, no device
 * ever has id 0 (ids start at 1), and the repository reads 0 back as "none".
 * The key becomes (id, device_id), as Citus requires; `id` alone stays unique
 * in fact (an identity column) and keeps ordering and paging the events.
 * Expand and contract in one step: the new key is built beside the old one,
 * then takes its place. Same on plain PostgreSQL and the embedded database.
 *
 * Frozen in time: never import application code here.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`update audit_events set device_id = 0 where device_id is null`.execute(db);
  await sql`alter table audit_events alter column device_id set default 0`.execute(db);
  await sql`alter table audit_events alter column device_id set not null`.execute(db);
  await sql`create unique index audit_events_id_device_key on audit_events (id, device_id)`.execute(
    db,
  );
  await sql`alter table audit_events drop constraint audit_events_pkey`.execute(db);
  await sql`
    alter table audit_events add constraint audit_events_pkey
    primary key using index audit_events_id_device_key`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table audit_events drop constraint audit_events_pkey`.execute(db);
  await sql`alter table audit_events add constraint audit_events_pkey primary key (id)`.execute(db);
  await sql`alter table audit_events alter column device_id drop not null`.execute(db);
  await sql`alter table audit_events alter column device_id drop default`.execute(db);
  await sql`update audit_events set device_id = null where device_id = 0`.execute(db);
}

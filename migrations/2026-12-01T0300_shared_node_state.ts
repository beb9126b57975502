import { sql, type Kysely } from 'kysely';

/**
 * State that several fleetgate nodes on one database must share:
 *
 * - `throttle_buckets`: the brute-force and upload limits (token buckets),
 *   so that N nodes do not give an attacker N budgets. UNLOGGED: a bucket is
 *   worth no WAL, and after a crash of PostgreSQL every bucket is simply full.
 *   `device_id` is set for per-device buckets (uploads).
 * - `tls_sessions`: the session-ID resumption cache, so that a device
 *   resumes on any node. UNLOGGED for the same reason (a lost session costs
 *   one full handshake). A row holds a session's master secret: it lives only
 *   as long as the session lifetime and is deleted after.
 * - `tls_ticket_keys`: the session ticket keys, so that a ticket issued by
 *   one node opens on every other one.
 * - a NOTIFY on `fleetgate_device_events` when a device is revoked or its
 *   certificate state changes, so that long-lived connections (WebSocket)
 *   held by any node are dropped at once.
 *
 * Frozen in time: never import application code here.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create unlogged table if not exists throttle_buckets (
      bucket text not null,
      key text not null,
      device_id bigint,
      tokens double precision not null,
      taken boolean not null,
      updated_at timestamptz not null,
      primary key (bucket, key)
    )`.execute(db);
  await sql`
    create unlogged table if not exists tls_sessions (
      session_id bytea primary key,
      session bytea not null,
      expires_at timestamptz not null
    )`.execute(db);
  await sql`create index if not exists tls_sessions_expires_at on tls_sessions (expires_at)`.execute(
    db,
  );
  await sql`
    create table if not exists tls_ticket_keys (
      id bigint generated always as identity primary key,
      key bytea not null check (octet_length(key) = 48),
      created_at timestamptz not null default now()
    )`.execute(db);
  await sql`
    create or replace function devices_notify_change() returns trigger
    language plpgsql as $$
    begin
      if new.revoked_at is not null and old.revoked_at is null then
        perform pg_notify('fleetgate_device_events',
          json_build_object('event', 'revoked', 'deviceId', new.id)::text);
      end if;
      return new;
    end
    $$`.execute(db);
  await sql`drop trigger if exists devices_notify_change on devices`.execute(db);
  await sql`
    create trigger devices_notify_change after update of revoked_at on devices
    for each row execute function devices_notify_change()`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop trigger if exists devices_notify_change on devices`.execute(db);
  await sql`drop function if exists devices_notify_change()`.execute(db);
  await sql`drop table if exists tls_ticket_keys`.execute(db);
  await sql`drop table if exists tls_sessions`.execute(db);
  await sql`drop table if exists throttle_buckets`.execute(db);
}

import { sql, type Kysely } from 'kysely';

/**
 * The news of a revocation on `fleetgate_device_events` is sent by the
 * application, in the transaction that revokes (and likewise for a disabled
 * identity and retired certificates), no longer by a trigger on `devices`:
 * on Citus that trigger would fire on a worker, where no node listens, so it
 * was dropped there and the nodes only learnt through their poll. One
 * mechanism everywhere, and no event sent twice. Frozen in time: never import
 * application code here.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  // Only where it is: Citus refuses even `drop trigger if exists` on a
  // distributed table, and one distributed before this migration has none.
  const trigger = await sql<{ present: boolean }>`
    select exists (
      select 1 from pg_trigger
      where tgname = 'devices_notify_change' and tgrelid = 'devices'::regclass
    ) as present`.execute(db);
  if (trigger.rows[0]?.present) {
    await sql`drop trigger devices_notify_change on devices`.execute(db);
  }
  await sql`drop function if exists devices_notify_change()`.execute(db);
}

/** Back to the trigger of 2026-12-01T0300 (not on Citus, which never had it). */
export async function down(db: Kysely<unknown>): Promise<void> {
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
  const citus = await sql<{ present: boolean }>`
    select exists (select 1 from pg_extension where extname = 'citus') as present`.execute(db);
  if (citus.rows[0]?.present) return;
  await sql`drop trigger if exists devices_notify_change on devices`.execute(db);
  await sql`
    create trigger devices_notify_change after update of revoked_at on devices
    for each row execute function devices_notify_change()`.execute(db);
}

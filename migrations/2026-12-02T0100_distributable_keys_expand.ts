import { sql, type Kysely } from 'kysely';

/**
 * Expand step of making the schema distributable by device (issue 15, Citus).
 * A distributed database (Citus) shards every table that grows with the fleet
 * by `device_id` and requires each of their unique keys to include it. This
 * step only adds: the column `points.device_id` (filled from `series`),
 * unique indexes that include `device_id` beside the keys they will replace,
 * and `certificate_fingerprints`, which keeps a certificate's fingerprint
 * unique across every device once `device_certificates` is keyed by
 * (fingerprint, device_id). The contract step (next migration) swaps the keys.
 * Nothing changes in behaviour: the old keys still hold.
 *
 * Frozen in time: never import application code here.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table points add column if not exists device_id integer`.execute(db);
  await sql`
    update points p set device_id = coalesce(
      (select s.device_id from series s where s.id = p.series_id), 0)
    where p.device_id is null`.execute(db);

  await sql`
    create table if not exists certificate_fingerprints (
      fingerprint text primary key check (fingerprint ~ '^[0-9a-f]{64}$'),
      device_id integer not null
    )`.execute(db);
  await sql`
    insert into certificate_fingerprints (fingerprint, device_id)
    select fingerprint, device_id from device_certificates
    on conflict do nothing`.execute(db);

  await sql`create unique index if not exists series_id_device_key on series (id, device_id)`.execute(
    db,
  );
  await sql`
    create unique index if not exists device_certificates_fingerprint_device_key
    on device_certificates (fingerprint, device_id)`.execute(db);
  await sql`
    create unique index if not exists pending_rotations_id_device_key
    on pending_rotations (id, device_id)`.execute(db);
  await sql`
    create index if not exists pending_rotations_completion_hash_idx
    on pending_rotations (completion_hash)`.execute(db);
  await sql`
    create index if not exists rotation_challenges_challenge_hash_idx
    on rotation_challenges (challenge_hash)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index if exists rotation_challenges_challenge_hash_idx`.execute(db);
  await sql`drop index if exists pending_rotations_completion_hash_idx`.execute(db);
  await sql`drop index if exists pending_rotations_id_device_key`.execute(db);
  await sql`drop index if exists device_certificates_fingerprint_device_key`.execute(db);
  await sql`drop index if exists series_id_device_key`.execute(db);
  await sql`drop table if exists certificate_fingerprints`.execute(db);
  await sql`alter table points drop column if exists device_id`.execute(db);
}

import { sql, type Kysely } from 'kysely';

/**
 * Contract step of making the schema distributable by device (issue 15). Every
 * unique key of a table that grows with the fleet now includes `device_id`,
 * as Citus requires of a table distributed by it. The keys keep their leading
 * columns, so every lookup and every ON CONFLICT keeps its index and its
 * meaning (a series belongs to one device, so (series_id, ts, device_id) is
 * as unique as (series_id, ts) was):
 *
 * - points: (series_id, ts) -> (series_id, ts, device_id); device_id NOT NULL.
 * - series: id -> (id, device_id); (device_id, name) stays.
 * - device_certificates: fingerprint -> (fingerprint, device_id); a fingerprint
 *   stays unique across devices through `certificate_fingerprints` (expand step).
 * - pending_rotations: id -> (id, device_id); completion_hash loses its global
 *   unique constraint (an index stays): it is the hash of 32 random bytes.
 * - rotation_challenges: challenge_hash likewise; it is always looked up with
 *   its device.
 *
 * Points that a node of the previous version wrote since the expand step (no
 * device_id) are filled first; a point of no series (unreachable by any read;
 * only written by hand) gets device 0 and is kept.
 *
 * Frozen in time: never import application code here.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    update points p set device_id = coalesce(
      (select s.device_id from series s where s.id = p.series_id), 0)
    where p.device_id is null`.execute(db);
  await sql`alter table points alter column device_id set not null`.execute(db);
  await sql`alter table points drop constraint points_pkey`.execute(db);
  await sql`alter table points add constraint points_pkey primary key (series_id, ts, device_id)`.execute(
    db,
  );

  await sql`alter table series drop constraint series_pkey`.execute(db);
  await sql`alter table series add constraint series_pkey primary key using index series_id_device_key`.execute(
    db,
  );

  await sql`alter table device_certificates drop constraint device_certificates_pkey`.execute(db);
  await sql`
    alter table device_certificates add constraint device_certificates_pkey
    primary key using index device_certificates_fingerprint_device_key`.execute(db);

  await sql`alter table pending_rotations drop constraint pending_rotations_pkey`.execute(db);
  await sql`
    alter table pending_rotations add constraint pending_rotations_pkey
    primary key using index pending_rotations_id_device_key`.execute(db);
  await sql`alter table pending_rotations drop constraint pending_rotations_completion_hash_key`.execute(
    db,
  );
  await sql`alter table rotation_challenges drop constraint rotation_challenges_challenge_hash_key`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table rotation_challenges add constraint rotation_challenges_challenge_hash_key unique (challenge_hash)`.execute(
    db,
  );
  await sql`alter table pending_rotations add constraint pending_rotations_completion_hash_key unique (completion_hash)`.execute(
    db,
  );
  await sql`alter table pending_rotations drop constraint pending_rotations_pkey`.execute(db);
  await sql`alter table pending_rotations add constraint pending_rotations_pkey primary key (id)`.execute(
    db,
  );
  await sql`create unique index if not exists pending_rotations_id_device_key on pending_rotations (id, device_id)`.execute(
    db,
  );
  await sql`alter table device_certificates drop constraint device_certificates_pkey`.execute(db);
  await sql`alter table device_certificates add constraint device_certificates_pkey primary key (fingerprint)`.execute(
    db,
  );
  await sql`create unique index if not exists device_certificates_fingerprint_device_key on device_certificates (fingerprint, device_id)`.execute(
    db,
  );
  await sql`alter table series drop constraint series_pkey`.execute(db);
  await sql`alter table series add constraint series_pkey primary key (id)`.execute(db);
  await sql`create unique index if not exists series_id_device_key on series (id, device_id)`.execute(
    db,
  );
  await sql`alter table points drop constraint points_pkey`.execute(db);
  await sql`alter table points add constraint points_pkey primary key (series_id, ts)`.execute(db);
  await sql`alter table points alter column device_id drop not null`.execute(db);
}

import { sql, type Kysely } from 'kysely';

/**
 * Uploads now create the partitions they need inside their own transaction,
 * so that a refused upload (rolled back) leaves none behind. Two uploads that
 * need the same new month then overlap: the second waits for the first to
 * commit, and must then see the partition the first created. An advisory lock
 * does not refresh the catalog snapshot of a transaction that already ran a
 * statement, so after waiting for it `to_regclass` still missed the new table
 * and CREATE TABLE failed with "relation already exists". A relation lock on
 * `points` does refresh it: creators now take SHARE UPDATE EXCLUSIVE on
 * `points` (the lock ATTACH PARTITION takes anyway; it lets inserts and reads
 * go on, and serialises creators until their transaction ends) before they
 * look again.
 *
 * Frozen in time: never import application code here.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create or replace function points_ensure_partition(month date) returns boolean
    language plpgsql as $$
    declare
      first_day date := date_trunc('month', month)::date;
      partition_name text := 'points_' || to_char(first_day, 'YYYY_MM');
    begin
      if to_regclass(partition_name) is not null then
        return false;
      end if;
      lock table points in share update exclusive mode;
      if to_regclass(partition_name) is not null then
        return false;
      end if;
      execute format('create table %I (like points including defaults including constraints)', partition_name);
      execute format(
        'alter table points attach partition %I for values from (%L) to (%L)',
        partition_name,
        first_day::timestamp at time zone 'UTC',
        (first_day + interval '1 month')::timestamp at time zone 'UTC');
      return true;
    end
    $$`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    create or replace function points_ensure_partition(month date) returns boolean
    language plpgsql as $$
    declare
      first_day date := date_trunc('month', month)::date;
      partition_name text := 'points_' || to_char(first_day, 'YYYY_MM');
    begin
      if to_regclass(partition_name) is not null then
        return false;
      end if;
      perform pg_advisory_xact_lock(hashtext('points_ensure_partition'));
      if to_regclass(partition_name) is not null then
        return false;
      end if;
      execute format('create table %I (like points including defaults including constraints)', partition_name);
      execute format(
        'alter table points attach partition %I for values from (%L) to (%L)',
        partition_name,
        first_day::timestamp at time zone 'UTC',
        (first_day + interval '1 month')::timestamp at time zone 'UTC');
      return true;
    end
    $$`.execute(db);
}

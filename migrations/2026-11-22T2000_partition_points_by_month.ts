import { sql, type Kysely, type RawBuilder } from 'kysely';

/**
 * Points become a table partitioned by month of `ts` (UTC), so that an insert
 * only touches the B-tree of its month and a time-range query only reads the
 * months it covers, whatever the total size. The primary key stays
 * (series_id, ts); series names stay in `series`.
 *
 * There is no DEFAULT partition: rows in it would make every later CREATE of a
 * partition scan and lock it. Instead `points_ensure_partition(month)` creates
 * a month on demand (the service calls it ahead of time and for any month an
 * upload reaches). It creates the table, then ATTACHes it, which takes only a
 * SHARE UPDATE EXCLUSIVE lock on `points`: concurrent uploads keep inserting
 * while a month is added. An advisory lock serialises two creators of the
 * same month.
 *
 * The existing table is converted by create-new, move, swap. Frozen in time:
 * never import application code here.
 */
/** The same columns and key before and after; only the partitioning differs. */
async function createPointsTable(db: Kysely<unknown>, partitioning: RawBuilder<unknown>) {
  await sql`
    create table points (
      series_id integer not null,
      ts timestamptz not null,
      value double precision not null,
      constraint points_pkey primary key (series_id, ts)
    ) ${partitioning}`.execute(db);
}

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table points rename to points_unpartitioned`.execute(db);
  await sql`alter table points_unpartitioned rename constraint points_pkey to points_unpartitioned_pkey`.execute(
    db,
  );
  await createPointsTable(db, sql`partition by range (ts)`);
  await sql`
    create function points_ensure_partition(month date) returns boolean
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
  await sql`
    select points_ensure_partition(month::date)
    from (
      select distinct date_trunc('month', ts at time zone 'UTC') as month from points_unpartitioned
      union
      select date_trunc('month', now() at time zone 'UTC') + n * interval '1 month'
      from generate_series(0, 2) as n
    ) as months`.execute(db);
  await sql`insert into points (series_id, ts, value) select series_id, ts, value from points_unpartitioned`.execute(
    db,
  );
  await sql`drop table points_unpartitioned`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table points rename to points_partitioned`.execute(db);
  await sql`alter table points_partitioned rename constraint points_pkey to points_partitioned_pkey`.execute(
    db,
  );
  await createPointsTable(db, sql``);
  await sql`insert into points (series_id, ts, value) select series_id, ts, value from points_partitioned`.execute(
    db,
  );
  await sql`drop table points_partitioned`.execute(db);
  await sql`drop function points_ensure_partition(date)`.execute(db);
}

import { sql, type Kysely } from 'kysely';

/**
 * Device pages with a large fleet (issue 14, bench item 8): every page is a
 * keyset range `id > cursor order by id limit 51`. An identity's pages read
 * `(identity_id, id)` in order, so a page is 51 index entries whatever the
 * identity's share of the fleet (with `identity_id` alone, a middling identity
 * was read whole and sorted, or the primary key filtered); it also serves every
 * lookup by `identity_id`, so it replaces the old index. The revoked devices'
 * pages get a partial index, so a fleet with few of them is not scanned to
 * find a page. Frozen in time: never import application code here.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create index if not exists devices_identity_id_idx on devices (identity_id, id)`.execute(
    db,
  );
  await sql`drop index if exists devices_identity_idx`.execute(db);
  await sql`create index if not exists devices_revoked_id_idx on devices (id) where revoked_at is not null`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index if exists devices_revoked_id_idx`.execute(db);
  await sql`create index if not exists devices_identity_idx on devices (identity_id)`.execute(db);
  await sql`drop index if exists devices_identity_id_idx`.execute(db);
}

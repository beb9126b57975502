import { sql, type Kysely } from 'kysely';

/**
 * Behind nginx (issue 11): the key of the digest nginx forwards with its
 * verdict on a device's chain (X-Client-Trust-Anchors), an HMAC over the
 * registered CAs. A client cannot forge that verdict even through an nginx
 * whose configuration does not overwrite the header (an old or hand-written
 * one), since it does not know the key. One row, created on first use.
 * Frozen in time: never import application code here.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('proxy_trust_key')
    .ifNotExists()
    .addColumn('id', 'integer', (c) =>
      c
        .primaryKey()
        .defaultTo(1)
        .check(sql`id = 1`),
    )
    .addColumn('key', 'bytea', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('proxy_trust_key').ifExists().execute();
}

import { sql, type Kysely } from 'kysely';

/**
 * The last state a device published on MQTT (`devices/out/<identity>/<device>/state`,
 * issue 13, seed 000): one row per device, replaced by each newer state.
 * Frozen in time: never import application code here.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('device_states')
    .ifNotExists()
    .addColumn('device_id', 'integer', (c) =>
      c.primaryKey().references('devices.id').onDelete('cascade'),
    )
    .addColumn('status', 'text', (c) => c.notNull())
    // The whole JSON object as published (status included).
    .addColumn('state', 'jsonb', (c) => c.notNull())
    .addColumn('reported_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('device_states').ifExists().execute();
}

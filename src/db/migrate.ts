import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileMigrationProvider, Migrator, sql, type Kysely, type MigrationResult } from 'kysely';
import { distributeForCitus } from './distribute.js';

/** Compiled migrations sit in dist/migrations, two levels up from dist/src/db. */
const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations', import.meta.url));

export function createMigrator(db: Kysely<unknown>): Migrator {
  return new Migrator({
    db,
    provider: new FileMigrationProvider({ fs, path, migrationFolder: MIGRATIONS_DIR }),
  });
}

/**
 * Applies every pending migration, then, on a Citus cluster, distributes the
 * tables not distributed yet; throws with the failing migration's name.
 */
export async function migrateToLatest(db: Kysely<unknown>): Promise<MigrationResult[]> {
  await ensureMigrationTables(db);
  const { error, results = [] } = await createMigrator(db).migrateToLatest();
  if (error) {
    const failed = results.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`migration ${failed} failed: ${String((error as Error).message ?? error)}`);
  }
  await distributeForCitus(db);
  return results;
}

/**
 * Several nodes may start together on an empty database, each migrating.
 * Kysely runs the migrations under its own advisory lock, but creates its
 * bookkeeping tables before taking it, and two concurrent `create table if
 * not exists` can still fail on PostgreSQL. They are created here first,
 * under a transaction-scoped advisory lock, with kysely's own layout.
 */
async function ensureMigrationTables(db: Kysely<unknown>): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext('fleetgate.migrations'))`.execute(trx);
    await sql`
      create table if not exists kysely_migration (
        name varchar(255) not null primary key,
        timestamp varchar(255) not null
      )`.execute(trx);
    await sql`
      create table if not exists kysely_migration_lock (
        id varchar(255) not null primary key,
        is_locked integer not null default 0
      )`.execute(trx);
    await sql`
      insert into kysely_migration_lock (id, is_locked) values ('migration_lock', 0)
      on conflict (id) do nothing`.execute(trx);
  });
}

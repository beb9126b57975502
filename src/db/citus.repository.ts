import { sql, type Kysely } from 'kysely';

/** Whether this database has the Citus extension (a distributed PostgreSQL). */
export async function hasCitus(db: Kysely<unknown>): Promise<boolean> {
  const { rows } = await sql<{ present: boolean }>`
    select exists (select 1 from pg_extension where extname = 'citus') as present`.execute(db);
  return rows[0]?.present === true;
}

/** Tables Citus already knows as distributed or reference tables. */
export async function listCitusTables(db: Kysely<unknown>): Promise<Set<string>> {
  const { rows } = await sql<{ name: string }>`
    select logicalrelid::regclass::text as name from pg_dist_partition`.execute(db);
  return new Set(rows.map((r) => r.name));
}

/** Which of these tables exist in the public schema. */
export async function existingTables(
  db: Kysely<unknown>,
  names: readonly string[],
): Promise<Set<string>> {
  const { rows } = await sql<{ name: string }>`
    select c.relname as name from pg_class c
    where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
      and c.relname = any(${names}::text[])`.execute(db);
  return new Set(rows.map((r) => r.name));
}

export interface ForeignKey {
  table: string;
  name: string;
  definition: string;
}

/** The foreign keys of these tables, as `pg_get_constraintdef` writes them. */
export async function listForeignKeys(
  db: Kysely<unknown>,
  tables: readonly string[],
): Promise<ForeignKey[]> {
  const { rows } = await sql<ForeignKey>`
    select c.conrelid::regclass::text as "table", c.conname as name,
           pg_get_constraintdef(c.oid) as definition
    from pg_constraint c
    where c.contype = 'f' and c.connamespace = 'public'::regnamespace
      and c.conrelid::regclass::text = any(${tables}::text[])
    order by 1, 2`.execute(db);
  return rows;
}

export async function dropForeignKey(db: Kysely<unknown>, fk: ForeignKey): Promise<void> {
  await sql`alter table ${sql.table(fk.table)} drop constraint ${sql.id(fk.name)}`.execute(db);
}

export async function addForeignKey(db: Kysely<unknown>, fk: ForeignKey): Promise<void> {
  await sql`alter table ${sql.table(fk.table)} add constraint ${sql.id(fk.name)} ${sql.raw(
    fk.definition,
  )}`.execute(db);
}

/**
 * Creating several distributed tables in one transaction needs the
 * sequential mode (one connection per worker), or Citus refuses the next DDL.
 */
export async function useSequentialShardModifications(db: Kysely<unknown>): Promise<void> {
  await sql`set local citus.multi_shard_modify_mode to 'sequential'`.execute(db);
}

export async function createReferenceTable(db: Kysely<unknown>, table: string): Promise<void> {
  await sql`select create_reference_table(${table})`.execute(db);
}

export async function createDistributedTable(
  db: Kysely<unknown>,
  table: string,
  column: string,
  colocateWith: string,
): Promise<void> {
  await sql`select create_distributed_table(${table}, ${column}, colocate_with => ${colocateWith})`.execute(
    db,
  );
}

/** The lock `fleetgate migrate` holds (see migrate.ts), until the transaction ends. */
export async function lockMigrations(db: Kysely<unknown>): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtext('fleetgate.migrations'))`.execute(db);
}

/**
 * Multi-shard statements over one connection per worker, in every session of
 * this database (and in this one, which may be a pooled connection opened
 * before). Otherwise a transaction that read many shards in parallel (a
 * certificate looked up by fingerprint) may not then write a reference table
 * (a PSK's use count): Citus refuses with "cannot modify table ... because
 * there was a parallel operation on a distributed table".
 */
export async function useSequentialShardAccessByDefault(db: Kysely<unknown>): Promise<void> {
  const { rows } = await sql<{ name: string }>`select current_database() as name`.execute(db);
  await sql`alter database ${sql.id(rows[0]!.name)} set citus.multi_shard_modify_mode to 'sequential'`.execute(
    db,
  );
  await sql`set citus.multi_shard_modify_mode to 'sequential'`.execute(db);
}

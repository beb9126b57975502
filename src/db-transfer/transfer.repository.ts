import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

type Db = Kysely<Database>;

/** Kysely's own bookkeeping: recreated by migrating the target, never copied. */
const MIGRATOR_TABLES = ['kysely_migration', 'kysely_migration_lock'];

/**
 * fleetgate's tables in the public schema, parents before the tables whose
 * foreign keys point at them. A partitioned table counts once (its month
 * partitions are read and written through it).
 */
export async function listDataTables(db: Db): Promise<string[]> {
  const tables = await sql<{ name: string }>`
    select c.relname as name from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relispartition
    order by c.relname`.execute(db);
  const references = await sql<{ child: string; parent: string }>`
    select distinct c.relname as child, p.relname as parent from pg_constraint k
    join pg_class c on c.oid = k.conrelid
    join pg_class p on p.oid = k.confrelid
    join pg_namespace n on n.oid = c.relnamespace
    where k.contype = 'f' and n.nspname = 'public' and k.conrelid <> k.confrelid`.execute(db);
  const names = tables.rows.map((r) => r.name).filter((n) => !MIGRATOR_TABLES.includes(n));
  const ordered: string[] = [];
  const visit = (name: string, path: string[]) => {
    if (ordered.includes(name) || path.includes(name)) return;
    for (const r of references.rows) if (r.child === name) visit(r.parent, [...path, name]);
    ordered.push(name);
  };
  for (const name of names) visit(name, []);
  return ordered.filter((n) => names.includes(n));
}

/** Names of the applied migrations, in order. */
export async function appliedMigrations(db: Db): Promise<string[]> {
  const result = await sql<{ name: string }>`
    select name from kysely_migration order by name`.execute(db);
  return result.rows.map((r) => r.name);
}

export async function countRows(db: Db, table: string): Promise<number> {
  const result = await sql<{ n: string }>`
    select count(*)::text as n from ${sql.id(table)}`.execute(db);
  return Number(result.rows[0]?.n ?? 0);
}

/** Every row of a table as JSON text, a batch at a time, through a cursor (in a transaction). */
export async function* readRows(trx: Db, table: string, batch: number): AsyncGenerator<string[]> {
  await sql`declare fleetgate_transfer no scroll cursor for
    select row_to_json(t)::text as r from ${sql.id(table)} t`.execute(trx);
  try {
    for (;;) {
      const rows = await sql<{ r: string }>`
        fetch forward ${sql.raw(String(batch))} from fleetgate_transfer`.execute(trx);
      if (rows.rows.length === 0) return;
      yield rows.rows.map((row) => row.r);
    }
  } finally {
    await sql`close fleetgate_transfer`.execute(trx);
  }
}

/** Inserts rows given as JSON objects keyed by column, keeping ids as they were. */
export async function insertRows(trx: Db, table: string, rows: string[]): Promise<void> {
  if (rows.length === 0) return;
  await sql`
    insert into ${sql.id(table)} overriding system value
    select * from json_populate_recordset(null::${sql.id(table)}, ${`[${rows.join(',')}]`}::json)`.execute(
    trx,
  );
}

/** After copying ids, moves every serial/identity sequence of these tables past the highest id. */
export async function advanceSequences(trx: Db, tables: string[]): Promise<void> {
  const columns = await sql<{ table_name: string; column_name: string; seq: string }>`
    select table_name, column_name,
           pg_get_serial_sequence(quote_ident(table_name), column_name) as seq
    from information_schema.columns
    where table_schema = 'public' and table_name = any(${tables}::text[])`.execute(trx);
  for (const c of columns.rows) {
    if (!c.seq) continue;
    await sql`
      select setval(${c.seq}::regclass,
        coalesce((select max(${sql.id(c.column_name)}) from ${sql.id(c.table_name)}), 0) + 1, false)`.execute(
      trx,
    );
  }
}

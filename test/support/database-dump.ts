import crypto from 'node:crypto';
import path from 'node:path';
import { expect } from 'chai';
import pg from 'pg';
import type { TestDatabase } from './test-database.js';

/** One cell of a dump: where it is and its value cast to text. */
export interface DumpedCell {
  table: string;
  column: string;
  text: string;
}

type Query = (text: string) => Promise<Array<Record<string, unknown>>>;

/**
 * Every column of every table of the test database, each value cast to text
 * (bytea as \x hex, jsonb as JSON). On the embedded database the server must be
 * stopped first: the test opens its data directory itself.
 */
export async function dumpAllTables(db: TestDatabase): Promise<DumpedCell[]> {
  if (db.url) {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      return await dumpWith(async (text) => (await client.query(text)).rows);
    } finally {
      await client.end();
    }
  }
  const { PGlite } = await import('@electric-sql/pglite');
  const pglite = await PGlite.create(path.join(db.env.FLEETGATE_DATA_DIR!, 'pgdata'));
  try {
    return await dumpWith(async (text) => (await pglite.query<Record<string, unknown>>(text)).rows);
  } finally {
    await pglite.close();
  }
}

async function dumpWith(query: Query): Promise<DumpedCell[]> {
  const columns = await query(
    `select c.table_schema, c.table_name, c.column_name
     from information_schema.columns c
     join information_schema.tables t
       on t.table_schema = c.table_schema and t.table_name = c.table_name
     where c.table_schema not in ('pg_catalog', 'information_schema')
       and t.table_type = 'BASE TABLE'
     order by c.table_schema, c.table_name, c.ordinal_position`,
  );
  expect(columns.length, 'the dump found no tables at all').to.be.greaterThan(0);
  const byTable = new Map<string, string[]>();
  for (const row of columns) {
    const table = `${ident(String(row.table_schema))}.${ident(String(row.table_name))}`;
    byTable.set(table, [...(byTable.get(table) ?? []), String(row.column_name)]);
  }
  const cells: DumpedCell[] = [];
  for (const [table, names] of byTable) {
    const select = names.map((name, i) => `${ident(name)}::text as c${i}`).join(', ');
    for (const row of await query(`select ${select} from ${table}`)) {
      names.forEach((column, i) => {
        const value = row[`c${i}`];
        if (value !== null && value !== undefined)
          cells.push({ table, column, text: String(value) });
      });
    }
  }
  return cells;
}

function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * The forms a leaked secret could take in a text dump: itself, its random
 * part, the hex of either, and the random bytes in hex or base64.
 */
export function secretForms(secret: string, prefix: string): string[] {
  const random = secret.startsWith(prefix) ? secret.slice(prefix.length) : secret;
  const bytes = Buffer.from(random, 'base64url');
  return [
    secret,
    random,
    Buffer.from(secret, 'utf8').toString('hex'),
    Buffer.from(random, 'utf8').toString('hex'),
    bytes.toString('hex'),
    bytes.toString('base64'),
  ];
}

/** Fails naming the table and column where any form of the secret is found. */
export function expectSecretNowhere(cells: DumpedCell[], secret: string, prefix: string): void {
  const forms = secretForms(secret, prefix).map((form) => form.toLowerCase());
  for (const cell of cells) {
    const text = cell.text.toLowerCase();
    for (const form of forms)
      expect(
        text.includes(form),
        `the secret is readable in ${cell.table}.${cell.column}`,
      ).to.equal(false);
  }
}

/** The lowercase hex SHA-256 of a secret's UTF-8 bytes, as PostgreSQL shows a bytea: \x... */
export function sha256Bytea(secret: string): string {
  return `\\x${crypto.createHash('sha256').update(secret, 'utf8').digest('hex')}`;
}

import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { migrateToLatest } from '../db/migrate.js';
import {
  ensurePointsPartition,
  listPointsPartitionMonths,
} from '../ingest/partitions.repository.js';
import {
  advanceSequences,
  appliedMigrations,
  countRows,
  insertRows,
  listDataTables,
  readRows,
} from './transfer.repository.js';

/**
 * `fleetgate db export` / `db import`: the whole database as JSON lines, to
 * move from the embedded database to PostgreSQL (or between any two).
 *
 *   {"format":"fleetgate-db-export","version":1,"migrations":[...],"tables":[...],"pointPartitions":[ms...],"rows":{...}}
 *   ["table","identities"]
 *   {"id":1,"name":"plant-a",...}        one line per row (row_to_json of the row)
 *   ...
 *   ["end",{"identities":1,...}]           rows per table, checked by import
 *
 * Marker lines are arrays, rows are objects, so no column name can be taken
 * for a marker.
 */
export const EXPORT_FORMAT = 'fleetgate-db-export';
export const EXPORT_VERSION = 1;
const BATCH = 2000;

export interface ExportHeader {
  format: string;
  version: number;
  exportedAt: string;
  migrations: string[];
  tables: string[];
  pointPartitions: number[];
  /** Rows per table, as in the end line (for the importer's progress). */
  rows?: Record<string, number>;
}

export interface TransferProgress {
  /** Called with the total rows first, then after each batch with the rows done so far. */
  start?(total: number): void;
  update?(done: number): void;
  stop?(): void;
}

export type WriteLine = (text: string) => Promise<void>;

/** Writes the whole database, a consistent snapshot (one repeatable-read transaction). */
export async function exportDatabase(
  db: Kysely<Database>,
  write: WriteLine,
  progress: TransferProgress = {},
): Promise<Record<string, number>> {
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (trx) => {
      const tables = await listDataTables(trx);
      const counts: Record<string, number> = {};
      let total = 0;
      for (const table of tables) total += counts[table] = await countRows(trx, table);
      const header: ExportHeader = {
        format: EXPORT_FORMAT,
        version: EXPORT_VERSION,
        exportedAt: new Date().toISOString(),
        migrations: await appliedMigrations(trx),
        tables,
        pointPartitions: tables.includes('points') ? await listPointsPartitionMonths(trx) : [],
        rows: counts,
      };
      progress.start?.(total);
      await write(`${JSON.stringify(header)}\n`);
      let done = 0;
      for (const table of tables) {
        await write(`${JSON.stringify(['table', table])}\n`);
        for await (const rows of readRows(trx, table, BATCH)) {
          await write(`${rows.join('\n')}\n`);
          done += rows.length;
          progress.update?.(done);
        }
      }
      await write(`${JSON.stringify(['end', counts])}\n`);
      progress.stop?.();
      return counts;
    });
}

export class ImportRefused extends Error {}

/**
 * Reads an export into an empty database of the same schema version, in one
 * transaction: a refused or truncated export leaves the target as it was.
 */
export async function importDatabase(
  db: Kysely<Database>,
  input: Readable,
  progress: TransferProgress = {},
): Promise<Record<string, number>> {
  await migrateToLatest(db as Kysely<unknown>);
  const lines = createInterface({ input, crlfDelay: Infinity })[Symbol.asyncIterator]();
  const first = await lines.next();
  if (first.done) throw new ImportRefused('the export is empty');
  const header = parseHeader(first.value);
  const applied = await appliedMigrations(db);
  if (JSON.stringify(applied) !== JSON.stringify(header.migrations)) {
    throw new ImportRefused(
      `the export was made at migration ${header.migrations.at(-1) ?? '(none)'}, this database is at ` +
        `${applied.at(-1) ?? '(none)'}: export and import with the same fleetgate version`,
    );
  }
  return db.transaction().execute(async (trx) => {
    const tables = await listDataTables(trx);
    if (JSON.stringify([...tables].sort()) !== JSON.stringify([...header.tables].sort()))
      throw new ImportRefused(
        `the export has tables ${header.tables.join(', ')}; expected ${tables.join(', ')}`,
      );
    for (const table of tables) {
      if ((await countRows(trx, table)) > 0)
        throw new ImportRefused(
          `the target database is not empty (table ${table} has rows): import into a new database, before its first fleetgate serve`,
        );
    }
    for (const month of header.pointPartitions) await ensurePointsPartition(trx, month);
    progress.start?.(Object.values(header.rows ?? {}).reduce((a, b) => a + b, 0));

    const imported: Record<string, number> = {};
    let table: string | null = null;
    let batch: string[] = [];
    let done = 0;
    const flush = async () => {
      if (table === null || batch.length === 0) return;
      await insertRows(trx, table, batch);
      imported[table] = (imported[table] ?? 0) + batch.length;
      done += batch.length;
      progress.update?.(done);
      batch = [];
    };
    let end: Record<string, number> | null = null;
    for (let next = await lines.next(); !next.done; next = await lines.next()) {
      const line = next.value;
      if (line === '') continue;
      if (end) throw new ImportRefused('the export has lines after its end');
      if (line.startsWith('{')) {
        if (table === null) throw new ImportRefused('a row before any ["table", name] line');
        batch.push(line);
        if (batch.length >= BATCH) await flush();
        continue;
      }
      const marker = parseMarker(line);
      await flush();
      if (marker[0] === 'table') {
        if (!tables.includes(marker[1])) throw new ImportRefused(`unknown table ${marker[1]}`);
        table = marker[1];
      } else {
        end = marker[1];
      }
    }
    if (!end)
      throw new ImportRefused('the export is incomplete (no end line): nothing was imported');
    for (const name of tables) {
      if ((imported[name] ?? 0) !== (end[name] ?? 0))
        throw new ImportRefused(
          `table ${name}: the export says ${end[name] ?? 0} rows, it held ${imported[name] ?? 0}`,
        );
    }
    await advanceSequences(trx, tables);
    progress.stop?.();
    return imported;
  });
}

function parseHeader(line: string): ExportHeader {
  let header: Partial<ExportHeader>;
  try {
    header = JSON.parse(line) as Partial<ExportHeader>;
  } catch {
    throw new ImportRefused('this is not a fleetgate db export (the first line is not JSON)');
  }
  if (header.format !== EXPORT_FORMAT) throw new ImportRefused('this is not a fleetgate db export');
  if (header.version !== EXPORT_VERSION)
    throw new ImportRefused(`export format version ${header.version} is not supported`);
  if (
    !Array.isArray(header.migrations) ||
    !Array.isArray(header.tables) ||
    !Array.isArray(header.pointPartitions)
  )
    throw new ImportRefused('the export header is incomplete');
  return header as ExportHeader;
}

function parseMarker(line: string): ['table', string] | ['end', Record<string, number>] {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new ImportRefused('a line of the export is not JSON');
  }
  if (Array.isArray(value) && value[0] === 'table' && typeof value[1] === 'string')
    return ['table', value[1]];
  if (Array.isArray(value) && value[0] === 'end' && value[1] && typeof value[1] === 'object')
    return ['end', value[1] as Record<string, number>];
  throw new ImportRefused('a line of the export is neither a row nor a marker');
}

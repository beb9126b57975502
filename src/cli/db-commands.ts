import type { Readable, Writable } from 'node:stream';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { openDatabase } from '../db/connect.js';
import type { Database } from '../db/schema.js';
import { exportDatabase, importDatabase } from '../db-transfer/transfer.service.js';
import { writeOut } from './output.js';
import { progressBar } from './progress.js';

/** `fleetgate db export`: the whole database as JSON lines on stdout. */
export async function dbExport(db: Kysely<Database>, _args: unknown, out: Writable): Promise<void> {
  const progress = progressBar(out, false, 'db export', 'rows');
  let counts: Record<string, number>;
  try {
    counts = await exportDatabase(db, (text) => writeOut(out, text), progress);
  } finally {
    progress.stop();
  }
  const rows = Object.values(counts).reduce((a, b) => a + b, 0);
  process.stderr.write(
    `fleetgate: exported ${rows} rows of ${Object.keys(counts).length} tables\n`,
  );
}

/** `fleetgate db import`: stdin into the PostgreSQL database of DATABASE_URL. */
export async function runDbImport(config: Config, log: Logger, input: Readable): Promise<void> {
  if (!config.databaseUrl)
    throw new Error(
      'db import writes into PostgreSQL: set DATABASE_URL to the new, empty database ' +
        '(and run db export without it, on the embedded database)',
    );
  const database = await openDatabase(config, log);
  try {
    const progress = progressBar(process.stdout, false, 'db import', 'rows');
    let counts: Record<string, number>;
    try {
      counts = await importDatabase(database.db, input, progress);
    } finally {
      progress.stop();
    }
    const rows = Object.values(counts).reduce((a, b) => a + b, 0);
    process.stderr.write(
      `fleetgate: imported ${rows} rows into ${database.location}; start fleetgate serve with this DATABASE_URL\n`,
    );
  } finally {
    await database.close();
  }
}

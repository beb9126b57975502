import fs from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { PgliteSingleConnectionPool } from './pglite-pool.js';
import type { Database } from './schema.js';

export type DatabaseKind = 'postgres' | 'embedded';

export interface DatabaseHandle {
  readonly db: Kysely<Database>;
  readonly kind: DatabaseKind;
  /** Where the data lives, for log lines: a redacted URL or a directory. */
  readonly location: string;
  /** The pool behind `db` on a real Postgres: the COPY write path needs raw clients. */
  readonly pool?: pg.Pool;
  /**
   * A one-connection database for partition DDL, so that creating a partition
   * never waits for a pool that uploads holding a connection have drained.
   * The same as `db` on the embedded database.
   */
  readonly ddl: Kysely<Database>;
  close(): Promise<void>;
}

export async function openDatabase(config: Config, log: Logger): Promise<DatabaseHandle> {
  return config.databaseUrl
    ? openPostgres(config.databaseUrl, config.dbPoolSize, log)
    : openEmbedded(config.dataDir);
}

function openPostgres(url: string, poolSize: number, log: Logger): DatabaseHandle {
  const pool = new pg.Pool({ connectionString: url, max: poolSize });
  // An idle client that loses its server (restart, network) emits 'error' on
  // the pool; unhandled, that would crash the process. The pool drops the
  // client and the next checkout opens a fresh connection.
  pool.on('error', (err) => log.warn({ err: err.message }, 'idle database connection lost'));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const ddlPool = new pg.Pool({ connectionString: url, max: 1 });
  ddlPool.on('error', (err) => log.warn({ err: err.message }, 'idle database connection lost'));
  const ddl = new Kysely<Database>({ dialect: new PostgresDialect({ pool: ddlPool }) });
  return {
    db,
    kind: 'postgres',
    location: redactUrl(url),
    pool,
    ddl,
    close: async () => {
      await ddl.destroy();
      await db.destroy();
    },
  };
}

async function openEmbedded(dataDir: string): Promise<DatabaseHandle> {
  const dir = path.join(dataDir, 'pgdata');
  fs.mkdirSync(dir, { recursive: true });
  const pglite = await PGlite.create(dir);
  const db = new Kysely<Database>({
    dialect: new PostgresDialect({ pool: new PgliteSingleConnectionPool(pglite) }),
  });
  return { db, kind: 'embedded', location: dir, ddl: db, close: () => db.destroy() };
}

export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable DATABASE_URL)';
  }
}

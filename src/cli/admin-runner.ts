import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { acquireDataDirLock } from '../control/data-dir-lock.js';
import { runThroughControlSocket } from '../control/control-client.js';
import { liveRunNote } from '../control/run-file.js';
import type { AdminArgs } from './admin-commands.js';

/**
 * The commands, the database and the migrations are loaded only where this
 * process runs the command itself: beside a server on the embedded database it
 * only sends the command through the control socket, and the server checks it.
 */
async function commandNamed(command: string) {
  const { adminCommands } = await import('./admin-commands.js');
  const run = adminCommands[command];
  if (!run) throw new Error(`unknown command ${command}`);
  return run;
}

/**
 * Runs an admin command against whichever database the configuration names.
 * With DATABASE_URL it connects directly (Postgres takes many clients). On the
 * embedded database it either asks the running server to run it, or, if no
 * server holds the data directory, opens the database itself.
 */
/**
 * Without DATABASE_URL beside a server that runs on PostgreSQL, the command
 * would work on a separate embedded database: refuse, and say what to set.
 */
function refuseBesidePostgresServer(dataDir: string): void {
  const server = liveRunNote(dataDir);
  if (!server) return;
  throw new Error(
    `the fleetgate server running here (pid ${server.pid}) uses PostgreSQL at ${server.location}, ` +
      'but DATABASE_URL is not set in this shell; set it to the same URL ' +
      '(without it this command would use a separate, embedded database)',
  );
}

export async function runAdminCommand(
  config: Config,
  log: Logger,
  command: string,
  args: AdminArgs,
  out: Writable = process.stdout,
): Promise<void> {
  if (command === 'admin-token.reset' && config.admin.token) {
    const { tokenFromEnvironment } = await import('../admin/admin-token.service.js');
    throw tokenFromEnvironment();
  }
  if (config.databaseUrl) {
    const run = await commandNamed(command);
    const { openDatabase } = await import('../db/connect.js');
    const database = await openDatabase(config, log);
    try {
      await run(database.db, args, out);
    } finally {
      await database.close();
    }
    return;
  }
  refuseBesidePostgresServer(config.dataDir);
  const lock = acquireDataDirLock(config.dataDir, 'cli');
  if (!lock.acquired) {
    if (lock.holder.role !== 'server') {
      throw new Error(
        `data directory is in use by another fleetgate command (pid ${lock.holder.pid})`,
      );
    }
    await runThroughControlSocket(config.dataDir, command, args, out);
    return;
  }
  try {
    const run = await commandNamed(command);
    const [{ openDatabase }, { migrateToLatest }] = await Promise.all([
      import('../db/connect.js'),
      import('../db/migrate.js'),
    ]);
    if (!fs.existsSync(path.join(config.dataDir, 'pgdata')) && command !== 'migrate') {
      process.stderr.write(
        `fleetgate: no database in ${config.dataDir} yet: creating an embedded one there ` +
          '(set DATABASE_URL to use PostgreSQL, or FLEETGATE_DATA_DIR to use another directory)\n',
      );
    }
    const database = await openDatabase(config, log);
    try {
      // Nobody else manages the embedded database's schema: keep it current.
      if (command !== 'migrate') await migrateToLatest(database.db as never);
      await run(database.db, args, out);
    } finally {
      await database.close();
    }
  } finally {
    lock.release();
  }
}

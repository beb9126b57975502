import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { acquireDataDirLock } from '../control/data-dir-lock.js';
import { runThroughControlSocket } from '../control/control-socket.js';
import { openDatabase } from '../db/connect.js';
import { migrateToLatest } from '../db/migrate.js';
import { tokenFromEnvironment } from '../admin/admin-token.service.js';
import { adminCommands, type AdminArgs } from './admin-commands.js';

/**
 * Runs an admin command against whichever database the configuration names.
 * With DATABASE_URL it connects directly (Postgres takes many clients). On the
 * embedded database it either asks the running server to run it, or, if no
 * server holds the data directory, opens the database itself.
 */
export async function runAdminCommand(
  config: Config,
  log: Logger,
  command: string,
  args: AdminArgs,
): Promise<void> {
  const run = adminCommands[command];
  if (!run) throw new Error(`unknown command ${command}`);
  if (command === 'admin-token.reset' && config.admin.token) throw tokenFromEnvironment();
  const out = process.stdout;
  if (config.databaseUrl) {
    const database = await openDatabase(config, log);
    try {
      await run(database.db, args, out);
    } finally {
      await database.close();
    }
    return;
  }
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

import pino from 'pino';
import { loadConfig } from '../../src/config/config.js';
import { openDatabase, type DatabaseHandle } from '../../src/db/connect.js';
import { createTestDatabase, type TestDatabase } from './test-database.js';

/**
 * The hooks of a migration test: `before` creates an empty (not migrated) test
 * database and opens it with fleetgate's own connection, for the test to
 * migrate step by step; `after` closes and drops it.
 */
export function useUnmigratedDatabase(): { readonly db: DatabaseHandle['db'] } {
  let testDb: TestDatabase | undefined;
  let database: DatabaseHandle | undefined;
  before(async () => {
    testDb = await createTestDatabase();
    database = await openDatabase(loadConfig(testDb.env), pino({ level: 'silent' }));
  });
  after(async () => {
    await database?.close();
    await testDb?.drop();
  });
  return {
    get db() {
      if (!database) throw new Error('useUnmigratedDatabase: the database opens in a before hook');
      return database.db;
    },
  };
}

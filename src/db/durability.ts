import { sql, type Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from './schema.js';

/**
 * Startup check of the server settings an acknowledged upload depends on. Our
 * sessions force synchronous_commit on (see connect.ts); fsync and
 * full_page_writes are server-wide and can only be reported.
 */
export async function checkDurability(db: Kysely<Database>, log: Logger): Promise<void> {
  const { rows } = await sql<{ name: string; setting: string }>`
    select name, setting from pg_settings
    where name in ('synchronous_commit', 'fsync', 'full_page_writes')`.execute(db);
  const settings = Object.fromEntries(rows.map((r) => [r.name, r.setting]));
  const unsafe = rows.filter((r) => r.setting === 'off').map((r) => r.name);
  if (unsafe.length > 0) {
    log.warn(
      { settings },
      `database has ${unsafe.join(', ')} off: acknowledged uploads may be lost in a crash`,
    );
  } else {
    log.info({ settings }, 'database commits are durable');
  }
}

import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { migrateToLatest } from '../db/migrate.js';
import { createIdentity } from '../identities/identity.service.js';
import { exportSeries } from '../ingest/export.service.js';
import { parseDuration } from '../psks/duration.js';
import { issuePsk } from '../psks/psk.service.js';

/**
 * Admin actions, written once and run either in the CLI's own process or,
 * when an embedded-database server holds the data directory, inside that
 * server over its control socket. Arguments are plain JSON so both work.
 */
export type AdminArgs = Record<string, string | number | boolean | undefined>;
export type AdminCommand = (db: Kysely<Database>, args: AdminArgs, out: Writable) => Promise<void>;

export async function writeOut(out: Writable, text: string): Promise<void> {
  if (!out.write(text)) await once(out, 'drain');
}

const str = (args: AdminArgs, key: string) => String(args[key] ?? '');

export const adminCommands: Record<string, AdminCommand> = {
  async migrate(db, _args, out) {
    const results = await migrateToLatest(db as Kysely<unknown>);
    const applied = results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
    await writeOut(
      out,
      applied.length ? `applied: ${applied.join(', ')}\n` : 'schema is up to date\n',
    );
  },

  async 'identity.create'(db, args, out) {
    const identity = await createIdentity(db, str(args, 'name'));
    await writeOut(out, `created identity ${identity.name}\n`);
  },

  async 'psk.issue'(db, args, out) {
    const { secret } = await issuePsk(db, str(args, 'identity'), {
      maxDevices: args.maxDevices === undefined ? undefined : Number(args.maxDevices),
      expiresInMs: args.expiresIn === undefined ? undefined : parseDuration(str(args, 'expiresIn')),
    });
    await writeOut(out, `${secret}\n`);
  },

  async export(db, args, out) {
    for await (const chunk of exportSeries(db, str(args, 'fingerprint'), str(args, 'series'))) {
      await writeOut(out, chunk);
    }
  },
};

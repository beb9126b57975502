import type { Kysely } from 'kysely';
import {
  addForeignKey,
  createDistributedTable,
  createReferenceTable,
  dropForeignKey,
  existingTables,
  hasCitus,
  listCitusTables,
  listForeignKeys,
  lockMigrations,
  useSequentialShardAccessByDefault,
  useSequentialShardModifications,
} from './citus.repository.js';

/**
 * How each table lives on a Citus cluster (docs/scale-out.md says why).
 *
 * Reference tables (a copy on every node, written through all of them): small
 * tables that every device's rows refer to, so a join with them stays on the
 * device's shard.
 */
export const REFERENCE_TABLES = [
  'identities',
  'psks',
  'certificate_authorities',
  'ca_revoked_serials',
  // Grows with provisioning but is looked up by (identity, name) before a device exists.
  'device_names',
] as const;

/** Distributed by device (`devices.id`), all colocated: one device's rows share one shard. */
export const DEVICE_TABLES = [
  'device_certificates',
  'series',
  'points',
  'rotation_challenges',
  'pending_rotations',
  'registrations',
  'device_states',
  'device_chain_serials',
  // Events of no device have device_id 0: one shard holds them (admin actions, refused strangers).
  'audit_events',
] as const;

/**
 * Distributed by fingerprint: the one global uniqueness a device-sharded
 * schema cannot check on a device's shard.
 */
const FINGERPRINT_TABLE = 'certificate_fingerprints';

/*
 * Left on the coordinator as plain tables: throttle_buckets and
 * tls_sessions (hot, UNLOGGED, keyed by other things than a device; Redis
 * takes them off the database), tls_ticket_keys, admin_tokens and kysely's.
 */

/**
 * A reference table cannot refer to a distributed one: the device a
 * pre-registered name was enrolled as stays a plain column there.
 */
const DROPPED_ON_CITUS = [{ table: 'device_names', references: 'REFERENCES devices(' }];

/**
 * On Citus, turns the tables of a migrated schema into distributed and
 * reference tables; on any other database (plain PostgreSQL, the embedded
 * one) does nothing. Idempotent: only tables Citus does not know yet are
 * distributed, so it runs after every `migrate`. Under the migrations' advisory
 * lock, so that nodes starting together distribute once.
 */
export async function distributeForCitus(db: Kysely<unknown>): Promise<string[]> {
  if (!(await hasCitus(db))) return [];
  return db.transaction().execute(async (trx) => {
    await lockMigrations(trx);
    const known = await listCitusTables(trx);
    const all = [...REFERENCE_TABLES, 'devices', ...DEVICE_TABLES, FINGERPRINT_TABLE];
    const present = await existingTables(trx, all);
    const todo = all.filter((t) => present.has(t) && !known.has(t));
    await useSequentialShardAccessByDefault(trx);
    if (todo.length === 0) return [];
    await useSequentialShardModifications(trx);
    // Citus refuses to distribute a table tied by foreign keys to plain tables
    // (it would make them "Citus local" first), so the keys go and come back.
    const keys = await listForeignKeys(trx, [...present]);
    for (const fk of keys) await dropForeignKey(trx, fk);
    for (const table of todo) {
      if ((REFERENCE_TABLES as readonly string[]).includes(table)) {
        await createReferenceTable(trx, table);
      } else if (table === 'devices') {
        await createDistributedTable(trx, table, 'id', 'none');
      } else if (table === FINGERPRINT_TABLE) {
        await createDistributedTable(trx, table, 'fingerprint', 'none');
      } else {
        await createDistributedTable(trx, table, 'device_id', 'devices');
      }
    }
    for (const fk of keys) {
      const dropped = DROPPED_ON_CITUS.some(
        (d) => d.table === fk.table && fk.definition.includes(d.references),
      );
      if (!dropped) await addForeignKey(trx, fk);
    }
    return todo;
  });
}

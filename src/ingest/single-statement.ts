import type { Kysely } from 'kysely';
import type pg from 'pg';
import type { Database } from '../db/schema.js';
import type { PointPartitions } from './partition-months.js';
import { storeSeriesOfExistingName } from './points.repository.js';
import type { IngestBackend } from './upload-transaction.js';

/**
 * Most uploads are one small file of a series the device already has. Through
 * `begin` that costs five round trips (BEGIN, series lookup, INSERT,
 * last-seen UPDATE, COMMIT) on a pinned connection; here it is one statement
 * on any pooled connection, its own transaction, durable when it returns like
 * a COMMIT. A batch that needs more (a new series under the device lock and
 * the series cap, a partition to create) is left to `begin`, nothing written.
 */
export function withSingleStatementBatches(
  backend: IngestBackend,
  /** The pool itself on a real Postgres, for a named (prepared) statement. */
  db: Kysely<Database> | pg.Pool,
  partitions: PointPartitions,
): IngestBackend {
  return {
    method: backend.method,
    begin: (deviceId) => backend.begin(deviceId),
    async storeSingleSeries(deviceId, name, epochMs, values, months) {
      if (partitions.missing(months).length > 0) return null;
      return storeSeriesOfExistingName(db, deviceId, name, epochMs, values, new Date());
    },
  };
}

import type { Config } from '../config/config.js';
import type { DatabaseHandle } from '../db/connect.js';
import { copyIngest } from './copy-upload.js';
import type { PointPartitions } from './partition-months.js';
import { withSingleStatementBatches } from './single-statement.js';
import { unnestIngest } from './unnest-upload.js';
import type { IngestBackend } from './upload-transaction.js';

/**
 * COPY where the driver can stream it (real Postgres), batched unnest on the
 * embedded database; on both, a batch of one small series of an existing
 * name is one statement (single-statement.ts).
 */
export function createIngestBackend(
  database: DatabaseHandle,
  partitions: PointPartitions,
): IngestBackend {
  const backend = database.pool
    ? copyIngest(database.pool, partitions)
    : unnestIngest(database.db, partitions);
  return withSingleStatementBatches(backend, database.pool ?? database.db, partitions);
}

const MONTH_MS = 28 * 24 * 3600 * 1000;

/** Enough months ahead that a point within the accepted clock skew never waits for DDL. */
export function partitionMonthsAhead(config: Config): number {
  return 2 + Math.ceil(config.limits.maxClockSkewMs / MONTH_MS);
}

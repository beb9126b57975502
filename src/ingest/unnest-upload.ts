import type { ControlledTransaction, Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { MonthSet, UploadPartitions, type PointPartitions } from './partition-months.js';
import { insertPointBatch } from './points.repository.js';
import {
  deviceLock,
  type IngestBackend,
  type SeriesWriter,
  type UploadTransaction,
} from './upload-transaction.js';

/** Points per INSERT ... unnest: large enough to amortise a statement, small enough to stream. */
const BATCH_SIZE = 10_000;

/**
 * The write path for the embedded database (PGlite cannot COPY from a client
 * stream): batches of `INSERT ... SELECT FROM unnest(...)`. PGlite has a
 * single connection, so missing partitions are created inside the upload's
 * own transaction and only remembered once it commits.
 */
export function unnestIngest(db: Kysely<Database>, partitions: PointPartitions): IngestBackend {
  return {
    method: 'unnest',
    async begin(deviceId) {
      return new UnnestUpload(await db.startTransaction().execute(), partitions, deviceId);
    },
  };
}

class UnnestUpload implements UploadTransaction {
  readonly lockDevice: () => Promise<void>;
  private readonly created: UploadPartitions;

  constructor(
    readonly db: ControlledTransaction<Database>,
    partitions: PointPartitions,
    private readonly deviceId: number,
  ) {
    this.lockDevice = deviceLock(db, deviceId);
    this.created = new UploadPartitions(partitions, db, this.lockDevice);
  }

  seriesWriter(seriesId: number): SeriesWriter {
    let epochMs: number[] = [];
    let values: number[] = [];
    let stored = 0;
    const months = new MonthSet();
    const flush = async () => {
      if (epochMs.length === 0) return;
      await this.created.ensure(months.take());
      stored += await insertPointBatch(this.db, this.deviceId, seriesId, epochMs, values);
      epochMs = [];
      values = [];
    };
    return {
      add(ms, value) {
        epochMs.push(ms);
        values.push(value);
        months.add(ms);
      },
      flushIfFull: () => (epochMs.length >= BATCH_SIZE ? flush() : Promise.resolve()),
      finish: async () => {
        await flush();
        return stored;
      },
      abort: async () => undefined,
    };
  }

  async commit() {
    await this.db.commit().execute();
    this.created.committed();
  }

  async rollback() {
    await this.db.rollback().execute();
  }
}

import type { ControlledTransaction, Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { MonthSet, type PointPartitions } from './partition-months.js';
import { insertPointBatch } from './points.repository.js';
import type { IngestBackend, SeriesWriter, UploadTransaction } from './upload-transaction.js';

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
    async begin() {
      return new UnnestUpload(await db.startTransaction().execute(), partitions);
    },
  };
}

class UnnestUpload implements UploadTransaction {
  private readonly created: number[] = [];

  constructor(
    readonly db: ControlledTransaction<Database>,
    private readonly partitions: PointPartitions,
  ) {}

  seriesWriter(seriesId: number): SeriesWriter {
    let epochMs: number[] = [];
    let values: number[] = [];
    let stored = 0;
    const months = new MonthSet();
    const flush = async () => {
      if (epochMs.length === 0) return;
      this.created.push(...(await this.partitions.ensure(this.db, months.take())));
      stored += await insertPointBatch(this.db, seriesId, epochMs, values);
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
    this.partitions.remember(this.created);
  }

  async rollback() {
    await this.db.rollback().execute();
  }
}

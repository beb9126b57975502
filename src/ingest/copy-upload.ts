import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import type { CopyStreamQuery } from 'pg-copy-streams';
import { PinnedClient } from '../db/pinned-client.js';
import type { Database } from '../db/schema.js';
import { COPY_BINARY_HEADER, COPY_BINARY_TRAILER, CopyBinaryRows } from './copy-binary.js';
import { MonthSet, type PointPartitions } from './partition-months.js';
import {
  copyIntoStagingTable,
  createStagingTable,
  insertStagedPoints,
  truncateStagingTable,
} from './points.repository.js';
import type { IngestBackend, SeriesWriter, UploadTransaction } from './upload-transaction.js';

/** COPY data is handed to the connection in pieces of about this size. */
const WRITE_BYTES = 64 * 1024;
/**
 * Points staged before they are moved into `points`: bounds the staging
 * table (about 4.4 MB, within the default temp_buffers) for uploads of any size.
 */
const SEGMENT_POINTS = 100_000;

/**
 * The write path on a real Postgres: points stream into a session-local
 * staging table with binary COPY while the request body is still being
 * parsed, and every segment is moved into `points` with one
 * `INSERT ... SELECT ... ON CONFLICT DO NOTHING`. See BENCHMARKS.md for why
 * this beats batched `unnest` inserts.
 *
 * Partitions are created on `ddl`, a connection of its own in autocommit:
 * ATTACH PARTITION does not conflict with the inserts of open uploads, and
 * that connection is never waited for while holding another.
 */
export function copyIngest(
  pool: pg.Pool,
  ddl: Kysely<Database>,
  partitions: PointPartitions,
): IngestBackend {
  const staged = new WeakSet<pg.PoolClient>();
  return {
    method: 'copy',
    async begin() {
      const pinned = new PinnedClient(await pool.connect());
      try {
        if (!staged.has(pinned.client)) {
          await createStagingTable(pinned.client);
          staged.add(pinned.client);
        }
        await pinned.begin();
      } catch (err) {
        pinned.release(err as Error);
        throw err;
      }
      return {
        db: pinned.db,
        seriesWriter: (seriesId) => new CopySeriesWriter(pinned.client, seriesId, ddl, partitions),
        commit: () => pinned.commit(),
        rollback: () => pinned.rollback(),
      } satisfies UploadTransaction;
    },
  };
}

class CopySeriesWriter implements SeriesWriter {
  private readonly rows = new CopyBinaryRows();
  private readonly months = new MonthSet();
  private copy: CopyStreamQuery | undefined;
  private segmentPoints = 0;
  private stored = 0;

  constructor(
    private readonly client: pg.PoolClient,
    private readonly seriesId: number,
    private readonly ddl: Kysely<Database>,
    private readonly partitions: PointPartitions,
  ) {}

  add(epochMs: number, value: number): void {
    this.rows.add(epochMs, value);
    this.months.add(epochMs);
    this.segmentPoints++;
  }

  async flushIfFull(): Promise<void> {
    if (this.segmentPoints >= SEGMENT_POINTS) await this.endSegment();
    else if (this.rows.size >= WRITE_BYTES) await this.write(this.rows.take());
  }

  async finish(): Promise<number> {
    await this.endSegment();
    return this.stored;
  }

  async abort(): Promise<void> {
    const copy = this.copy;
    this.copy = undefined;
    if (!copy) return;
    // Destroying the stream sends CopyFail, which ends the COPY on the server
    // and leaves the connection ready for the ROLLBACK.
    copy.destroy(new Error('upload aborted'));
    await finished(copy).catch(() => undefined);
  }

  private async write(data: Buffer): Promise<void> {
    if (!this.copy) {
      await truncateStagingTable(this.client);
      this.copy = copyIntoStagingTable(this.client);
      // Errors surface through write, drain and finished; unheard, one would crash the process.
      this.copy.on('error', () => undefined);
      this.copy.write(COPY_BINARY_HEADER);
    }
    const copy = this.copy;
    if (copy.write(data)) return;
    if (copy.errored) throw copy.errored;
    await once(copy, 'drain');
  }

  private async endSegment(): Promise<void> {
    if (this.segmentPoints === 0) return;
    await this.write(this.rows.take());
    const copy = this.copy!;
    this.copy = undefined;
    copy.end(COPY_BINARY_TRAILER);
    await finished(copy);
    this.partitions.remember(await this.partitions.ensure(this.ddl, this.months.take()));
    this.stored += await insertStagedPoints(this.client, this.seriesId);
    this.segmentPoints = 0;
  }
}

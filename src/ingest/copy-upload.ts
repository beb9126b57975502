import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import type pg from 'pg';
import type { CopyStreamQuery } from 'pg-copy-streams';
import { PinnedClient } from '../db/pinned-client.js';
import { COPY_BINARY_HEADER, COPY_BINARY_TRAILER, CopyBinaryRows } from './copy-binary.js';
import { MonthSet, UploadPartitions, type PointPartitions } from './partition-months.js';
import {
  copyIntoStagingTable,
  createStagingTable,
  insertPointBatch,
  insertStagedPoints,
  insertStagedPointsIfAllNew,
  truncateStagingTable,
} from './points.repository.js';
import {
  deviceLock,
  type IngestBackend,
  type SeriesWriter,
  type UploadTransaction,
} from './upload-transaction.js';

/** COPY data is handed to the connection in pieces of about this size. */
const WRITE_BYTES = 64 * 1024;
/**
 * Points staged before they are moved into `points`: bounds the staging
 * table (about 6.6 MB, within the default temp_buffers) for uploads of any size.
 */
const SEGMENT_POINTS = 150_000;
/**
 * Segments per upload that may try the plain INSERT (one savepoint each).
 * Past 64 subtransactions Postgres stops caching them per backend and every
 * other session's snapshots get slower; a huge upload then stays below that.
 */
const SAVEPOINTS_PER_UPLOAD = 48;
/**
 * A part this small is written with one `INSERT ... unnest` instead: COPY
 * costs three statements (TRUNCATE, COPY, INSERT) and the TRUNCATE of a temp
 * table creates and unlinks files, which dominated the small-upload latency.
 */
const SMALL_PART_POINTS = 2000;

/**
 * The write path on a real Postgres: points stream into a session-local
 * staging table with binary COPY while the request body is still being
 * parsed, and every segment is moved into `points` with one INSERT ...
 * SELECT: a plain one while no point of it is stored yet (the usual case, and
 * twice as fast), else one with ON CONFLICT DO NOTHING. See BENCHMARKS.md for
 * why this beats batched `unnest` inserts.
 *
 * Missing partitions are created inside the upload's transaction (see
 * UploadPartitions), so a refused upload leaves none behind.
 */
export function copyIngest(pool: pg.Pool, partitions: PointPartitions): IngestBackend {
  const staged = new WeakSet<pg.PoolClient>();
  return {
    method: 'copy',
    async begin(deviceId) {
      const pinned = new PinnedClient(await pool.connect());
      const savepoints = { left: SAVEPOINTS_PER_UPLOAD };
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
      const lockDevice = deviceLock(pinned.db, deviceId);
      const created = new UploadPartitions(partitions, pinned.db, lockDevice);
      return {
        db: pinned.db,
        lockDevice,
        seriesWriter: (seriesId) =>
          new CopySeriesWriter(pinned, deviceId, seriesId, created, savepoints),
        commit: async () => {
          await pinned.commit();
          created.committed();
        },
        rollback: () => pinned.rollback(),
      } satisfies UploadTransaction;
    },
  };
}

class CopySeriesWriter implements SeriesWriter {
  /** Points are held here until the part proves larger than SMALL_PART_POINTS. */
  private small: { epochMs: number[]; values: number[] } | null = { epochMs: [], values: [] };
  private readonly rows = new CopyBinaryRows();
  private readonly months = new MonthSet();
  private copy: CopyStreamQuery | undefined;
  private segmentPoints = 0;
  private stored = 0;

  private readonly client: pg.PoolClient;

  constructor(
    private readonly pinned: PinnedClient,
    private readonly deviceId: number,
    private readonly seriesId: number,
    private readonly partitions: UploadPartitions,
    private readonly savepoints: { left: number },
  ) {
    this.client = pinned.client;
  }

  add(epochMs: number, value: number): void {
    if (this.small) {
      this.small.epochMs.push(epochMs);
      this.small.values.push(value);
    } else {
      this.rows.add(epochMs, value);
    }
    this.months.add(epochMs);
    this.segmentPoints++;
  }

  async flushIfFull(): Promise<void> {
    return this.reportingLostConnection(() => this.flushIfFullUnguarded());
  }

  private async flushIfFullUnguarded(): Promise<void> {
    if (this.small) {
      if (this.small.epochMs.length <= SMALL_PART_POINTS) return;
      const { epochMs, values } = this.small;
      this.small = null;
      for (let i = 0; i < epochMs.length; i++) this.rows.add(epochMs[i]!, values[i]!);
    }
    if (this.segmentPoints >= SEGMENT_POINTS) await this.endSegment();
    else if (this.rows.size >= WRITE_BYTES) await this.write(this.rows.take());
  }

  async finish(): Promise<number> {
    return this.reportingLostConnection(() => this.finishUnguarded());
  }

  /** A restart of Postgres mid-COPY must read as "unavailable" (503), not as a bug. */
  private async reportingLostConnection<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      throw this.pinned.lost ?? err;
    }
  }

  private async finishUnguarded(): Promise<number> {
    if (this.small) {
      await this.ensurePartitions();
      return insertPointBatch(
        this.pinned.db,
        this.deviceId,
        this.seriesId,
        this.small.epochMs,
        this.small.values,
      );
    }
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
    await this.ensurePartitions();
    let stored: number | false = false;
    if (this.savepoints.left > 0) {
      this.savepoints.left--;
      stored = await insertStagedPointsIfAllNew(this.client, this.deviceId, this.seriesId);
    }
    this.stored +=
      stored === false
        ? await insertStagedPoints(this.client, this.deviceId, this.seriesId)
        : stored;
    this.segmentPoints = 0;
  }

  private async ensurePartitions(): Promise<void> {
    await this.partitions.ensure(this.months.take());
  }
}

import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { lockDeviceForUpload } from '../devices/device.repository.js';

/**
 * Where the points of one series go inside an upload's transaction. `add` is
 * called synchronously for every parsed point; `flushIfFull` between input
 * chunks writes out what has piled up and waits while the database is busy,
 * which is what slows a fast client down (backpressure).
 */
export interface SeriesWriter {
  add(epochMs: number, value: number): void;
  flushIfFull(): Promise<void>;
  /** Writes the rest; resolves to how many points were new. */
  finish(): Promise<number>;
  /** Stops after a failure; the transaction is rolled back next. */
  abort(): Promise<void>;
}

/** One upload = one transaction, whichever way points are written. */
export interface UploadTransaction {
  /** For the repositories (series, devices) inside the same transaction. */
  readonly db: Kysely<Database>;
  /**
   * Takes the device's row lock until the end of the upload, once. ingestBatch
   * takes it as soon as the transaction opens, before any point, series or
   * partition is written: every writer of a device's points takes this row
   * first (the one-statement path too, see storeSeriesOfExistingName), so
   * uploads of one device write one after the other and never hold point
   * rows, series or partition locks that another one waits for while it
   * waits for them. It also makes a new series' check against the
   * per-device cap see no concurrent upload of the device.
   */
  lockDevice(): Promise<void>;
  seriesWriter(seriesId: number): SeriesWriter;
  commit(): Promise<void>;
  rollback(): Promise<void>;
}

export interface IngestBackend {
  /** `copy` on a real Postgres, `unnest` on the embedded one. */
  readonly method: 'copy' | 'unnest';
  begin(deviceId: number): Promise<UploadTransaction>;
  /**
   * Stores a whole batch made of one small series in one statement, without
   * BEGIN and COMMIT round trips (see single-statement.ts). Resolves to the
   * number of new points, or to null having written nothing when the batch
   * needs the transactional path (a new series, a month without partition).
   */
  storeSingleSeries?(
    deviceId: number,
    name: string,
    epochMs: readonly number[],
    values: readonly number[],
    months: readonly number[],
  ): Promise<number | null>;
}

/** The once-per-upload device lock of `UploadTransaction.lockDevice`. */
export function deviceLock(db: Kysely<Database>, deviceId: number): () => Promise<void> {
  let locked: Promise<void> | undefined;
  return () => (locked ??= lockDeviceForUpload(db, deviceId));
}

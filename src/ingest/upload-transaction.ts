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
   * Takes the device's row lock until the end of the upload, once. Taken
   * before anything that must be decided with no concurrent upload of the
   * same device in between (a new series against the per-device cap) and
   * before creating a partition, so every upload takes its locks in the same
   * order (device row, then partition lock) and two uploads never deadlock on
   * them.
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

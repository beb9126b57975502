import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from '../db/schema.js';
import { ensurePointsPartition, listPointsPartitionMonths } from './partitions.repository.js';

/** UTC start of the month holding `epochMs`. */
export function monthStartOf(epochMs: number): number {
  const d = new Date(epochMs);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

function nextMonthStart(monthStartMs: number): number {
  const d = new Date(monthStartMs);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/**
 * The months a stream of points touches, at the cost of two comparisons per
 * point: device data arrives in time order, so nearly every point falls in
 * the month of the one before.
 */
export class MonthSet {
  private low = Infinity;
  private high = -Infinity;
  private readonly months = new Set<number>();

  add(epochMs: number): void {
    if (epochMs >= this.low && epochMs < this.high) return;
    this.low = monthStartOf(epochMs);
    this.high = nextMonthStart(this.low);
    this.months.add(this.low);
  }

  /** The months seen since the last call. */
  take(): number[] {
    const months = [...this.months];
    this.months.clear();
    this.low = Infinity;
    this.high = -Infinity;
    return months;
  }
}

/**
 * Which month partitions of `points` exist, cached in the process so the hot
 * path asks the database only for a month it has not seen yet.
 */
export class PointPartitions {
  private readonly known = new Set<number>();

  async load(db: Kysely<Database>): Promise<void> {
    for (const month of await listPointsPartitionMonths(db)) this.known.add(month);
  }

  /** The months among `months` not known to have a partition. */
  missing(months: readonly number[]): number[] {
    return months.filter((m) => !this.known.has(m));
  }

  /**
   * Creates the missing partitions among `months` through `db`; returns the
   * months it had to ask for, which the caller passes to `remember` once the
   * DDL is committed (at once in autocommit, after the upload otherwise).
   */
  async ensure(db: Kysely<Database>, months: readonly number[]): Promise<number[]> {
    const missing = this.missing(months);
    for (const month of missing) await ensurePointsPartition(db, month);
    return missing;
  }

  remember(months: readonly number[]): void {
    for (const month of months) this.known.add(month);
  }

  /** The current month and the next `monthsAhead`, so uploads rarely wait for DDL. */
  async createAhead(db: Kysely<Database>, nowMs: number, monthsAhead: number): Promise<void> {
    const months = [monthStartOf(nowMs)];
    for (let i = 0; i < monthsAhead; i++) months.push(nextMonthStart(months[months.length - 1]!));
    this.remember(await this.ensure(db, months));
  }
}

/**
 * The partitions an upload creates, inside its own transaction: Postgres DDL
 * is transactional, so a refused upload (rolled back) leaves none of them
 * behind. They are remembered as existing only once the upload commits.
 * Creating one takes a lock that serialises partition creators until their
 * transaction ends (`points_ensure_partition`'s advisory lock and ATTACH's
 * SHARE UPDATE EXCLUSIVE lock on `points`, which lets inserts go on); the
 * device row is locked first, so that lock order is the same in every upload.
 */
export class UploadPartitions {
  private readonly created: number[] = [];

  constructor(
    private readonly partitions: PointPartitions,
    private readonly db: Kysely<Database>,
    private readonly lockDevice: () => Promise<void>,
  ) {}

  async ensure(months: readonly number[]): Promise<void> {
    const missing = this.partitions.missing(months);
    if (missing.length === 0) return;
    await this.lockDevice();
    this.created.push(...(await this.partitions.ensure(this.db, missing)));
  }

  /** After COMMIT: the partitions now exist for every connection. */
  committed(): void {
    this.partitions.remember(this.created);
  }
}

/** Creates partitions ahead at start and then every hour, for as long as the server runs. */
export async function startPartitionMaintenance(
  db: Kysely<Database>,
  partitions: PointPartitions,
  monthsAhead: number,
  log: Logger,
): Promise<() => void> {
  await partitions.load(db);
  await partitions.createAhead(db, Date.now(), monthsAhead);
  const timer = setInterval(() => {
    partitions
      .createAhead(db, Date.now(), monthsAhead)
      .catch((err: Error) => log.warn({ err: err.message }, 'creating points partitions failed'));
  }, 3_600_000);
  timer.unref();
  return () => clearInterval(timer);
}

import type { PGlite } from '@electric-sql/pglite';
import type { PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely';

/**
 * PGlite is a single-connection database. Kysely's Postgres dialect wants a
 * pool, so this adapter hands out the one connection to one borrower at a time:
 * a transaction that holds it keeps every other query waiting, exactly like a
 * pool of size one. Without this, statements of two concurrent transactions
 * would interleave inside one session.
 */
export class PgliteSingleConnectionPool implements PostgresPool {
  private queue: Promise<void> = Promise.resolve();

  /**
   * `acquireTimeoutMs`: the longest a borrower waits for its turn; then it gets
   * an error the HTTP layer answers with 503 and Retry-After (like pg's pool),
   * instead of hanging behind a long transaction.
   */
  constructor(
    private readonly pglite: PGlite,
    private readonly acquireTimeoutMs = 0,
  ) {}

  async connect(): Promise<PostgresPoolClient> {
    let release!: () => void;
    const turn = new Promise<void>((resolve) => (release = resolve));
    const previous = this.queue;
    this.queue = previous.then(() => turn);
    await this.waitForTurn(previous, release);
    let released = false;
    const pglite = this.pglite;
    const client = {
      async query<R>(sql: string, parameters: ReadonlyArray<unknown>) {
        const result = await pglite.query<R>(sql, parameters as unknown[]);
        return {
          command: commandOf(sql),
          rowCount: result.affectedRows ?? result.rows.length,
          rows: result.rows,
        } as PostgresQueryResult<R>;
      },
      release() {
        if (released) return;
        released = true;
        release();
      },
    };
    return client as unknown as PostgresPoolClient;
  }

  /** Waits for the previous borrower; on timeout, passes our turn on unused. */
  private waitForTurn(previous: Promise<void>, release: () => void): Promise<void> {
    if (this.acquireTimeoutMs <= 0) return previous;
    return new Promise<void>((resolve, reject) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        reject(new EmbeddedAcquireTimeout(this.acquireTimeoutMs));
      }, this.acquireTimeoutMs);
      void previous.then(() => {
        if (timedOut) {
          release();
          return;
        }
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async end(): Promise<void> {
    await this.queue;
    await this.pglite.close();
  }
}

/** Kysely reads affected-row counts only for these commands. */
function commandOf(sql: string): PostgresQueryResult<unknown>['command'] {
  const word = /^\s*(\w+)/.exec(sql)?.[1]?.toUpperCase();
  switch (word) {
    case 'INSERT':
    case 'UPDATE':
    case 'DELETE':
    case 'MERGE':
      return word;
    default:
      return 'SELECT';
  }
}

/**
 * The embedded database stayed busy (one long transaction) for the whole
 * acquire timeout. The message matches pg's pool timeout, which
 * isDatabaseUnavailable maps to 503 with Retry-After.
 */
export class EmbeddedAcquireTimeout extends Error {
  override name = 'EmbeddedAcquireTimeout';
  constructor(timeoutMs: number) {
    super(`timeout exceeded when trying to connect to the embedded database (${timeoutMs} ms)`);
  }
}

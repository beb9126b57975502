import { Kysely, PostgresDialect, type PostgresPool, type PostgresPoolClient } from 'kysely';
import type pg from 'pg';
import type { Database } from './schema.js';

/**
 * A pg connection checked out for one unit of work that needs both kysely
 * (the repositories) and the raw client (COPY). Kysely sees a "pool" that
 * always hands out this one connection and never releases it; the owner
 * ends the transaction and releases the connection itself.
 */
export class PinnedClient {
  readonly db: Kysely<Database>;
  private released = false;
  /**
   * Set when the server went away under this connection. Some drivers (COPY
   * streams) then fail with unrelated TypeErrors; this is the error to report.
   */
  lost: Error | undefined;

  constructor(readonly client: pg.PoolClient) {
    client.on('error', (err) => (this.lost ??= err));
    const pinned: PostgresPool = {
      connect: async () =>
        ({
          query: client.query.bind(client),
          release: () => undefined,
        }) as unknown as PostgresPoolClient,
      end: async () => undefined,
    };
    this.db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: pinned }) });
  }

  async begin(): Promise<void> {
    await this.client.query('begin');
  }

  async commit(): Promise<void> {
    await this.client.query('commit');
    this.release();
  }

  /** Rolls back; a connection that cannot even do that is closed, not reused. */
  async rollback(): Promise<void> {
    try {
      await this.client.query('rollback');
      this.release();
    } catch (err) {
      this.release(err as Error);
    }
  }

  release(err?: Error): void {
    if (this.released) return;
    this.released = true;
    this.client.release(err);
  }
}

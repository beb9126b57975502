import { expect } from 'chai';
import type { PGlite } from '@electric-sql/pglite';
import { EmbeddedAcquireTimeout, PgliteSingleConnectionPool } from '../../src/db/pglite-pool.js';
import { toHttpError } from '../../src/http/error-handler.js';

/** Enough of PGlite for the pool: it never runs a query here. */
const fakePglite = {
  query: async () => ({ rows: [], affectedRows: 0 }),
  close: async () => undefined,
} as unknown as PGlite;

describe('embedded database pool', () => {
  it('gives up waiting after the acquire timeout with a 503 and Retry-After, and passes the turn on', async () => {
    const pool = new PgliteSingleConnectionPool(fakePglite, 200);
    const holder = await pool.connect();
    const started = Date.now();
    const waited = await pool.connect().then(
      () => null,
      (err: unknown) => err,
    );
    expect(Date.now() - started).to.be.within(150, 1500);
    expect(waited).to.be.instanceOf(EmbeddedAcquireTimeout);
    const answer = toHttpError(waited);
    expect(answer.status).to.equal(503);
    expect(answer.code).to.equal('unavailable');
    expect(answer.headers?.['Retry-After']).to.match(/^\d+$/);
    // A later borrower still gets the connection once the holder lets go.
    const next = pool.connect();
    holder.release();
    const client = await next;
    client.release();
    await pool.end();
  });

  it('hands the connection to one borrower at a time, in order', async () => {
    const pool = new PgliteSingleConnectionPool(fakePglite, 5000);
    const order: number[] = [];
    const first = await pool.connect();
    const second = pool.connect().then((c) => (order.push(2), c));
    const third = pool.connect().then((c) => (order.push(3), c));
    order.push(1);
    first.release();
    (await second).release();
    (await third).release();
    expect(order).to.deep.equal([1, 2, 3]);
  });
});

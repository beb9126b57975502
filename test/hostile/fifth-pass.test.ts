import type { Socket } from 'node:net';
import { expect } from 'chai';
import tls from 'node:tls';
import { overMutualTls, rawRequest, type RawAnswer } from '../proxy/raw-http.js';
import pg from 'pg';
import { waitFor } from '../support/concurrency.js';
import { uniqueName, useFixture } from '../support/fixture.js';
import { skipBecause } from '../support/skip.js';
import { queryTestDatabase } from '../support/test-database.js';

/**
 * Findings of the fifth adversarial pass (docs/security-review-2026-12.md,
 * "Fifth pass"): each case failed before its fix.
 */
describe('fifth pass: requests the listener must answer', function () {
  this.timeout(60_000);
  const fx = useFixture();

  /** The first answer within `ms`, or null when the server says nothing. */
  async function answerWithin(head: string[], ms: number): Promise<RawAnswer | null> {
    const tlsConnect = overMutualTls(fx().server.port, fx().server.caPem);
    const sockets: Socket[] = [];
    const connect = () => {
      const socket = tlsConnect();
      sockets.push(socket);
      return socket;
    };
    let timer: NodeJS.Timeout | undefined;
    const silence = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)));
    try {
      return await Promise.race([rawRequest(connect, head), silence]);
    } finally {
      clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
    }
  }

  for (const path of ['/device_endpoint', '/device_endpoint/', '/nowhere']) {
    it(`answers 417 to an expectation other than 100-continue at once (GET ${path}, no certificate)`, async () => {
      // Before the fix nobody answered: the connection, opened without a
      // certificate, was held past every timeout (the first-request timer had
      // stopped, the request was complete).
      const answer = await answerWithin(
        [`GET ${path} HTTP/1.1`, 'Host: localhost', 'Expect: a-thing'],
        5000,
      );
      expect(answer, 'an answer within 5 s').to.not.equal(null);
      expect(answer!.status).to.equal(417);
      expect(answer!.json).to.deep.equal({
        error: 'only the expectation 100-continue is supported',
        code: 'expectation_failed',
      });
      expect(answer!.head).to.match(/\r\nx-request-id: \S+/i);
      expect(answer!.head).to.match(/\r\nx-content-type-options: nosniff/i);
      expect(answer!.head).to.match(/\r\nconnection: close/i);
    });
  }

  for (const path of ['/device_endpoint', '/device_endpoint/', '/device_endpoint/messages']) {
    it(`closes the connection of a request refused before its body was read (POST ${path}, no certificate, body trickled)`, async () => {
      // Before the fix Node drained the unread body after the 401 with no idle
      // or rate limit: a client without a certificate that sent a byte every
      // half second held its connection until FLEETGATE_REQUEST_TIMEOUT_MS (15 min).
      const socket = tls.connect({
        host: '127.0.0.1',
        port: fx().server.port,
        servername: 'localhost',
        ca: fx().server.caPem,
      });
      let received = '';
      socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
      socket.on('error', () => undefined);
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      await new Promise((resolve) => socket.once('secureConnect', resolve));
      socket.write(
        `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=b\r\n` +
          'Content-Length: 1000000000\r\n\r\n--b\r\n',
      );
      const trickle = setInterval(() => socket.writable && socket.write('a'), 500);
      try {
        const outcome = await Promise.race([
          closed.then(() => 'closed'),
          new Promise((resolve) => setTimeout(() => resolve('still open'), 6000)),
        ]);
        expect(received, 'the refusal was delivered').to.match(/^HTTP\/1\.1 (401|415) /);
        expect(received).to.match(/\r\nconnection: close\r\n/i);
        expect(outcome, 'the connection 6 s after the refusal').to.equal('closed');
      } finally {
        clearInterval(trickle);
        socket.destroy();
      }
    });
  }
});

describe('fifth pass: Expect: 100-continue in another spelling', function () {
  this.timeout(60_000);
  const fx = useFixture();

  for (const path of ['/device_endpoint', '/device_endpoint/']) {
    it(`sends 100 Continue to a bound device whose Expect lists 100-continue twice (POST ${path})`, async () => {
      // Two Expect headers (a proxy that adds its own) reach Node as
      // "100-continue, 100-continue": Node hands the request over as a
      // 100-continue one, but the route compared the whole value and never
      // sent 100 Continue. The client waited, then was cut off with 408.
      const { device } = await fx().boundDevice(uniqueName('expect-twice'));
      const socket = tls.connect({
        host: '127.0.0.1',
        port: fx().server.port,
        servername: 'localhost',
        ca: fx().server.caPem,
        cert: device.certPem,
        key: device.keyPem,
      });
      try {
        let received = '';
        const continued = new Promise<boolean>((resolve) => {
          socket.on('data', (chunk: Buffer) => {
            received += chunk.toString('latin1');
            if (received.startsWith('HTTP/1.1 100 ')) resolve(true);
          });
          setTimeout(() => resolve(false), 4000);
        });
        socket.on('error', () => undefined);
        await new Promise((resolve) => socket.once('secureConnect', resolve));
        socket.write(
          `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=b\r\n` +
            'Expect: 100-continue\r\nExpect: 100-continue\r\nContent-Length: 80\r\n\r\n',
        );
        expect(
          await continued,
          `100 Continue within 4 s; got ${JSON.stringify(received)}`,
        ).to.equal(true);
      } finally {
        socket.destroy();
      }
    });
  }
});

describe('fifth pass: a JSON batch the database aborts for a deadlock', function () {
  this.timeout(60_000);
  const fx = useFixture();

  // A batch takes its device's row before any point (lock order, see
  // ingestBatch): the interleaving the fifth pass used to make a deadlock,
  // device row first in another session, then the batch's point, now only
  // makes the batch wait, holding nothing.
  it('waits for a device row held elsewhere before writing any point (no deadlock) and stores the batch whole (PostgreSQL)', async function () {
    const url = fx().db.url;
    if (!url) skipBecause(this, 'holds the device row from a second PostgreSQL session');
    const { client, series, ts } = await heldSeries('lock-order');
    const other = new pg.Client({ connectionString: url });
    await other.connect();
    try {
      const deadlocksBefore = await deadlocks(other);
      await other.query('begin');
      await other.query('select id from devices where id = $1 for update', [series.device_id]);
      const answer = sendBatch(client, ts + 1);
      await waitFor(
        'the batch to wait for the device row',
        async () => (await waitingOnLock(other)) > 0,
        10_000,
      );
      // The batch holds no point: this insert of the same point does not wait.
      await other.query('set local lock_timeout = 2000');
      const outcome = await insertPoint(other, series, ts + 1);
      await other.query('rollback');
      const stored = await answer;
      expect(outcome, 'the batch held the point while waiting for the device row').to.equal(
        'inserted',
      );
      expect(stored.status, stored.text).to.equal(200);
      expect(stored.json).to.deep.include({ stored: 2, duplicates: 0 });
      expect(await deadlocks(other), 'no deadlock').to.equal(deadlocksBefore);
      expect(await pointsAt(other, series.device_id, ts + 1)).to.deep.equal([
        { name: 'fresh', value: 2 },
        { name: 'held', value: 1 },
      ]);
    } finally {
      await other.end();
    }
  });

  it('is stored once, whole, after the retry, and answered 200 (PostgreSQL)', async function () {
    const url = fx().db.url;
    if (!url) skipBecause(this, 'makes a deadlock from a second PostgreSQL session');
    const { client, series, ts } = await heldSeries('deadlock');
    const other = new pg.Client({ connectionString: url });
    await other.connect();
    try {
      const deadlocksBefore = await deadlocks(other);
      // This session writes the batch's point first, uncommitted: the batch
      // takes the device row, then waits for that point; this session then
      // asks for the device row. The batch has waited longer, so PostgreSQL's
      // deadlock check aborts it, and the server stores it again.
      await other.query('begin');
      const point = await insertPoint(other, series, ts + 1);
      expect(point).to.equal('inserted');
      const answer = sendBatch(client, ts + 1);
      await waitFor(
        'the batch to wait for the point',
        async () => (await waitingOnLock(other)) > 0,
        10_000,
      );
      const outcome = await other
        .query('select id from devices where id = $1 for update', [series.device_id])
        .then(
          () => 'locked',
          (err: { code?: string }) => err.code,
        );
      await other.query('rollback');
      const stored = await answer;
      expect(stored.status, stored.text).to.equal(200);
      expect(stored.json).to.deep.include({ stored: 2, duplicates: 0 });
      expect(await deadlocks(other), 'a deadlock happened').to.be.above(deadlocksBefore);
      expect(outcome, 'the batch, not this session, was the victim').to.equal('locked');
      expect(await pointsAt(other, series.device_id, ts + 1)).to.deep.equal([
        { name: 'fresh', value: 2 },
        { name: 'held', value: 1 },
      ]);
    } finally {
      await other.end();
    }
  });

  /** A bound device whose series "held" exists; a batch with "fresh" too takes the transaction path. */
  async function heldSeries(name: string) {
    const { client } = await fx().boundDevice(uniqueName(name));
    const ts = 1_764_600_000_000;
    expect(
      (await client.send('POST', JSON.stringify({ ts, data: { held: 0 } }), JSON_TYPE, MESSAGES))
        .status,
    ).to.equal(200);
    const [series] = await queryTestDatabase<{ id: number; device_id: number }>(
      fx().db,
      `select s.id, s.device_id from series s join devices d on d.id = s.device_id
       where s.name = 'held' order by s.id desc limit 1`,
    );
    return { client, series: series!, ts };
  }

  function sendBatch(client: Awaited<ReturnType<typeof heldSeries>>['client'], ts: number) {
    return client.send(
      'POST',
      JSON.stringify([{ ts, data: { held: 1, fresh: 2 } }]),
      JSON_TYPE,
      MESSAGES,
    );
  }

  function insertPoint(db: pg.Client, series: { id: number; device_id: number }, ts: number) {
    return db
      .query('insert into points (device_id, series_id, ts, value) values ($1, $2, $3, 9)', [
        series.device_id,
        series.id,
        new Date(ts),
      ])
      .then(
        () => 'inserted',
        (err: { code?: string }) => err.code,
      );
  }

  async function pointsAt(db: pg.Client, deviceId: number, ts: number) {
    const rows = await db.query<{ name: string; value: number }>(
      'select s.name, p.value from points p join series s on s.id = p.series_id where p.ts = $1 and p.device_id = $2 order by s.name',
      [new Date(ts), deviceId],
    );
    return rows.rows;
  }

  async function deadlocks(db: pg.Client): Promise<number> {
    const { rows } = await db.query<{ n: string }>(
      'select deadlocks::text as n from pg_stat_database where datname = current_database()',
    );
    return Number(rows[0]!.n);
  }

  async function waitingOnLock(db: pg.Client): Promise<number> {
    const { rows } = await db.query<{ n: number }>(
      "select count(*)::int as n from pg_locks where not granted and locktype in ('tuple', 'transactionid')",
    );
    return rows[0]!.n;
  }
});

const JSON_TYPE = { 'content-type': 'application/json' };
const MESSAGES = '/device_endpoint/messages';

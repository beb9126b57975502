import net from 'node:net';
import tls from 'node:tls';
import { expect } from 'chai';
import { DeviceClient, newDevice, type TestDevice } from '../support/device-client.js';
import { startFleetgate, type FleetgateProcess } from '../support/fleetgate-process.js';
import {
  connectRaw,
  expectSecurityHeaders,
  parseRawAnswer,
  readUntilClosed,
} from '../support/raw-tls.js';
import { bindDevice, expectJsonError, storedPoints } from '../support/stored-points.js';
import { linesPastHeldPoints, sessionsInTransaction, waitFor } from '../support/concurrency.js';
import { sample, scrape } from '../support/metrics-scrape.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface TrickleOptions {
  /** Sends one byte this often (far too slow once `fast` says no more). */
  everyMs: number;
  /**
   * While this holds, sends a few whole lines every `everyMs` instead: fast enough for
   * the body rate check, so the upload holds its database connection without being cut.
   */
  fast?: () => boolean;
  /** The client gives up (closes) once this holds; until then only the server ends the upload. */
  giveUp: () => boolean;
  /** Called once the request head and the start of the part are written. */
  headWritten?: () => void;
  /** Called when the first bytes of the server's answer arrive. */
  answered?: () => void;
}

/**
 * An upload over a raw mTLS socket that sends its headers and the start of one
 * part, then one byte every `everyMs`: it never goes idle, but it is far too
 * slow. Returns the answer (status 0 if the connection closed without one).
 */
async function trickle(
  server: FleetgateProcess,
  device: TestDevice,
  series: string,
  options: TrickleOptions,
) {
  const socket = await connectRaw(server, device);
  const closed = readUntilClosed(socket);
  socket.once('data', () => options.answered?.());
  const boundary = 'trickle0boundary';
  const head =
    `--${boundary}\r\nContent-Disposition: form-data; name="${series}"; filename="a.csv"\r\n` +
    `Content-Type: text/plain\r\n\r\n${linesPastHeldPoints(Date.now() - 120_000)}`;
  socket.write(
    'POST /device_endpoint HTTP/1.1\r\nHost: localhost\r\n' +
      `Content-Type: multipart/form-data; boundary=${boundary}\r\n` +
      `Content-Length: ${head.length + 100_000}\r\n\r\n${head}`,
    () => options.headWritten?.(),
  );
  let open = true;
  void closed.then(() => (open = false));
  let sent = 0;
  const sender = (async () => {
    while (open && !options.giveUp()) {
      await sleep(options.fast?.() ? 100 : options.everyMs);
      if (!open || socket.destroyed) break;
      if (options.fast?.()) {
        // Four whole lines (~64 bytes) every 100 ms: about three times the required rate.
        const lines = [1, 2, 3, 4].map((i) => `${Date.now() - 60_000 + i},1\n`).join('');
        if (sent + lines.length < 90_000) {
          socket.write(lines);
          sent += lines.length;
        }
      } else socket.write('1');
    }
    socket.destroy();
  })();
  const text = await closed;
  await sender;
  return { answer: parseRawAnswer(text) };
}

/** Whether a new TLS connection gets its handshake done (false: refused or closed). */
function tlsConnects(server: FleetgateProcess): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port: server.port, rejectUnauthorized: false });
    socket.once('secureConnect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('close', () => resolve(false));
  });
}

describe('one device must not starve the others', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let server: FleetgateProcess;
  const clients: DeviceClient[] = [];
  const boundClient = async () => {
    const device = newDevice();
    const client = new DeviceClient(server, device);
    clients.push(client);
    await bindDevice(server, client);
    return { device, client };
  };

  before(async () => {
    db = await createTestDatabase({ migrated: true });
    server = await startFleetgate(db, {
      FLEETGATE_DB_POOL_SIZE: '3',
      FLEETGATE_DB_ACQUIRE_TIMEOUT_MS: '20000',
      // The trickle (a byte every 300 ms) never trips the idle timeout...
      FLEETGATE_BODY_IDLE_TIMEOUT_MS: '5000',
      // ...but is far below 200 bytes/s over 1.5 s windows.
      FLEETGATE_MIN_BODY_BYTES_PER_SECOND: '200',
      FLEETGATE_MIN_BODY_RATE_WINDOW_MS: '1500',
      FLEETGATE_MAX_CONCURRENT_UPLOADS_PER_DEVICE: '2',
      FLEETGATE_FIRST_REQUEST_TIMEOUT_MS: '1500',
      FLEETGATE_TLS_HANDSHAKE_TIMEOUT_MS: '1500',
      FLEETGATE_MAX_CONNECTIONS: '40',
      // TLS handshake failures (and their reason) are logged at debug.
      FLEETGATE_LOG_LEVEL: 'debug',
    });
  });
  /**
   * Waits until `n` trickled uploads hold the database: on PostgreSQL, `n`
   * sessions of the server are inside a transaction (pg_stat_activity); the
   * embedded database has one session and no pool to watch, so there it waits
   * for their heads to be written.
   */
  async function holdingTheDatabase(n: number, headsWritten: () => number) {
    await waitFor(`${n} trickled uploads to send their heads`, () => headsWritten() >= n);
    if (db.url) {
      await waitFor(
        `${n} uploads inside a transaction (pg_stat_activity)`,
        async () => (await sessionsInTransaction(db)) >= n,
        20_000,
      );
    }
  }

  after(async () => {
    for (const c of clients) await c.close();
    await server?.stop();
    await db?.drop();
  });

  it('cuts trickled uploads off with 408, so that another device queued behind them uploads and asks its status', async () => {
    const attacker = await boundClient();
    const accomplice = await boundClient();
    const victim = await boundClient();
    let heads = 0;
    // What happened, in the order the test saw it: when a timed bound would say "soon",
    // the order says "because the server cut the trickles".
    const events: string[] = [];
    // On PostgreSQL the trickles first keep up the rate (they hold their connections and
    // are not cut) until the victim is seen queued for a connection; the embedded database
    // reports no pool, so there they are slow from the start.
    let fast = Boolean(db.url);
    let testOver = false;
    const trickles = [attacker, attacker, accomplice].map((a) =>
      trickle(server, a.device, 'slow', {
        everyMs: 300,
        fast: () => fast,
        // Never before the end of the test: only the server can end these uploads.
        giveUp: () => testOver,
        headWritten: () => heads++,
        answered: () => events.push('trickle answered'),
      }),
    );
    try {
      await holdingTheDatabase(3, () => heads);
      const upload = victim.client.upload([{ name: 'victim', content: `${Date.now()},7\n` }]);
      void upload.then(() => events.push('victim answered'));
      if (db.url) {
        // The pool (3 connections) is held by the trickles: the victim waits for one.
        await waitFor(
          'the victim to queue for a database connection (fleetgate_db_pool_connections waiting)',
          async () => {
            if (events.length > 0) throw new Error(`the pool was not held: ${events.join(', ')}`);
            const { text } = await scrape(server);
            return sample(text, 'fleetgate_db_pool_connections', { state: 'waiting' }) >= 1;
          },
          20_000,
        );
        events.push('victim queued');
        fast = false;
      }
      const uploaded = await upload;
      const status = await victim.client.send('GET');
      // Without the body rate check the trickles hold the database until the acquire
      // timeout, and the victim gets 503.
      expect(uploaded.status, uploaded.text).to.equal(200);
      expect(status.status, status.text).to.equal(200);
      await waitFor('the server to answer every trickle', () => {
        return events.filter((e) => e === 'trickle answered').length === 3;
      });
      for (const { answer } of await Promise.all(trickles)) {
        expect(answer.status, answer.head).to.equal(408);
        expect(answer.json?.code, answer.body).to.equal('body_too_slow');
      }
      // On PostgreSQL the victim was seen queued for a connection the trickles held, and was
      // served only once the server had cut one. (The embedded database shows no queue: its
      // victim may reach the one session before the first trickle does; there the test fails
      // on a starving pool by the 503, or by trickles the server never answers.)
      if (db.url) {
        expect(events[0], events.join(', ')).to.equal('victim queued');
        expect(events.indexOf('trickle answered'), events.join(', ')).to.be.below(
          events.indexOf('victim answered'),
        );
      }
    } finally {
      testOver = true;
    }
    expect(await storedPoints(db, server, attacker.device, 'slow')).to.deep.equal([]);
    expect(await storedPoints(db, server, victim.device, 'victim')).to.have.length(1);
    // The connections were released: the attacker can upload normally again.
    const again = await attacker.client.upload([{ name: 'fast', content: `${Date.now()},1\n` }]);
    expect(again.status, again.text).to.equal(200);
  });

  it('caps concurrent uploads per device with 429 too_many_concurrent_uploads', async () => {
    // Two of the three database connections are held; the third serves the device lookup.
    const attacker = await boundClient();
    let heads = 0;
    const started = Date.now();
    const trickles = [0, 1].map(() =>
      trickle(server, attacker.device, 'held', {
        everyMs: 100,
        giveUp: () => Date.now() - started > 4_000,
        headWritten: () => heads++,
      }),
    );
    await holdingTheDatabase(2, () => heads);
    const third = await attacker.client.upload([{ name: 'third', content: `${Date.now()},1\n` }]);
    expectJsonError(third, 429, 'too_many_concurrent_uploads');
    expect(Number(third.headers['retry-after'])).to.be.greaterThan(0);
    await Promise.all(trickles);
    expect(await storedPoints(db, server, attacker.device, 'third')).to.deep.equal([]);
    const later = await attacker.client.upload([{ name: 'third', content: `${Date.now()},1\n` }]);
    expect(later.status, later.text).to.equal(200);
  });

  it('applies the body idle timeout to a bind whose body stalls', async () => {
    const socket = await connectRaw(server, newDevice());
    const closed = readUntilClosed(socket);
    socket.write(
      'POST /device_endpoint HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n' +
        'Content-Length: 100\r\n\r\n{"PSK": "fgpsk_',
    );
    const answer = parseRawAnswer(await closed);
    expect(answer.status, answer.head).to.equal(408);
    // The body guard's own codes: Node's request timeout (the only other 408) says request_timeout.
    expect(answer.json?.code, answer.body).to.be.oneOf(['body_timeout', 'body_too_slow']);
  });

  it('answers Expect: 100-continue only after the device check: an unbound device gets 403 at once', async () => {
    const socket = await connectRaw(server, newDevice());
    const closed = readUntilClosed(socket);
    socket.write(
      'POST /device_endpoint HTTP/1.1\r\nHost: localhost\r\n' +
        'Content-Type: multipart/form-data; boundary=x\r\nExpect: 100-continue\r\n' +
        'Content-Length: 100000000\r\n\r\n',
    );
    const text = await closed;
    expect(text).not.to.match(/100 Continue/);
    const answer = parseRawAnswer(text);
    expect(answer.status, text).to.equal(403);
    expect(answer.json?.code).to.equal('certificate_not_bound');
  });

  it('sends 100 Continue to a bound device, then stores its upload', async () => {
    const { device } = await boundClient();
    const socket = await connectRaw(server, device);
    const closed = readUntilClosed(socket);
    const body =
      `--b\r\nContent-Disposition: form-data; name="cont"; filename="a.csv"\r\n\r\n` +
      `${Date.now()},5\n\r\n--b--\r\n`;
    const continued = new Promise<string>((resolve) =>
      socket.once('data', (chunk) => resolve(String(chunk))),
    );
    socket.write(
      'POST /device_endpoint HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n' +
        'Content-Type: multipart/form-data; boundary=b\r\nExpect: 100-continue\r\n' +
        `Content-Length: ${body.length}\r\n\r\n`,
    );
    expect(await continued).to.match(/^HTTP\/1\.1 100 Continue\r\n/);
    socket.write(body);
    const answer = parseRawAnswer((await closed).replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, ''));
    expect(answer.status, answer.body).to.equal(200);
    expect(await storedPoints(db, server, device, 'cont')).to.have.length(1);
  });

  it('closes a TLS connection that sends no request, and a TCP one that never starts TLS', async () => {
    // What closes them is read from the server (its answer, its log), not from the clock.
    const idleTls = await connectRaw(server, newDevice());
    const tlsAnswer = parseRawAnswer(await readUntilClosed(idleTls));
    expect(tlsAnswer.status, tlsAnswer.head).to.equal(408);
    expect(tlsAnswer.json?.code).to.equal('request_timeout');
    expect(tlsAnswer.json?.error).to.equal('no request within 1500 ms of connecting');
    expectSecurityHeaders(tlsAnswer.head);

    const handshakeTimeouts = () => server.output().split('TLS handshake timeout').length - 1;
    const before = handshakeTimeouts();
    const tcp = net.connect(server.port, '127.0.0.1');
    let closed = false;
    tcp.on('error', () => undefined);
    tcp.once('close', () => (closed = true));
    // Node's own handshake timeout is 120 s: a guard well under it.
    await waitFor(
      'the server to close a TCP connection that never starts TLS',
      () => closed,
      60_000,
    );
    await waitFor(
      'the handshake timeout in the server log (debug)',
      () => handshakeTimeouts() > before,
    );
  });

  it('holds at most FLEETGATE_MAX_CONNECTIONS connections, and serves again once they are gone', async () => {
    const idle: net.Socket[] = [];
    for (let i = 0; i < 40; i++) {
      const socket = net.connect(server.port, '127.0.0.1');
      socket.on('error', () => undefined);
      idle.push(socket);
    }
    await Promise.all(idle.map((s) => new Promise((resolve) => s.once('connect', resolve))));
    // The server may take a moment to count the 40 it accepted: until then a 41st
    // still gets in (and leaves again). It must be refused once they are counted.
    await waitFor(
      'a 41st connection to be refused',
      async () => !(await tlsConnects(server)),
      10_000,
    );
    for (const socket of idle) socket.destroy();
    await waitFor('a new connection to be served again', () => tlsConnects(server), 10_000);
    const { client } = await boundClient();
    expect((await client.send('GET')).status).to.equal(200);
  });
});

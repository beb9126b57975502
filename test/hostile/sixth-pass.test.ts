import { expect } from 'chai';
import net from 'node:net';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeviceClient } from '../support/device-client.js';
import { uniqueName, useFixture } from '../support/fixture.js';
import { countStoredPoints } from '../support/stored-points.js';

/**
 * Findings of the sixth adversarial pass (docs/security-review-2026-12.md,
 * "Sixth pass"): the lingering close (src/http/lingering-close.ts).
 */
describe('sixth pass: the lingering close', function () {
  this.timeout(60_000);
  const fx = useFixture();

  /** A TLS connection without a client certificate, our side kept open when the server ends its own. */
  async function connect() {
    const socket = tls.connect({
      host: '127.0.0.1',
      port: fx().server.port,
      ca: fx().server.caPem,
      servername: 'localhost',
      allowHalfOpen: true,
    } as tls.ConnectionOptions);
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    const closed = new Promise<string>((resolve) => {
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      socket.once('close', () => resolve('close'));
    });
    const ended = new Promise<void>((resolve) => socket.once('end', resolve));
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    return { socket, received: () => received, closed, ended };
  }

  const refusedUpload =
    'POST /device_endpoint HTTP/1.1\r\nHost: localhost\r\n' +
    'Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000000\r\n\r\n';

  // Nobody had read the body when the 401 went out, so Node "dumped" it: the
  // parser dropped its bytes before they reached the lingering reader, which
  // then counted none, closed 2 s after the answer however fast the client
  // went on sending, and never applied its 16 MiB limit.
  it('goes on reading a body that keeps coming after the answer, past the idle limit', async () => {
    const c = await connect();
    c.socket.write(refusedUpload + 'x'.repeat(1000));
    await c.ended;
    expect(c.received()).to.match(/^HTTP\/1\.1 401 /);
    let outcome = 'open';
    void c.closed.then((o) => (outcome = o));
    const t0 = Date.now();
    // A byte every 250 ms: never 2 s (LINGER_IDLE_MS) without one.
    while (outcome === 'open' && Date.now() - t0 < 3_500) {
      c.socket.write('x');
      await sleep(250);
    }
    const openFor = Date.now() - t0;
    c.socket.destroy();
    expect(openFor, `reset after ${openFor} ms (${outcome})`).to.be.at.least(3_500);
  });

  it('goes on reading such a body on the admin listener too', async () => {
    const url = new URL(fx().server.adminUrl);
    const socket = net.connect({ port: Number(url.port), host: url.hostname, allowHalfOpen: true });
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    let outcome = 'open';
    socket.once('error', (err: NodeJS.ErrnoException) => (outcome = err.code ?? err.message));
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(
      'POST /nowhere HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n' +
        'Content-Length: 100000000\r\n\r\n' +
        'x'.repeat(1000),
    );
    await new Promise((resolve) => socket.once('end', resolve));
    expect(received).to.match(/^HTTP\/1\.1 401 /);
    const t0 = Date.now();
    while (outcome === 'open' && Date.now() - t0 < 3_500) {
      socket.write('x');
      await sleep(250);
    }
    const openFor = Date.now() - t0;
    socket.destroy();
    expect(openFor, `reset after ${openFor} ms (${outcome})`).to.be.at.least(3_500);
  });

  it('closes a connection that sends more than 16 MiB after the answer', async () => {
    const c = await connect();
    c.socket.write(refusedUpload + 'x'.repeat(1000));
    await c.ended;
    let outcome = 'open';
    void c.closed.then((o) => (outcome = o));
    const mib = Buffer.alloc(1024 * 1024, 'x');
    let sent = 0;
    const t0 = Date.now();
    while (outcome === 'open' && sent < 40 && Date.now() - t0 < 4_000) {
      if (!c.socket.write(mib)) {
        await Promise.race([new Promise((resolve) => c.socket.once('drain', resolve)), c.closed]);
      }
      sent++;
    }
    await sleep(500);
    c.socket.destroy();
    // Closed near 16 MiB: the bytes still in flight when it closed are a few MiB at most.
    expect(sent, `${sent} MiB sent in ${Date.now() - t0} ms (${outcome})`).to.be.below(30);
    expect(outcome).to.be.oneOf(['ECONNRESET', 'EPIPE']);
  });
});

describe('sixth pass: small uploads retried after a deadlock', function () {
  this.timeout(120_000);
  const fx = useFixture({
    FLEETGATE_UPLOADS_PER_DEVICE: '1000000',
    FLEETGATE_MAX_CONCURRENT_UPLOADS_PER_DEVICE: '1000',
  });

  it('count every point of every answer once, as stored or duplicate, against the rows stored', async () => {
    const { device } = await fx().boundDevice(uniqueName('sixth-retry'));
    const client = new DeviceClient(fx().server, device, 24);
    const base = Date.now() - 60_000;
    try {
      // 120 uploads of three readings each, overlapping: upload i carries base+i%8 .. base+i%8+2.
      const answers = await Promise.all(
        Array.from({ length: 120 }, (_, i) => {
          const rows = [0, 1, 2].map((k) => `${base + (i % 8) + k},${k}\n`).join('');
          return client.upload([{ name: 's', content: rows }]);
        }),
      );
      expect(answers.filter((a) => a.status !== 200).map((a) => a.text)).to.deep.equal([]);
      for (const a of answers) {
        expect((a.json.stored as number) + (a.json.duplicates as number), a.text).to.equal(3);
      }
      const stored = answers.reduce((n, a) => n + (a.json.stored as number), 0);
      expect(stored).to.equal(10);
      expect(await countStoredPoints(fx().db, fx().server, device, ['s'])).to.equal(10);
    } finally {
      await client.close();
    }
  });
});

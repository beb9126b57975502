import { expect } from 'chai';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { useFixture } from '../support/fixture.js';

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

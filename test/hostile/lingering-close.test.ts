import { expect } from 'chai';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildMultipart, DeviceClient, newDevice, type Answer } from '../support/device-client.js';
import { gate, gatedBody } from '../support/concurrency.js';
import { useFixture } from '../support/fixture.js';

/**
 * An answer sent before the request's body was read (here 403: the device is
 * not bound) reaches a client that is still sending its body: the server
 * reads and drops the rest for a bounded time before it closes (a lingering
 * close, src/http/lingering-close.ts). Before, it closed at once, and the
 * client, still writing, got EPIPE instead of the answer (7 of 10 times).
 */
describe('an answer sent before the body was read', function () {
  this.timeout(120_000);
  const fx = useFixture();

  it('reaches a client that goes on sending a 4 MB body after it', async () => {
    const client = new DeviceClient(fx().server, newDevice());
    try {
      const results: string[] = [];
      for (let i = 0; i < 10; i++) {
        const { body, contentType } = buildMultipart([
          { name: 't', content: 'x'.repeat(4 * 1024 * 1024) },
        ]);
        const rest = gate();
        const sent = client
          .send('POST', gatedBody(body, rest.opened, () => {}, 1024) as unknown as Buffer, {
            'content-type': contentType,
          })
          .then(
            (a: Answer) => `${a.status} ${String(a.json.code)}`,
            (err: Error) => `error ${err.message}`,
          );
        // The rest of the body goes out just as the answer comes, a little before or after.
        await sleep([0, 5, 30][i % 3]!);
        rest.open();
        results.push(await sent);
      }
      expect(results).to.deep.equal(Array(10).fill('403 certificate_not_bound'));
    } finally {
      await client.close();
    }
  });

  it('closes the connection of a client that stops sending after the answer, within seconds', async () => {
    const device = newDevice();
    const socket = tls.connect({
      host: '127.0.0.1',
      port: fx().server.port,
      ca: fx().server.caPem,
      servername: 'localhost',
      cert: device.certPem,
      key: device.keyPem,
      // Our side stays open when the server ends its own: the server must close it.
      allowHalfOpen: true,
    } as tls.ConnectionOptions);
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    const failed = new Promise<string>((resolve) =>
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message)),
    );
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    socket.write(
      'POST /device_endpoint HTTP/1.1\r\nHost: localhost\r\n' +
        'Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000000\r\n\r\n' +
        'x'.repeat(1000),
    );
    await new Promise((resolve) => socket.once('end', resolve));
    expect(answer).to.match(/^HTTP\/1\.1 403 /);
    expect(answer).to.match(/\r\nconnection: close\r\n/i);
    // Past LINGER_IDLE_MS (2 s) without a byte the server has closed: what is sent now
    // is answered with a reset. While it lingers, the same bytes would be read.
    await sleep(4_000);
    for (let i = 0; i < 20 && socket.writable; i++) {
      socket.write('x'.repeat(1024));
      await sleep(250);
    }
    expect(await Promise.race([failed, sleep(10_000).then(() => 'still open')])).to.be.oneOf([
      'ECONNRESET',
      'EPIPE',
    ]);
    socket.destroy();
  });
});

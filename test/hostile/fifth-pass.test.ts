import type { Socket } from 'node:net';
import { expect } from 'chai';
import tls from 'node:tls';
import { overMutualTls, rawRequest, type RawAnswer } from '../proxy/raw-http.js';
import { useFixture } from '../support/fixture.js';

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

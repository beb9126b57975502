import type { Socket } from 'node:net';
import { expect } from 'chai';
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
});

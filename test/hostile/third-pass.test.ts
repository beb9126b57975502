import type { Socket } from 'node:net';
import { expect } from 'chai';
import { DeviceClient, type Answer } from '../support/device-client.js';
import { openSocket, openWatchedSocket } from '../support/websocket-client.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import { fixtureEndpoint, useDevicePki } from '../support/device-pki.js';
import { countStoredPoints } from '../support/stored-points.js';

const T0 = 1_764_500_000_000;
const ID = 'i'.repeat(120);

/** Resolves once `read()` gave the same value twice, 1.5 s apart (the peer stopped moving). */
async function settled(read: () => number | Promise<number>): Promise<number> {
  let last = -1;
  for (let waited = 0; waited < 90_000; waited += 1500) {
    const now = await read();
    if (now === last) return now;
    last = now;
    await new Promise((resolve) => setTimeout(resolve, 1500));
  }
  return last;
}

/**
 * Findings of the third adversarial pass (docs/security-review-2026-12.md,
 * "Third pass"): each case failed before its fix.
 */
describe('third pass: WebSocket channel', function () {
  this.timeout(180_000);
  const fx = useFixture({
    FLEETGATE_WS_PING_INTERVAL_MS: '600000',
    FLEETGATE_UPLOADS_PER_DEVICE: '1000000',
  });

  it('stops reading a socket whose device sends frames and never reads the answers (bounded write buffer)', async () => {
    const { device } = await fx().boundDevice(uniqueName('ws-deaf'));
    const ws = await openSocket(fx(), device);
    // The device never reads: every answer the server writes stays with the server
    // once the kernel's buffers are full.
    const socket = (ws as unknown as { _socket: Socket })._socket;
    socket.pause();
    let answers = 0;
    ws.on('message', () => (answers += 1));
    // 400,000 frames; each is refused before any database work (no "type"), and
    // its answer (~220 bytes) is larger than the frame. Every 100th one is a real
    // message: the points stored tell how many frames the server handled.
    const frames = 400_000;
    const every = 100;
    const frame = (i: number) =>
      i % every === 0
        ? JSON.stringify({ type: 'message', id: ID, ts: T0 + i, data: { deaf: i } })
        : JSON.stringify({ id: ID });
    let written = 0;
    let failed = false;
    const sendFrom = (start: number) => {
      const end = Math.min(start + 1000, frames);
      for (let i = start; i < end; i += 1) {
        ws.send(frame(i), (err) => {
          if (err) failed = true;
          else written += 1;
          if (i === end - 1 && !err) sendFrom(end);
        });
      }
    };
    try {
      sendFrom(0);
      await settled(() => written);
      const handled = await settled(() =>
        countStoredPoints(fx().db, fx().server, device, ['deaf']),
      );
      // Before the fix the server read every frame and buffered all ~88 MB of answers.
      expect(handled, 'real messages handled while the device read nothing').to.be.lessThan(
        frames / every / 4,
      );
      expect(failed).to.equal(false);
      // The device reads again: the server resumes, and every frame is answered and stored.
      socket.resume();
      await settled(() => answers);
      expect(answers).to.equal(frames);
      expect(await countStoredPoints(fx().db, fx().server, device, ['deaf'])).to.equal(
        frames / every,
      );
    } finally {
      ws.terminate();
    }
  });
});

describe('third pass: messages without ts', function () {
  this.timeout(120_000);
  const fx = useFixture({ FLEETGATE_UPLOADS_PER_DEVICE: '1000000' });

  it('stores every reading of concurrent requests without ts, none kept as a "duplicate" of another one sent in the same millisecond', async () => {
    const { device } = await fx().boundDevice(uniqueName('nots-burst'));
    const client = new DeviceClient(fx().server, device, 16);
    const post = (body: unknown) =>
      client.send(
        'POST',
        JSON.stringify(body),
        { 'content-type': 'application/json' },
        '/device_endpoint/messages',
      );
    /** A 503 conflict_retry (two uploads of one device deadlocked) is to be retried, as documented. */
    const stored = async (body: unknown): Promise<Answer> => {
      for (;;) {
        const answer = await post(body);
        if (answer.status !== 503) return answer;
        expect(answer.json.code, answer.text).to.equal('conflict_retry');
      }
    };
    try {
      // Open all 16 connections first, so the burst's requests arrive together.
      await Promise.all(
        Array.from({ length: 16 }, (_, i) => stored({ ts: T0 + i, data: { warm: i } })),
      );
      const readings = 3 * 64;
      for (let round = 0; round < 3; round += 1) {
        const answers = await Promise.all(
          Array.from({ length: 64 }, (_, i) => stored({ data: { burst: round * 64 + i } })),
        );
        for (const answer of answers) {
          expect(answer.status, answer.text).to.equal(200);
          // Before the fix, requests handled in the same millisecond shared the server's
          // time and all but one answered 200 {"stored":0,"duplicates":1}: readings lost.
          expect(answer.json, answer.text).to.include({ stored: 1, duplicates: 0 });
        }
      }
      expect(await countStoredPoints(fx().db, fx().server, device, ['burst'])).to.equal(readings);
    } finally {
      await client.close();
    }
  });
});

describe('third pass: WebSocket revocation', function () {
  this.timeout(60_000);
  const fx = useFixture({ FLEETGATE_WS_REVOCATION_POLL_MS: '100' });
  const ca = useDevicePki(fixtureEndpoint(() => fx().server));

  it('closes the socket of a CA-enrolled device once its CA’s CRL revokes its certificate (1008)', async () => {
    // Every message re-checks the certificate, but the poll looked only at devices
    // revoked or of disabled identities: the socket stayed open until its next message.
    const { identity, root } = await ca.trustedRoot('crl-ws');
    const device = `${identity}-dev`;
    ca.pki.issue(device, root, { cn: 'sensor-crl' });
    const enrolled = await ca.enroll(device, []);
    expect(enrolled.status, enrolled.text).to.equal(200);
    const { closed } = await openWatchedSocket(fx().server, ca.pems(device));
    ca.pki.revoke(device, root);
    await ca.ok(['ca', 'crl', identity, ca.pki.crl(root)]);
    // Before the fix this never came (the test timed out), and no message was sent.
    // The CRL load sends the news of the refused certificates: closed at once, by news.
    expect(await closed).to.deep.equal({ code: 1008, reason: 'certificate_refused' });
  });
});

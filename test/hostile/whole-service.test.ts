import { expect } from 'chai';
import { openSocket } from '../support/websocket-client.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import { connectRaw, parseRawAnswer, readUntilClosed } from '../support/raw-tls.js';
import { skipBecause } from '../support/skip.js';
import { countStoredPoints } from '../support/stored-points.js';
import pg from 'pg';

const T0 = 1_764_500_000_000;
const FIRST_REQUEST_MS = 400;

/**
 * Findings of the whole-service adversarial review (docs/security-review-2026-12.md):
 * each case failed on main before its fix.
 */
describe('whole-service review: WebSocket channel', () => {
  const fx = useFixture({
    FLEETGATE_FIRST_REQUEST_TIMEOUT_MS: String(FIRST_REQUEST_MS),
    FLEETGATE_WS_PING_INTERVAL_MS: '60000',
  });

  it('stops reading a flooding socket while its messages wait for the database (backpressure)', async function () {
    if (!fx().db.url) {
      skipBecause(this, 'blocks the device row from a second PostgreSQL session');
    }
    this.timeout(120_000);
    const { device } = await fx().boundDevice(uniqueName('ws-flood'));
    const ws = await openSocket(fx(), device);
    const frames = 120;
    const acks: number[] = [];
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data));
      if (frame.type === 'ack') acks.push(frame.stored);
    });
    try {
      const client = new pg.Client({ connectionString: fx().db.url });
      await client.connect();
      try {
        await client.query('begin');
        // Every message's transaction waits on this row (touchLastSeen, series creation).
        await client.query(
          `select d.id from devices d join device_certificates c on c.device_id = d.id
            where c.fingerprint = $1 for update of d`,
          [device.fingerprint],
        );
        // One frame after the other, each once the previous one was handed to
        // the kernel: `written` counts the frames the server let through.
        let written = 0;
        const sendNext = (i: number) => {
          if (i >= frames) return;
          const message = JSON.stringify({
            type: 'message',
            id: i,
            ts: T0 + i,
            data: { flood: i },
          });
          ws.send(`${message.slice(0, -1)}${' '.repeat(1_000_000)}}`, (err) => {
            if (err) return;
            written += 1;
            sendNext(i + 1);
          });
        };
        sendNext(0);
        // Wait until the server stops taking frames: before the fix it read (and
        // kept in memory) every one of them; now it pauses after a bounded queue
        // (plus what the kernel's socket buffers hold).
        let last = -1;
        for (let waited = 0; waited < 60_000 && written !== last; waited += 1500) {
          last = written;
          await new Promise((resolve) => setTimeout(resolve, 1500));
        }
        expect(written, 'frames the server read while the database was busy').to.be.lessThan(
          frames / 2,
        );
        expect(acks).to.deep.equal([]);
        await client.query('rollback');
      } finally {
        await client.end();
      }
      // Released: every message is stored and acknowledged, in order.
      for (let waited = 0; acks.length < frames && waited < 90_000; waited += 200) {
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(acks).to.have.length(frames);
      expect(await countStoredPoints(fx().db, fx().server, device, ['flood'])).to.equal(frames);
    } finally {
      ws.terminate();
    }
  });

  it('keeps an open socket past FLEETGATE_FIRST_REQUEST_TIMEOUT_MS and still acknowledges', async () => {
    const { device } = await fx().boundDevice(uniqueName('ws-idle'));
    const ws = await openSocket(fx(), device);
    const events: string[] = [];
    ws.on('error', (err) => events.push(`error: ${err.message}`));
    ws.on('close', (code) => events.push(`close ${code}`));
    try {
      // Before the fix the first-request timer wrote "HTTP/1.1 408 ..." into the
      // upgraded socket (a broken frame) and closed it after this delay.
      await new Promise((resolve) => setTimeout(resolve, FIRST_REQUEST_MS * 4));
      expect(events).to.deep.equal([]);
      const ack = await new Promise<Record<string, unknown>>((resolve, reject) => {
        ws.once('message', (data) => resolve(JSON.parse(String(data))));
        ws.once('close', () => reject(new Error(`closed: ${events.join(', ')}`)));
        ws.send(JSON.stringify({ type: 'message', id: 'late', ts: T0, data: { idle: 1 } }));
      });
      expect(ack).to.deep.equal({ type: 'ack', id: 'late', stored: 1, duplicates: 0 });
      expect(await countStoredPoints(fx().db, fx().server, device, ['idle'])).to.equal(1);
    } finally {
      ws.terminate();
    }
  });
});

describe('whole-service review: JSON messages', () => {
  const fx = useFixture();

  it('refuses a key given twice in one object instead of storing only the last value', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('dup-keys'));
    const bodies = [
      // JSON.parse keeps the last of two equal keys: "a": 1 was dropped with a 200.
      `{"ts": ${T0}, "data": {"a": 1, "a": 2}}`,
      `{"ts": ${T0}, "data": {"a": 1, "\\u0061": 2}}`,
      `{"ts": ${T0}, "data": {"a": 1}, "data": {"b": 2}}`,
      `[{"ts": ${T0}, "data": {"c": 1}}, {"ts": ${T0 + 1}, "ts": ${T0 + 2}, "data": {"c": 2}}]`,
    ];
    for (const body of bodies) {
      const answer = await client.send(
        'POST',
        body,
        { 'content-type': 'application/json' },
        '/device_endpoint/messages',
      );
      expect(answer.status, body).to.equal(400);
      expect(answer.json.code, body).to.equal('invalid_message');
    }
    expect(await countStoredPoints(fx().db, fx().server, device, ['a', 'b', 'c'])).to.equal(0);
    // Equal keys in different objects are fine.
    const ok = await client.send(
      'POST',
      `[{"ts": ${T0}, "data": {"a": 1, "b": 2}}, {"ts": ${T0 + 1}, "data": {"a": 3, "b": 4}}]`,
      { 'content-type': 'application/json' },
      '/device_endpoint/messages',
    );
    expect(ok.status, ok.text).to.equal(200);
    expect(ok.json.stored).to.equal(4);
  });

  it('refuses a WebSocket message with a key given twice, with an error frame', async () => {
    const { device } = await fx().boundDevice(uniqueName('dup-keys-ws'));
    const ws = await openSocket(fx(), device);
    try {
      const frame = await new Promise<Record<string, unknown>>((resolve) => {
        ws.once('message', (data) => resolve(JSON.parse(String(data))));
        ws.send(`{"type": "message", "id": "d", "ts": ${T0}, "data": {"w": 1, "w": 2}}`);
      });
      expect(frame).to.include({ type: 'error', id: 'd', code: 'invalid_message' });
      expect(await countStoredPoints(fx().db, fx().server, device, ['w'])).to.equal(0);
    } finally {
      ws.terminate();
    }
  });
});

describe('whole-service review: the rotation completion body', () => {
  const fx = useFixture({
    FLEETGATE_BODY_IDLE_TIMEOUT_MS: '1000',
    FLEETGATE_FIRST_REQUEST_TIMEOUT_MS: '60000',
  });

  it('cuts a stalled rotate/complete body with 408 body_timeout, like every other body', async function () {
    this.timeout(60_000);
    const { device } = await fx().boundDevice(uniqueName('stall-complete'));
    const socket = await connectRaw(fx().server, device);
    const closed = readUntilClosed(socket);
    // Headers and the start of a body, then nothing: before the fix the
    // connection was held until FLEETGATE_REQUEST_TIMEOUT_MS (15 min).
    socket.write(
      'POST /device_endpoint/rotate/complete HTTP/1.1\r\nHost: localhost\r\n' +
        'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"completionSecret"',
    );
    const timer = setTimeout(() => socket.destroy(), 15_000);
    const answer = parseRawAnswer(await closed);
    clearTimeout(timer);
    expect(answer.status, answer.head || 'no answer within 15 s').to.equal(408);
    expect(answer.json.code).to.equal('body_timeout');
  });
});

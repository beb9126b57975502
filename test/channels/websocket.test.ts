import { skipBecause } from '../support/skip.js';
import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import tls from 'node:tls';
import WebSocket from 'ws';
import { newDevice, type TestDevice } from '../support/device-client.js';
import { REPO_ROOT } from '../support/fleetgate-process.js';
import { useFixture, uniqueName, type Fixture } from '../support/fixture.js';
import { readmeBlock, runReadmeScript, shownLines, writeFiles } from '../support/readme-block.js';
import { countStoredPoints, storedPoints } from '../support/stored-points.js';

const T0 = 1_764_500_000_000;
const PING_MS = 300;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- frames are arbitrary JSON
type Frame = any;

/** A device's WebSocket, with its frames queued for the test to take in order. */
class DeviceSocket {
  private readonly frames: Frame[] = [];
  private waiting: ((frame: Frame) => void) | undefined;
  readonly closed: Promise<{ code: number; reason: string; at: number }>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data));
      const wake = this.waiting;
      this.waiting = undefined;
      if (wake) wake(frame);
      else this.frames.push(frame);
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => resolve({ code, reason: String(reason), at: Date.now() })),
    );
  }

  next(timeoutMs = 10_000): Promise<Frame> {
    const queued = this.frames.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no frame in time')), timeoutMs);
      this.waiting = (frame) => {
        clearTimeout(timer);
        resolve(frame);
      };
    });
  }

  async send(message: unknown): Promise<Frame> {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
    return this.next();
  }
}

function wsUrl(fx: Fixture) {
  return `${fx.server.baseUrl.replace(/^https/, 'wss')}/device_endpoint/ws`;
}

function connect(
  fx: Fixture,
  device: TestDevice | null,
  options: WebSocket.ClientOptions = {},
  path = '/device_endpoint/ws',
): Promise<DeviceSocket> {
  const ws = new WebSocket(wsUrl(fx).replace('/device_endpoint/ws', path), {
    ca: fx.server.caPem,
    ...(device ? { cert: device.certPem, key: device.keyPem } : {}),
    ...options,
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(new DeviceSocket(ws)));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk));
      res.on('end', () =>
        reject(
          Object.assign(new Error(`refused ${res.statusCode}`), { status: res.statusCode, body }),
        ),
      );
    });
  });
}

async function refusal(promise: Promise<unknown>): Promise<{ status: number; code: string }> {
  try {
    await promise;
  } catch (err) {
    const { status, body } = err as { status: number; body: string };
    return { status, code: JSON.parse(body).code };
  }
  throw new Error('the upgrade was accepted');
}

/** Issue 13: the WebSocket channel, over mTLS on the device port. */
describe('WebSocket device channel', () => {
  const fx = useFixture({
    FLEETGATE_WS_PING_INTERVAL_MS: String(PING_MS),
    FLEETGATE_WS_MAX_CONNECTIONS_PER_DEVICE: '2',
  });
  const sockets: DeviceSocket[] = [];
  const open = async (device: TestDevice | null, options: WebSocket.ClientOptions = {}) => {
    const socket = await connect(fx(), device, options);
    sockets.push(socket);
    return socket;
  };
  afterEach(() => {
    for (const socket of sockets.splice(0)) socket.ws.terminate();
  });

  it('acknowledges a message once its points are committed', async () => {
    const { device } = await fx().boundDevice(uniqueName('ack'));
    const socket = await open(device);
    const ack = await socket.send({
      type: 'message',
      id: 'm-1',
      ts: T0,
      data: { temperature: 21.5, humidity: 40 },
    });
    expect(ack).to.deep.equal({ type: 'ack', id: 'm-1', stored: 2, duplicates: 0 });
    // Read at once, by another connection: visible, so committed before the ack.
    expect(await storedPoints(fx().db, fx().server, device, 'temperature')).to.deep.equal([
      [T0, 21.5],
    ]);
  });

  it('sends no ack while the commit cannot happen (PostgreSQL)', async function () {
    if (!fx().db.url)
      skipBecause(
        this,
        'holds a table lock from a second PostgreSQL session; the embedded database has one',
      );
    const { device } = await fx().boundDevice(uniqueName('held'));
    const socket = await open(device);
    expect((await socket.send({ type: 'message', id: 1, ts: T0, data: { s: 1 } })).type).to.equal(
      'ack',
    );
    const blocker = new pg.Client({ connectionString: fx().db.url });
    await blocker.connect();
    try {
      await blocker.query('begin');
      await blocker.query('lock table series in access exclusive mode');
      socket.ws.send(JSON.stringify({ type: 'message', id: 2, ts: T0 + 1, data: { s: 2 } }));
      let early: unknown;
      await socket.next(1500).then(
        (frame) => (early = frame),
        () => undefined,
      );
      expect(early, 'no ack while the series table is locked').to.equal(undefined);
      await blocker.query('rollback');
      expect(await socket.next()).to.deep.equal({ type: 'ack', id: 2, stored: 1, duplicates: 0 });
    } finally {
      await blocker.end();
    }
  });

  it('stores nothing twice when a message is sent again', async () => {
    const { device } = await fx().boundDevice(uniqueName('dup'));
    const socket = await open(device);
    const message = { type: 'message', id: 'x', ts: T0, data: { a: 1, b: 2 } };
    expect(await socket.send(message)).to.include({ stored: 2, duplicates: 0 });
    expect(await socket.send(message)).to.deep.equal({
      type: 'ack',
      id: 'x',
      stored: 0,
      duplicates: 2,
    });
    expect(await countStoredPoints(fx().db, fx().server, device, ['a', 'b'])).to.equal(2);
  });

  it('answers a bad message with a typed error, stores nothing and stays open', async () => {
    const { device } = await fx().boundDevice(uniqueName('bad'));
    const socket = await open(device);
    const cases: Array<[unknown, string | number | null, string]> = [
      ['not json', null, 'invalid_json'],
      [[1, 2], null, 'invalid_message'],
      [{ type: 'message', ts: T0, data: { s: 1 } }, null, 'invalid_message'],
      [{ type: 'hello', id: 'h', ts: T0, data: { s: 1 } }, 'h', 'invalid_message'],
      [{ type: 'message', id: 'v', ts: T0, data: { s: 'warm' } }, 'v', 'invalid_value'],
      [{ type: 'message', id: 'n', ts: T0, data: { 'no good': 1 } }, 'n', 'invalid_series_name'],
      [{ type: 'message', id: 't', ts: 1_764_500_000, data: { s: 1 } }, 't', 'invalid_timestamp'],
      [{ type: 'message', id: 'd', ts: T0 }, 'd', 'invalid_message'],
    ];
    for (const [message, id, code] of cases) {
      const answer = await socket.send(message);
      expect(answer, JSON.stringify(message)).to.include({ type: 'error', code });
      expect(answer.id).to.equal(id);
      expect(answer.error).to.be.a('string').and.not.equal('');
    }
    expect(await countStoredPoints(fx().db, fx().server, device, ['s'])).to.equal(0);
    expect(await socket.send({ type: 'message', id: 'ok', ts: T0, data: { s: 1 } })).to.include({
      type: 'ack',
      stored: 1,
    });
  });

  it('refuses an unbound certificate (403), none (401) and another path (404) at the upgrade', async () => {
    expect(await refusal(connect(fx(), newDevice()))).to.deep.equal({
      status: 403,
      code: 'certificate_not_bound',
    });
    expect(await refusal(connect(fx(), null))).to.deep.equal({
      status: 401,
      code: 'no_client_certificate',
    });
    const { device } = await fx().boundDevice(uniqueName('path'));
    expect(await refusal(connect(fx(), device, {}, '/device_endpoint/other'))).to.deep.equal({
      status: 404,
      code: 'not_found',
    });
  });

  it('limits the connections of one device', async () => {
    const { device } = await fx().boundDevice(uniqueName('limit'));
    const first = await open(device);
    await open(device);
    expect(await refusal(connect(fx(), device))).to.deep.equal({
      status: 429,
      code: 'too_many_connections',
    });
    first.ws.close();
    await first.closed;
    await new Promise((resolve) => setTimeout(resolve, 100));
    const again = await open(device);
    expect(await again.send({ type: 'message', id: 1, ts: T0, data: { s: 1 } })).to.include({
      type: 'ack',
    });
  });

  it('gives back the connection slot of a handshake that ws refused', async () => {
    const { device } = await fx().boundDevice(uniqueName('slot'));
    // Authenticated, then refused by ws itself (an unknown protocol version): three times,
    // more than the limit of 2; none of them may keep a slot.
    for (let i = 0; i < 3; i++) {
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = tls.connect({
          port: fx().server.port,
          host: 'localhost',
          ca: fx().server.caPem,
          cert: device.certPem,
          key: device.keyPem,
        });
        let text = '';
        socket.on('data', (chunk) => (text += chunk));
        socket.on('close', () => resolve(text));
        socket.on('error', reject);
        socket.write(
          'GET /device_endpoint/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n' +
            'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
            'Sec-WebSocket-Version: 99\r\n\r\n',
        );
      });
      expect(answer).to.match(/^HTTP\/1\.1 400/);
    }
    const socket = await open(device);
    expect(await socket.send({ type: 'message', id: 1, ts: T0, data: { s: 1 } })).to.include({
      type: 'ack',
    });
  });

  it('pings, and closes a connection that stops answering pings', async () => {
    const { device } = await fx().boundDevice(uniqueName('ping'));
    const alive = await open(device);
    let pings = 0;
    alive.ws.on('ping', () => pings++);
    const dead = await open(device, { autoPong: false });
    const result = await Promise.race([
      dead.closed,
      new Promise((resolve) => setTimeout(() => resolve('still open'), PING_MS * 10)),
    ]);
    expect(result).to.not.equal('still open');
    expect(pings).to.be.greaterThan(0);
    expect(alive.ws.readyState).to.equal(WebSocket.OPEN);
  });

  it('closes the sockets of a revoked device within a second, and refuses it afterwards', async () => {
    const { device } = await fx().boundDevice(uniqueName('revoke'));
    const socket = await open(device);
    expect((await socket.send({ type: 'message', id: 1, ts: T0, data: { s: 1 } })).type).to.equal(
      'ack',
    );
    // The CLI: another process on PostgreSQL (seen by the poll), the server itself on
    // the embedded database (the in-process event).
    const revoke = fx().server.cli(['device', 'revoke', device.fingerprint]);
    const result = await revoke;
    const revokedAt = Date.now();
    expect(result.code, result.stderr).to.equal(0);
    const closed = await Promise.race([
      socket.closed,
      new Promise<null>((resolve) => setTimeout(() => resolve(null), 3000)),
    ]);
    expect(closed, 'closed').to.not.equal(null);
    expect(closed!.code).to.equal(1008);
    expect(closed!.at - revokedAt).to.be.below(1000);
    expect(await refusal(connect(fx(), device))).to.deep.equal({
      status: 403,
      code: 'device_revoked',
    });
    expect(await countStoredPoints(fx().db, fx().server, device, ['s'])).to.equal(1);
  });

  it('works verbatim with the README example (node and ws)', async () => {
    const { device } = await fx().boundDevice(uniqueName('readme'));
    const block = readmeBlock({ startingWith: 'node --input-type=module' });
    const expected = shownLines(block, /^\{"type":"ack".*\}$/)[0];
    expect(expected, 'the answer the README shows').to.be.a('string');
    const script = block.replace('wss://localhost:8443', `wss://localhost:${fx().server.port}`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fg-ws-readme-'));
    writeFiles(dir, {
      'certs/dev-ca.crt': fx().server.caPem,
      'device.crt': device.certPem,
      'device.key': device.keyPem,
    });
    fs.symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'node_modules'));
    try {
      const { code, stdout, stderr } = await runReadmeScript(script, {
        cwd: dir,
        timeoutMs: 20_000,
      });
      expect(code, stderr).to.equal(0);
      expect(stdout.trim()).to.equal(expected);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

import { expect } from 'chai';
import { DeviceClient, newDevice, type TestDevice } from '../support/device-client.js';
import { startFleetgate, type FleetgateProcess } from '../support/fleetgate-process.js';
import {
  connectRaw,
  expectSecurityHeaders,
  parseRawAnswer,
  rawRequest,
  readUntilClosed,
} from '../support/raw-tls.js';
import {
  bindDevice,
  expectJsonError,
  expectServerUp,
  storedPoints,
} from '../support/stored-points.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';

/**
 * The pace of a deliberately slow client (what these tests are about), not a
 * wait for progress: the loops below stop as soon as the server closes.
 */
const pace = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('hostile requests', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let server: FleetgateProcess;
  let device: TestDevice;
  let client: DeviceClient;
  let stranger: DeviceClient;

  before(async () => {
    db = await createTestDatabase({ migrated: true });
    server = await startFleetgate(db, {
      FLEETGATE_HEADERS_TIMEOUT_MS: '2000',
      FLEETGATE_REQUEST_TIMEOUT_MS: '4000',
      FLEETGATE_BIND_FAILURES_PER_ADDRESS: '0',
      FLEETGATE_BIND_FAILURES_PER_CERTIFICATE: '0',
    });
    device = newDevice();
    client = new DeviceClient(server, device);
    await bindDevice(server, client);
    stranger = new DeviceClient(server, newDevice());
  });
  after(async () => {
    await client?.close();
    await stranger?.close();
    await server?.stop();
    await db?.drop();
  });
  afterEach(() => expectServerUp(server, client));

  it('answers wrong methods with 405 and Allow', async () => {
    // GET is the device's status query (issue 3); every other method is refused.
    for (const method of ['PUT', 'DELETE', 'PATCH'] as const) {
      const answer = await client.send(method);
      expectJsonError(answer, 405, 'method_not_allowed');
      expect(answer.headers.allow).to.equal('GET, POST');
    }
    const unknown = await rawRequest(
      server,
      device,
      'BREW /device_endpoint HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
    );
    expect(unknown.status).to.equal(400);
    expect(unknown.json.code).to.equal('malformed_request');
  });

  it('answers unknown and undecodable paths with JSON 4xx', async () => {
    expectJsonError(await client.send('POST', '{}', {}, '/nope'), 404, 'not_found');
    expectJsonError(
      await client.send('GET', undefined, {}, '/device_endpoint/../etc/passwd'),
      404,
      'not_found',
    );
    const garbage = await rawRequest(
      server,
      device,
      'GET /%zz%00 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
    );
    expect(garbage.status).to.be.within(400, 499);
    expect(garbage.json?.code).to.be.a('string');
  });

  it('answers huge headers with 431 JSON', async () => {
    const answer = await rawRequest(
      server,
      device,
      `POST /device_endpoint HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`,
    );
    expect(answer.status).to.equal(431);
    expect(answer.json.code).to.equal('headers_too_large');
    // Written straight to the socket by the parser's error handler, yet with
    // the security headers every other answer carries (fifth pass: it had none).
    expectSecurityHeaders(answer.head);
  });

  it('cuts off a client that sends its headers too slowly', async () => {
    const socket = await connectRaw(server, device);
    const closed = readUntilClosed(socket);
    let open = true;
    void closed.then(() => (open = false));
    socket.write('POST /device_endpoint HTTP/1.1\r\nHost: localhost\r\n');
    // 60 header lines, one every 500 ms: 30 s, far beyond the 2 s headers timeout.
    for (let i = 0; i < 60 && open; i++) {
      socket.write(`X-Slow-${i}: x\r\n`);
      await pace(500);
    }
    expect(open, 'the server kept a slow-headers client connected').to.equal(false);
    const answer = parseRawAnswer(await closed);
    expect(answer.status).to.equal(408);
    expect(answer.json.code).to.equal('request_timeout');
    expectSecurityHeaders(answer.head);
  });

  it('cuts off a slow body and stores nothing of it', async () => {
    const boundary = 'slowbody';
    const socket = await connectRaw(server, device);
    const closed = readUntilClosed(socket);
    let open = true;
    void closed.then(() => (open = false));
    socket.write(
      `POST /device_endpoint HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\n` +
        `Content-Length: 1000000\r\n\r\n--${boundary}\r\nContent-Disposition: form-data; name="slow"; filename="s.csv"\r\n\r\n`,
    );
    const start = Date.now() - 100_000;
    for (let i = 0; i < 60 && open; i++) {
      socket.write(`${start + i},${i}\n`);
      await pace(500);
    }
    expect(open, 'the server kept a slow-body client connected').to.equal(false);
    const answer = parseRawAnswer(await closed);
    expect(answer.status).to.not.equal(200);
    expect(await storedPoints(db, server, device, 'slow')).to.deep.equal([]);
  });

  it('refuses bind bodies that are not JSON objects', async () => {
    for (const body of ['[]', '"PSK"', '42', 'null', 'true', '[{"PSK":"x"}]']) {
      const answer = await stranger.send('POST', body, { 'content-type': 'application/json' });
      expectJsonError(answer, 400, 'invalid_bind_request');
    }
    expectJsonError(
      await stranger.send('POST', '{"PSK":', { 'content-type': 'application/json' }),
      400,
      'invalid_json',
    );
    expectJsonError(
      await stranger.send('POST', JSON.stringify({ PSK: 'x'.repeat(10_000) }), {
        'content-type': 'application/json',
      }),
      413,
      'body_too_large',
    );
  });

  it('refuses a PSK of the wrong type or length and binds nothing', async () => {
    for (const psk of [42, null, true, ['a'], { a: 1 }]) {
      expectJsonError(await stranger.bind(psk), 400, 'invalid_bind_request');
    }
    for (const psk of ['', 'x', 'y'.repeat(1000)]) {
      expectJsonError(await stranger.bind(psk), 400, 'invalid_psk');
    }
    expectJsonError(
      await stranger.upload([{ name: 't', content: `${Date.now()},1\n` }]),
      403,
      'certificate_not_bound',
    );
  });
});

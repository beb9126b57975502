import tls from 'node:tls';
import { expect } from 'chai';
import { request } from 'undici';
import WebSocket from 'ws';
import { AdminClient } from '../support/admin-client.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import type { FleetgateProcess } from '../support/fleetgate-process.js';
import { sample, scrape } from '../support/metrics-scrape.js';
import { serverLogCaughtUp } from '../support/server-log.js';

/** One TLS connection to the device port; resumes `session` when given. */
function handshake(
  server: FleetgateProcess,
  session?: Buffer,
): Promise<{ reused: boolean; session?: Buffer }> {
  return new Promise((resolve, reject) => {
    let ticket: Buffer | undefined;
    const socket = tls.connect({
      host: '127.0.0.1',
      port: server.port,
      servername: 'localhost',
      ca: server.caPem,
      ...(session ? { session } : {}),
    });
    socket.on('session', (s: Buffer) => (ticket = s));
    socket.once('secureConnect', () => {
      const reused = socket.isSessionReused();
      // TLS 1.3 tickets arrive just after the handshake.
      setTimeout(() => {
        socket.end();
        resolve({ reused, session: ticket });
      }, 200);
    });
    socket.once('error', reject);
  });
}

describe('operate: GET /metrics', () => {
  const fixture = useFixture();

  it('counts points, uploads and binds by outcome, requests by route template, TLS handshakes', async () => {
    const { server } = fixture();
    const before = (await scrape(server)).text;
    const identity = uniqueName('metrics');
    const psk = await fixture().identityWithPsk(identity);
    const { device, client } = await fixture().boundDevice(uniqueName('metrics-other'));
    expect((await client.bind(psk)).status).to.equal(409); // bound elsewhere
    const file = { name: 'temp', content: '1700000000000,1\n1700000001000,2\n1700000002000,3\n' };
    expect((await client.upload([file])).status).to.equal(200);
    expect((await client.upload([file])).status).to.equal(200);
    expect((await client.upload([{ name: 'temp', content: 'nonsense\n' }])).status).to.equal(400);
    const admin = new AdminClient(server);
    expect((await admin.get(`/v1/devices/${device.fingerprint}`)).status).to.equal(200);
    await admin.close();
    const first = await handshake(server);
    const second = first.session ? await handshake(server, first.session) : { reused: false };

    const scraped = await scrape(server);
    expect(scraped.status).to.equal(200);
    expect(scraped.type).to.match(/^text\/plain; version=0\.0\.4/);
    const after = scraped.text;
    const delta = (name: string, labels: Record<string, string> = {}) =>
      sample(after, name, labels) - sample(before, name, labels);

    expect(delta('fleetgate_points_stored_total')).to.equal(3);
    expect(delta('fleetgate_points_duplicate_total')).to.equal(3);
    expect(delta('fleetgate_uploads_total', { outcome: 'stored' })).to.equal(2);
    expect(delta('fleetgate_uploads_total', { outcome: 'invalid_line' })).to.equal(1);
    expect(delta('fleetgate_binds_total', { outcome: 'bound' })).to.equal(1);
    expect(delta('fleetgate_binds_total', { outcome: 'certificate_bound_elsewhere' })).to.equal(1);
    expect(
      delta('http_server_request_duration_seconds_count', {
        method: 'GET',
        route: '/v1/devices/:fingerprint',
        status_code: '200',
      }),
    ).to.equal(1);
    expect(
      delta('http_server_request_duration_seconds_count', {
        method: 'POST',
        route: '/device_endpoint',
        status_code: '400',
      }),
    ).to.equal(1);
    // Route templates only: no fingerprint, no raw path in any label.
    expect(after).to.not.include(device.fingerprint);
    // Each handshake above is one, plus the device client's connections.
    expect(delta('fleetgate_tls_handshakes_total', { kind: 'full' })).to.be.at.least(
      second.reused ? 1 : 2,
    );
    expect(delta('fleetgate_tls_handshakes_total', { kind: 'resumed' })).to.equal(
      second.reused ? 1 : 0,
    );
    // Default process metrics, and the pool on PostgreSQL.
    expect(after).to.match(/^process_cpu_user_seconds_total /m);
    expect(after).to.match(/^nodejs_eventloop_lag_seconds /m);
    if (fixture().db.url) {
      expect(after).to.match(/^fleetgate_db_pool_connections\{state="idle"\} \d+/m);
      expect(after).to.match(/^fleetgate_db_pool_connections\{state="in_use"\} 0/m);
      expect(after).to.match(/^fleetgate_db_pool_connections\{state="waiting"\} 0/m);
    }
  });

  it('gauges open WebSocket connections: up while open, down once closed', async () => {
    const { server } = fixture();
    const { device } = await fixture().boundDevice(uniqueName('metrics-ws'));
    const before = sample((await scrape(server)).text, 'fleetgate_open_connections', {
      channel: 'websocket',
    });
    expect((await scrape(server)).text).to.match(
      /^fleetgate_open_connections\{channel="mqtt"\} \d+/m,
    );
    const url = `${server.baseUrl.replace(/^https/, 'wss')}/device_endpoint/ws`;
    const sockets = await Promise.all(
      [1, 2].map(
        () =>
          new Promise<WebSocket>((resolve, reject) => {
            const ws = new WebSocket(url, {
              ca: server.caPem,
              cert: device.certPem,
              key: device.keyPem,
            });
            ws.once('open', () => resolve(ws));
            ws.once('error', reject);
          }),
      ),
    );
    const gauge = async () =>
      sample((await scrape(server)).text, 'fleetgate_open_connections', { channel: 'websocket' });
    expect(await gauge()).to.equal(before + 2);
    await Promise.all(
      sockets.map((ws) => new Promise((resolve) => (ws.once('close', resolve), ws.close()))),
    );
    // The server counts the close when its side of the socket closes: wait for it, bounded.
    for (let i = 0; i < 100 && (await gauge()) !== before; i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(await gauge()).to.equal(before);
  });

  it('answers /livez and /readyz without a token', async () => {
    const { server } = fixture();
    const live = await request(`${server.adminUrl}/livez`);
    expect(live.statusCode).to.equal(200);
    expect(await live.body.json()).to.deep.equal({ status: 'alive' });
    const ready = await request(`${server.adminUrl}/readyz`);
    expect(ready.statusCode).to.equal(200);
    expect(await ready.body.json()).to.deep.equal({
      status: 'ready',
      checks: { draining: 'ok', database: 'ok', migrations: 'ok' },
    });
  });
});

describe('operate: /metrics wants the token when told to, and off loopback', () => {
  const onLoopback = useFixture({ FLEETGATE_METRICS_ACCESS: 'token' });
  const offLoopback = useFixture({ FLEETGATE_ADMIN_HOST: '0.0.0.0' });

  it('FLEETGATE_METRICS_ACCESS=token: 401 without, 200 with the admin token', async () => {
    const { server } = onLoopback();
    expect((await scrape(server)).status).to.equal(401);
    expect((await scrape(server, server.adminToken)).status).to.equal(200);
  });

  it('on a non-loopback admin address (TLS): the token by default', async () => {
    const { server } = offLoopback();
    const admin = new AdminClient(server, null);
    expect((await admin.get('/metrics')).status).to.equal(401);
    expect((await admin.get('/livez')).status).to.equal(200);
    await admin.close();
    const withToken = new AdminClient(server);
    const scraped = await withToken.get('/metrics');
    expect(scraped.status).to.equal(200);
    expect(scraped.text).to.match(/^fleetgate_points_stored_total /m);
    await withToken.close();
  });
});

describe('operate: request ids', () => {
  const fixture = useFixture();

  it('are returned as X-Request-Id and carried by the log lines; secrets never are', async () => {
    const { server } = fixture();
    const identity = uniqueName('reqid');
    const psk = await fixture().identityWithPsk(identity);
    const client = fixture().client((await import('../support/device-client.js')).newDevice());
    const bound = await client.bind(psk);
    expect(bound.status).to.equal(200);
    const id = bound.headers['x-request-id'] as string;
    expect(id).to.match(/^[0-9a-f-]{36}$/);

    const admin = new AdminClient(server);
    const issued = await admin.post(`/v1/identities/${identity}/psks`, {});
    const adminId = issued.headers['x-request-id'] as string;
    expect(adminId).to.match(/^[0-9a-f-]{36}$/);
    const given = await admin.get('/v1/identities', { 'x-request-id': 'nginx-0123456789abcdef' });
    expect(given.headers['x-request-id']).to.equal('nginx-0123456789abcdef');
    const hostile = await admin.get('/v1/identities', { 'x-request-id': 'a"b\\nfake log line' });
    expect(hostile.headers['x-request-id']).to.match(/^[0-9a-f-]{36}$/);
    const refused = await admin.get('/v1/identities/nobody-here');
    expect(refused.status).to.equal(404);
    await admin.close();

    await serverLogCaughtUp(server);
    const lines = server
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'));
    const withId = (reqId: string) => lines.filter((l) => JSON.parse(l).reqId === reqId);
    expect(withId(id)).to.have.length.at.least(1);
    expect(withId(adminId)).to.have.length.at.least(1);
    expect(withId('nginx-0123456789abcdef')).to.have.length(1);
    // Every request's log line has an id.
    for (const line of lines.filter((l) => /"msg":"(admin )?request"/.test(l))) {
      expect(JSON.parse(line).reqId, line).to.be.a('string');
    }
    const logs = lines.join('\n');
    expect(logs).to.not.include(psk);
    expect(logs).to.not.include(issued.json.secret);
    expect(logs).to.not.include(server.adminToken);
  });
});

import https from 'node:https';
import { expect } from 'chai';
import type { MqttClient } from 'mqtt';
import WebSocket from 'ws';
import type { TestDevice } from '../support/device-client.js';
import { useFixture, uniqueName, type Fixture } from '../support/fixture.js';
import { countStoredPoints } from '../support/stored-points.js';
import { connectDevice, deviceTopics, Inbox } from '../support/mqtt-client.js';

const T0 = 1_764_500_000_000;

interface KeptAliveAnswer {
  status: number;
  code: string | undefined;
  /** Whether the request went over the connection opened before (keep-alive). */
  reused: boolean;
  localPort: number | undefined;
}

/** One device on its three channels at once, all with the same certificate. */
interface Channels {
  device: TestDevice;
  identity: string;
  /** One HTTPS connection, kept alive between requests. */
  agent: https.Agent;
  ws: WebSocket;
  wsFrames: unknown[];
  wsClosed: Promise<{ code: number; at: number }>;
  mqtt: MqttClient;
  inbox: Inbox;
  mqttClosed: Promise<number>;
}

/** A JSON message over the device's kept-alive HTTPS connection. */
function postMessage(fx: Fixture, c: Channels, ts: number): Promise<KeptAliveAnswer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${fx.server.baseUrl}/device_endpoint/messages`,
      {
        method: 'POST',
        agent: c.agent,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            code: (JSON.parse(body) as { code?: string }).code,
            reused: req.reusedSocket,
            localPort: req.socket?.localPort,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify({ ts, data: { https: 1 } }));
  });
}

async function openChannels(fx: Fixture, prefix: string): Promise<Channels> {
  const identity = uniqueName(prefix);
  const { device } = await fx.boundDevice(identity);
  const agent = new https.Agent({
    keepAlive: true,
    maxSockets: 1,
    ca: fx.server.caPem,
    cert: device.certPem,
    key: device.keyPem,
    servername: 'localhost',
  });
  const ws = new WebSocket(`${fx.server.baseUrl.replace(/^https/, 'wss')}/device_endpoint/ws`, {
    ca: fx.server.caPem,
    cert: device.certPem,
    key: device.keyPem,
  });
  const wsFrames: unknown[] = [];
  ws.on('message', (data) => wsFrames.push(JSON.parse(String(data))));
  const wsClosed = new Promise<{ code: number; at: number }>((resolve) =>
    ws.on('close', (code) => resolve({ code, at: Date.now() })),
  );
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const mqtt = await connectDevice(fx, device);
  const inbox = new Inbox(mqtt);
  const mqttClosed = new Promise<number>((resolve) =>
    mqtt.once('close', () => resolve(Date.now())),
  );
  await mqtt.subscribeAsync(deviceTopics(identity, device).res('+'), { qos: 1 });
  return { device, identity, agent, ws, wsFrames, wsClosed, mqtt, inbox, mqttClosed };
}

async function wsAck(c: Channels, id: string, ts: number): Promise<unknown> {
  const before = c.wsFrames.length;
  c.ws.send(JSON.stringify({ type: 'message', id, ts, data: { ws: 1 } }));
  const deadline = Date.now() + 10_000;
  while (c.wsFrames.length === before && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return c.wsFrames[before];
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- RES payloads are arbitrary JSON
async function mqttPoints(c: Channels, id: string, ts: number): Promise<any> {
  await c.mqtt.publishAsync(
    deviceTopics(c.identity, c.device).req('points'),
    JSON.stringify({ id, data: { series: 'mqtt', points: [[ts, 1]] } }),
    { qos: 1 },
  );
  return (await c.inbox.next()).json;
}

/** Whether `closed` settles within `ms`. */
function within<T>(closed: Promise<T>, ms: number): Promise<T | 'still open'> {
  return Promise.race([
    closed,
    new Promise<'still open'>((resolve) => setTimeout(() => resolve('still open'), ms)),
  ]);
}

/**
 * Issue 13, "revocation is visible on all three channels at once": one device
 * holds an HTTPS keep-alive connection, a WebSocket and an MQTT connection
 * with the same certificate; its revocation refuses or closes all three
 * within a second, while another device on its own three channels goes on.
 */
describe('revocation on HTTPS, WebSocket and MQTT at once', function () {
  this.timeout(60_000);
  const fx = useFixture({ FLEETGATE_MQTT_PORT: '0' });
  const opened: Channels[] = [];
  after(async () => {
    for (const c of opened) {
      c.agent.destroy();
      c.ws.terminate();
      await c.mqtt.endAsync(true).catch(() => undefined);
    }
  });

  it('refuses or closes the revoked device on all three within a second; another device goes on', async () => {
    const victim = await openChannels(fx(), 'revoke-all');
    const other = await openChannels(fx(), 'revoke-all-other');
    opened.push(victim, other);
    for (const c of [victim, other]) {
      const first = await postMessage(fx(), c, T0);
      expect(first).to.include({ status: 200, reused: false });
      expect(await wsAck(c, 'w1', T0)).to.deep.include({ type: 'ack', stored: 1 });
      expect(await mqttPoints(c, 'm1', T0)).to.deep.include({ status: 1, code: 200, id: 'm1' });
    }
    const victimPort = (await postMessage(fx(), victim, T0 + 1)).localPort;

    const result = await fx().server.cli(['device', 'revoke', victim.device.fingerprint]);
    const revokedAt = Date.now();
    expect(result.code, result.stderr).to.equal(0);

    // HTTPS: the next request on the same kept-alive connection is refused.
    const refused = await postMessage(fx(), victim, T0 + 2);
    expect(refused).to.deep.equal({
      status: 403,
      code: 'device_revoked',
      reused: true,
      localPort: victimPort,
    });
    expect(Date.now() - revokedAt, 'HTTPS refusal').to.be.below(1000);
    // WebSocket and MQTT: closed by the server.
    const [wsClosed, mqttClosedAt] = await Promise.all([
      within(victim.wsClosed, 3000),
      within(victim.mqttClosed, 3000),
    ]);
    expect(wsClosed, 'WebSocket').to.not.equal('still open');
    expect(mqttClosedAt, 'MQTT').to.not.equal('still open');
    const ws = wsClosed as { code: number; at: number };
    expect(ws.code).to.equal(1008);
    expect(ws.at - revokedAt, 'WebSocket closed').to.be.below(1000);
    expect((mqttClosedAt as number) - revokedAt, 'MQTT closed').to.be.below(1000);
    // And a new MQTT connection of the revoked device is refused "not authorized".
    const again = await connectDevice(fx(), victim.device).then(
      async (client) => {
        await client.endAsync(true);
        return null;
      },
      (err: Error & { code?: number }) => err.code,
    );
    expect(again).to.equal(5);

    // The other device: its three connections are still open and still store.
    expect(other.ws.readyState).to.equal(WebSocket.OPEN);
    expect(other.mqtt.connected).to.equal(true);
    expect(await postMessage(fx(), other, T0 + 3)).to.include({ status: 200, reused: true });
    expect(await wsAck(other, 'w2', T0 + 3)).to.deep.include({ type: 'ack', stored: 1 });
    expect(await mqttPoints(other, 'm2', T0 + 3)).to.deep.include({ status: 1, id: 'm2' });
    expect(
      await countStoredPoints(fx().db, fx().server, other.device, ['https', 'ws', 'mqtt']),
    ).to.equal(6);
    // Nothing of the revoked device's after the revocation.
    expect(
      await countStoredPoints(fx().db, fx().server, victim.device, ['https', 'ws', 'mqtt']),
    ).to.equal(4);
  });
});

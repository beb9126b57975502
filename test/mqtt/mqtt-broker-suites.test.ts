import { expect } from 'chai';
import type { IClientOptions, MqttClient } from 'mqtt';
import { newDevice } from '../support/device-client.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import { serverLogCaughtUp } from '../support/server-log.js';
import { countStoredPoints } from '../support/stored-points.js';
import {
  boundTopics,
  connectDevice,
  connectPacket,
  deviceTopics,
  Inbox,
  publishPacket,
  rawConnection,
  remainingLength,
  useMqttClients,
  waitForBytes,
  type DeviceTopics as Bound,
} from '../support/mqtt-client.js';

const T0 = 1_764_600_000_000;

/**
 * The MQTT channel against cases the public broker suites cover and
 * test/mqtt/mqtt.test.ts did not. Each group names the aedes (test/*.js) or
 * mosquitto (test/broker/*) category that inspired it; the cases are our own,
 * over real mTLS with MQTT.js and raw packets.
 */
describe('MQTT channel: cases after the aedes and mosquitto suites', function () {
  this.timeout(60_000);
  const fx = useFixture({ FLEETGATE_MQTT_PORT: '0', FLEETGATE_MQTT_MAX_PAYLOAD_BYTES: '4096' });
  const clients = useMqttClients(fx);
  const bound = (prefix: string) => boundTopics(fx(), prefix);
  /** Two devices of one identity, bound with one PSK. */
  async function pair(prefix: string): Promise<[Bound, Bound]> {
    const identity = uniqueName(prefix);
    const psk = await fx().identityWithPsk(identity);
    const devices: Bound[] = [];
    for (let i = 0; i < 2; i++) {
      const device = newDevice();
      const answer = await fx().client(device).bind(psk);
      if (answer.status !== 200) throw new Error(`bind failed: ${answer.text}`);
      devices.push(deviceTopics(identity, device));
    }
    return [devices[0]!, devices[1]!];
  }
  const connect = (b: Bound, options: IClientOptions = {}) => clients.connect(b.device, options);
  const grantsOf = (client: MqttClient, filters: string[]) =>
    client.subscribeAsync(filters, { qos: 1 }).then(
      (grants) => grants.map((g) => g.qos),
      (err: { packet?: { granted?: number[] } }) => err.packet?.granted,
    );
  const points = (series: string, n = 0) =>
    JSON.stringify({ id: `p${n}`, data: { series, points: [[T0 + n, n]] } });
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  // mosquitto 03-publish-invalid-utf8, 02-subscribe-invalid-utf8 (MQTT 3.1.1 §1.5.3):
  // U+0000 in a topic closes the connection; nothing is stored or answered.
  describe('NUL and ill-formed UTF-8 in topics (mosquitto 02-/03-*-invalid-utf8)', () => {
    it('disconnects a publish whose topic holds U+0000 or ill-formed UTF-8, storing nothing', async () => {
      const b = await bound('nul');
      for (const topic of [
        Buffer.from(`${b.req('points')}\u0000x`, 'utf8'),
        Buffer.concat([Buffer.from(b.req(''), 'utf8'), Buffer.from([0xc3, 0x28])]),
      ]) {
        const conn = await rawConnection(fx(), b.device);
        conn.socket.write(connectPacket(uniqueName('nul')));
        expect([...(await waitForBytes(conn, 4))]).to.deep.equal([0x20, 2, 0, 0]);
        const body = Buffer.concat([
          Buffer.from([topic.length >> 8, topic.length & 0xff]),
          topic,
          Buffer.from([0, 5]), // message id 5
          Buffer.from(points('nul'), 'utf8'),
        ]);
        conn.socket.write(Buffer.concat([Buffer.from([0x32]), remainingLength(body.length), body]));
        await conn.closed;
        // Only the CONNACK: no PUBACK, no answer.
        expect(conn.received().length, topic.toString('hex')).to.equal(4);
      }
      expect(await countStoredPoints(fx().db, fx().server, b.device, ['nul'])).to.equal(0);
    });

    it('refuses a subscription whose filter holds U+0000 (0x80) and keeps serving', async () => {
      const b = await bound('nulsub');
      const client = await connect(b);
      expect(await grantsOf(client, [`${b.res('points')}\u0000`])).to.deep.equal([128]);
      expect(await grantsOf(client, [b.res('+')])).to.deep.equal([1]);
    });
  });

  // aedes test/connect.js (second CONNECT, MQTT-3.1.0-2) and client id takeover
  // (test/client-pub-sub.js, mosquitto 01-connect-uname-*): a client id is not an identity.
  describe('client ids and sessions (aedes connect and takeover tests)', () => {
    it('closes a connection that sends a second CONNECT', async () => {
      const b = await bound('second');
      const conn = await rawConnection(fx(), b.device);
      conn.socket.write(connectPacket('one'));
      expect([...(await waitForBytes(conn, 4))]).to.deep.equal([0x20, 2, 0, 0]);
      conn.socket.write(connectPacket('two'));
      await conn.closed;
      expect(conn.received().length).to.equal(4);
    });

    it('another device with the same client id and clean=false neither ends the session nor gets its subscriptions or answers', async () => {
      const [a, other] = await pair('takeover');
      const clientId = uniqueName('shared-id');
      const first = await connect(a, { clientId, clean: false });
      expect(await grantsOf(first, [a.res('+')])).to.deep.equal([1]);
      const inbox = new Inbox(first);
      let firstClosed = false;
      first.on('close', () => (firstClosed = true));
      const second = await connect(other, { clientId, clean: false });
      const stolen: string[] = [];
      second.on('message', (topic) => stolen.push(topic));
      await first.publishAsync(a.req('time'), JSON.stringify({ id: 't' }), { qos: 1 });
      expect((await inbox.next()).topic).to.equal(a.res('time'));
      await sleep(300);
      expect(firstClosed, 'the first session stays').to.equal(false);
      expect(stolen, 'nothing of A reaches B').to.deep.equal([]);
    });
  });

  // mosquitto 02-subscribe-persistence / aedes test/persistence.js: a persistent
  // session restores its subscriptions; aedes stores a SUBSCRIBE's whole list, so a
  // refused filter must be refused again when the session is restored.
  describe('persistent sessions (mosquitto 02-subscribe-persistence, aedes persistence)', () => {
    it('restores the granted subscription and not the refused wildcard of the same SUBSCRIBE', async () => {
      const [a, other] = await pair('persist');
      const identity = a.identity;
      const clientId = uniqueName('persistent');
      const first = await connect(a, { clientId, clean: false });
      expect(await grantsOf(first, [a.res('+'), '#', `${identity}/res/+/+`])).to.deep.equal([
        1, 128, 128,
      ]);
      await first.endAsync();
      const again = await connect(a, { clientId, clean: false });
      const inbox = new Inbox(again);
      // The other device's answer must not come through a restored wildcard.
      const peer = await connect(other);
      await peer.subscribeAsync(other.res('+'), { qos: 1 });
      await peer.publishAsync(other.req('time'), JSON.stringify({ id: 'b' }), { qos: 1 });
      // A's own answer comes through the restored subscription, and it is the only one.
      await again.publishAsync(a.req('time'), JSON.stringify({ id: 'a' }), { qos: 1 });
      const mine = await inbox.next();
      expect(mine.topic).to.equal(a.res('time'));
      await sleep(300);
      expect(inbox.pending).to.equal(0);
    });
  });

  // mosquitto 02-subscribe-qos2 / aedes test/qos2.js (third pass): a SUBACK says
  // what the broker will deliver at, and fleetgate delivers at QoS 1 at most.
  describe('granted QoS of a SUBSCRIBE (mosquitto 02-subscribe-qos*, aedes qos2)', () => {
    it('grants QoS 1 to a QoS 2 subscription, 0 to QoS 0 and 0x80 outside the ACL, and delivers at QoS 1', async () => {
      const b = await bound('subqos');
      const client = await connect(b);
      const grants = await client
        .subscribeAsync({ [b.res('+')]: { qos: 2 }, '#': { qos: 2 }, [b.res('time')]: { qos: 0 } })
        .then(
          (g) => g.map((x) => x.qos),
          (err: { packet?: { granted?: number[] } }) => err.packet?.granted,
        );
      // Before the fix aedes answered the requested 2, which fleetgate never honours.
      expect(grants).to.deep.equal([1, 128, 0]);
      const delivered = new Promise<number>((resolve) =>
        client.on('packetreceive', (packet) => {
          if (packet.cmd === 'publish' && packet.topic === b.res('status')) resolve(packet.qos);
        }),
      );
      await client.publishAsync(b.req('status'), JSON.stringify({ id: 's' }), { qos: 1 });
      expect(await delivered).to.equal(1);
    });
  });

  // mosquitto 02-subscribe-* with long filter lists (third pass): one SUBSCRIBE of
  // 300 KB held 45,000 refused filters, each authorized, answered and logged.
  describe('SUBSCRIBE floods (third pass)', () => {
    const subscribePacket = (messageId: number, filters: string[]) => {
      const body = Buffer.concat([
        Buffer.from([messageId >> 8, messageId & 0xff]),
        ...filters.map((filter) => {
          const text = Buffer.from(filter, 'utf8');
          return Buffer.concat([
            Buffer.from([text.length >> 8, text.length & 0xff]),
            text,
            Buffer.from([1]),
          ]);
        }),
      ]);
      return Buffer.concat([Buffer.from([0x82]), remainingLength(body.length), body]);
    };
    const logLines = (marker: string) =>
      fx()
        .server.output()
        .split('\n')
        .filter((line) => line.includes(marker)).length;

    it('closes a connection whose SUBSCRIBE carries more than 64 filters, handling and logging none of them', async () => {
      const b = await bound('subflood');
      const conn = await rawConnection(fx(), b.device);
      let closed = false;
      void conn.closed.then(() => (closed = true));
      conn.socket.write(connectPacket(uniqueName('subflood')));
      await waitForBytes(conn, 4);
      const marker = uniqueName('flood');
      const filters = Array.from({ length: 1000 }, (_, i) => `${marker}/${i}`);
      conn.socket.write(subscribePacket(1, filters));
      // Before the fix: a SUBACK of 1000 refusals, 1000 log lines, and the connection open.
      const bytes = await waitForBytes(conn, 4 + 1);
      expect(bytes.length, 'nothing after the CONNACK').to.equal(4);
      expect(closed).to.equal(true);
      await serverLogCaughtUp(fx().server);
      expect(logLines(marker)).to.be.at.most(1);
      expect(fx().server.output()).to.include('MQTT SUBSCRIBE with too many filters, closed');
    });

    it('logs the refused filters of one connection a bounded number of times, and still answers each with 0x80', async () => {
      const b = await bound('sublog');
      const conn = await rawConnection(fx(), b.device);
      conn.socket.write(connectPacket(uniqueName('sublog')));
      await waitForBytes(conn, 4);
      const marker = uniqueName('refused');
      const packets = 20;
      for (let p = 0; p < packets; p++) {
        const filters = Array.from({ length: 64 }, (_, i) => `${marker}/${p}/${i}`);
        conn.socket.write(subscribePacket(p + 1, filters));
      }
      const subacks = packets * (4 + 64);
      const bytes = await waitForBytes(conn, 4 + subacks);
      expect(bytes.length).to.equal(4 + subacks);
      for (let p = 0; p < packets; p++) {
        const suback = bytes.subarray(4 + p * 68, 4 + (p + 1) * 68);
        expect(suback[0]).to.equal(0x90);
        expect([...suback.subarray(4)].every((code) => code === 0x80)).to.equal(true);
      }
      // 1280 refusals: logged at the 1st, 2nd, 4th, ... 1024th (11 lines); before the fix 1280.
      await serverLogCaughtUp(fx().server);
      expect(logLines(marker)).to.be.at.most(11);
      conn.socket.destroy();
    });
  });

  // aedes test/retain.js and mosquitto 04-retain-*: a device's retained publish is
  // not kept, so no later subscriber receives it.
  describe('retained messages (aedes retain, mosquitto 04-retain)', () => {
    it('keeps nothing a device publishes with retain set: a later subscriber gets only its own answers', async () => {
      const b = await bound('retain');
      const publisher = await connect(b);
      await publisher.publishAsync(b.req('points'), points('retained', 1), {
        qos: 1,
        retain: true,
      });
      await publisher.endAsync();
      const later = await connect(b);
      const inbox = new Inbox(later);
      await later.subscribeAsync(b.res('+'), { qos: 1 });
      await sleep(500);
      expect(inbox.pending, 'no retained message').to.equal(0);
      expect(await countStoredPoints(fx().db, fx().server, b.device, ['retained'])).to.equal(1);
    });
  });

  // aedes test/qos2.js and mosquitto 03-publish-qos2-*: the PUBREL/PUBCOMP side of a
  // flow the device did not start changes nothing and stores nothing.
  describe('QoS 2 packets out of turn (aedes qos2, mosquitto 03-publish-b2c-qos2)', () => {
    it('answers an unsolicited PUBREL without storing or closing anything', async () => {
      const b = await bound('pubrel');
      const conn = await rawConnection(fx(), b.device);
      conn.socket.write(connectPacket(uniqueName('pubrel')));
      await waitForBytes(conn, 4);
      conn.socket.write(Buffer.from([0x62, 2, 0, 9])); // PUBREL 9
      conn.socket.write(Buffer.from([0x40, 2, 0, 10])); // PUBACK 10, never sent to it
      conn.socket.write(publishPacket(b.req('points'), points('after', 2), { qos: 1 }));
      const bytes = await waitForBytes(conn, 12);
      expect(bytes.includes(Buffer.from([0x40, 2, 0, 1])), 'the PUBACK of the publish').to.equal(
        true,
      );
      conn.socket.destroy();
      expect(await countStoredPoints(fx().db, fx().server, b.device, ['after'])).to.equal(1);
    });
  });

  // aedes test/auth.js ("authenticate unsuccessfully"): no CONNACK 0 without a bound
  // certificate, whatever the username, password or client id claim.
  describe('credentials in CONNECT (aedes auth)', () => {
    it('ignores a username, password and client id naming a bound device', async () => {
      const b = await bound('claims');
      const err = await connectDevice(fx(), newDevice(), {
        clientId: `1/${b.device.fingerprint}`,
        username: b.device.fingerprint,
        password: Buffer.from(b.identity),
      }).then(
        () => null,
        (e: Error & { code?: number }) => e,
      );
      expect(err?.code).to.equal(5);
    });
  });
});

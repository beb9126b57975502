import { expect } from 'chai';
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import type { MqttClient } from 'mqtt';
import pg from 'pg';
import { decryptResponse } from '../../src/mqtt/response-encryption.js';
import { waitFor } from '../support/concurrency.js';
import { skipBecause } from '../support/skip.js';
import { newDevice } from '../support/device-client.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import { countStoredPoints, storedPoints } from '../support/stored-points.js';
import {
  boundTopics,
  closedWithin,
  connectDevice,
  connectPacket,
  deviceTopics,
  Inbox,
  mosquitto,
  mosquittoTlsArgs,
  publishPacket,
  rawConnection,
  useMqttClients,
  waitForBytes,
  type DeviceTopics as Bound,
} from '../support/mqtt-client.js';

const T0 = 1_764_500_000_000;

/** Issue 13: the MQTT channel, with MQTT.js and Debian's mosquitto clients over mTLS. */
describe('MQTT channel', function () {
  this.timeout(60_000);
  const fx = useFixture({
    FLEETGATE_MQTT_PORT: '0',
    FLEETGATE_MQTT_MAX_PAYLOAD_BYTES: '4096',
  });
  const clients = useMqttClients(fx);

  const bound = (prefix: string) => boundTopics(fx(), prefix);

  async function session(b: Bound): Promise<{ client: MqttClient; inbox: Inbox }> {
    const client = await clients.connect(b.device);
    const inbox = new Inbox(client);
    const granted = await client.subscribeAsync(b.res('+'), { qos: 1 });
    expect(granted.map((g) => g.qos)).to.deep.equal([1]);
    return { client, inbox };
  }

  async function ask(
    b: Bound,
    s: { client: MqttClient; inbox: Inbox },
    endpoint: string,
    body: unknown,
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- RES payloads are arbitrary JSON
  ): Promise<any> {
    await s.client.publishAsync(b.req(endpoint), JSON.stringify(body), { qos: 1 });
    const message = await s.inbox.next();
    expect(message.topic).to.equal(b.res(endpoint));
    return message.json;
  }

  it('counts open MQTT connections in fleetgate_open_connections{channel="mqtt"}', async () => {
    const gauge = async () => {
      const text = await (await fetch(`${fx().server.adminUrl}/metrics`)).text();
      const line = /^fleetgate_open_connections\{channel="mqtt"\} (\d+)/m.exec(text);
      expect(line, 'the mqtt sample').to.not.equal(null);
      return Number(line![1]);
    };
    const before = await gauge();
    const b = await bound('gauge');
    const client = await connectDevice(fx(), b.device);
    try {
      expect(await gauge()).to.equal(before + 1);
    } finally {
      await client.endAsync(true);
    }
    for (let i = 0; i < 100 && (await gauge()) !== before; i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(await gauge()).to.equal(before);
  });

  it('refuses an unbound certificate at CONNECT with "not authorized"', async () => {
    const err = await connectDevice(fx(), newDevice()).then(
      () => null,
      (e: Error & { code?: number }) => e,
    );
    expect(err, 'refused').to.not.equal(null);
    expect(err!.code).to.equal(5);
    expect(err!.message).to.match(/not authorized/i);
  });

  it('stores points and sends the PUBACK only after the commit', async () => {
    const b = await bound('points');
    const s = await session(b);
    // publishAsync resolves on the PUBACK: the points must be readable at once.
    await s.client.publishAsync(
      b.req('points'),
      JSON.stringify({
        id: 'r1',
        data: {
          series: 'temp',
          points: [
            [T0, 21.5],
            [T0 + 1000, 22],
          ],
        },
      }),
      { qos: 1 },
    );
    expect(await storedPoints(fx().db, fx().server, b.device, 'temp')).to.deep.equal([
      [T0, 21.5],
      [T0 + 1000, 22],
    ]);
    const res = (await s.inbox.next()).json;
    expect(res).to.deep.include({ status: 1, code: 200, id: 'r1' });
    expect(res.data).to.deep.include({ stored: 2, duplicates: 0 });
    // The same points again are duplicates, stored once.
    const again = await ask(b, s, 'points', {
      id: 'r2',
      data: { series: 'temp', points: `${T0},21.5\n${T0 + 1000},22\n${T0 + 2000},23\n` },
    });
    expect(again.data).to.deep.include({ stored: 1, duplicates: 2 });
    expect(await countStoredPoints(fx().db, fx().server, b.device, ['temp'])).to.equal(3);
  });

  it('sends no PUBACK while the commit cannot happen (PostgreSQL)', async function () {
    if (!fx().db.url)
      skipBecause(
        this,
        'holds a table lock from a second PostgreSQL session; the embedded database has one',
      );
    const b = await bound('held');
    const s = await session(b);
    expect(
      (await ask(b, s, 'points', { id: 0, data: { series: 'h', points: [[T0, 0]] } })).status,
    ).to.equal(1);
    const blocker = new pg.Client({ connectionString: fx().db.url });
    await blocker.connect();
    try {
      await blocker.query('begin');
      await blocker.query('lock table series in access exclusive mode');
      let acked = false;
      const puback = s.client
        .publishAsync(
          b.req('points'),
          JSON.stringify({ id: 1, data: { series: 'h', points: [[T0 + 1, 1]] } }),
          {
            qos: 1,
          },
        )
        .then(() => (acked = true));
      // The publish has reached the lock: a session of the server waits for it.
      await waitFor('the server to wait for the series lock (pg_stat_activity)', async () => {
        const { rows } = await blocker.query<{ n: number }>(
          `select count(*)::int as n from pg_stat_activity
           where datname = current_database() and pid <> pg_backend_pid()
             and wait_event_type = 'Lock'`,
        );
        return rows[0]!.n > 0 || acked;
      });
      expect(acked, 'no PUBACK while the series table is locked').to.equal(false);
      await blocker.query('rollback');
      await puback;
      expect(await storedPoints(fx().db, fx().server, b.device, 'h')).to.deep.equal([
        [T0, 0],
        [T0 + 1, 1],
      ]);
    } finally {
      await blocker.end();
    }
  });

  it('refuses a batch whole, with a typed error on the RES topic, storing nothing', async () => {
    const b = await bound('refused');
    const s = await session(b);
    const cases: Array<[unknown, number, string]> = [
      [
        {
          id: 1,
          data: {
            series: 's',
            points: [
              [T0, 1],
              [T0 + 1, 'x'],
            ],
          },
        },
        400,
        'invalid_value',
      ],
      [{ id: 2, data: { series: 's', points: [[1_000, 1]] } }, 400, 'invalid_timestamp'],
      [{ id: 3, data: { series: 'bad name!', points: [[T0, 1]] } }, 400, 'invalid_series_name'],
      [
        {
          id: 4,
          data: [
            { ts: T0, data: { s: 1 } },
            { ts: T0, data: { s: 'no' } },
          ],
        },
        400,
        'invalid_value',
      ],
      [{ data: { series: 's', points: [[T0, 1]] } }, 400, 'invalid_request'],
      [{ id: 5, key: 'short', data: { series: 's', points: [[T0, 1]] } }, 400, 'invalid_key'],
    ];
    for (const [body, code, error] of cases) {
      const endpoint = Array.isArray((body as { data: unknown }).data) ? 'messages' : 'points';
      const res = await ask(b, s, endpoint, body);
      expect(res, JSON.stringify(body)).to.deep.include({ status: 0, code });
      expect(res.data.code).to.equal(error);
    }
    const notJson = await (async () => {
      await s.client.publishAsync(b.req('points'), '{"id": 1,', { qos: 1 });
      return (await s.inbox.next()).json;
    })();
    expect(notJson).to.deep.include({ status: 0, code: 400, id: null });
    const unknown = await ask(b, s, 'nothing', { id: 9, data: {} });
    expect(unknown).to.deep.include({ status: 0, code: 404, id: 9 });
    expect(await countStoredPoints(fx().db, fx().server, b.device, ['s'])).to.equal(0);
  });

  it('answers messages, status and time, and encrypts the RES with the key of the REQ', async () => {
    const b = await bound('endpoints');
    const s = await session(b);
    const messages = await ask(b, s, 'messages', {
      id: 'm',
      data: [
        { ts: T0, data: { temperature: 21.5, humidity: 40 } },
        { ts: T0 + 1, data: { temperature: 21.6 } },
      ],
    });
    expect(messages.data).to.deep.include({ stored: 3, duplicates: 0 });
    const before = Date.now();
    const time = await ask(b, s, 'time', { id: 't' });
    expect(time).to.deep.include({ status: 1, code: 200, id: 't' });
    expect(time.data).to.be.within(before - 1, Date.now() + 1);
    const key = crypto.randomBytes(32);
    const status = await ask(b, s, 'status', { id: 's', key: key.toString('base64') });
    expect(status).to.deep.include({ status: 1, code: 200, id: 's' });
    expect(status.data).to.be.a('string');
    const plain = decryptResponse(key, status.data) as Record<string, unknown>;
    expect(plain).to.deep.include({
      status: 'active',
      identity: b.identity,
      fingerprint: b.device.fingerprint,
    });
    // The format is nonce (12) || ciphertext || tag (16); a wrong key fails.
    expect(() => decryptResponse(crypto.randomBytes(32), status.data)).to.throw();
    const refusedKey = crypto.randomBytes(32);
    const refused = await ask(b, s, 'points', {
      id: 'e',
      key: refusedKey.toString('base64'),
      data: {},
    });
    expect(refused).to.deep.include({ status: 0, code: 400, id: 'e' });
    expect((decryptResponse(refusedKey, refused.data) as { code: string }).code).to.equal(
      'invalid_series_name',
    );
  });

  it('records a state with a status, refuses one without, and shows it', async () => {
    const b = await bound('state');
    const s = await session(b);
    await s.client.publishAsync(b.state, JSON.stringify({ status: 'online', att1: 'val1' }), {
      qos: 1,
    });
    await s.client.publishAsync(b.state, JSON.stringify({ att1: 'no status' }), { qos: 1 });
    expect(s.client.connected).to.equal(true);
    const status = await ask(b, s, 'status', { id: 1 });
    expect(status.data.lastState.status).to.equal('online');
    expect(status.data.lastState.state).to.deep.equal({ status: 'online', att1: 'val1' });
    const shown = await fx().server.cli(['device', 'show', b.device.fingerprint, '--json']);
    expect(shown.code, shown.stderr).to.equal(0);
    const view = JSON.parse(shown.stdout) as { lastState: { status: string; state: unknown } };
    expect(view.lastState.status).to.equal('online');
    expect(view.lastState.state).to.deep.equal({ status: 'online', att1: 'val1' });
  });

  it('keeps devices apart: subscriptions outside the ACL get 0x80, wildcards and $SYS too', async () => {
    const a = await bound('acl-a');
    const other = await bound('acl-b');
    const s = await session(a);
    const filters = [
      other.res('+'),
      other.req('+'),
      `${a.identity}/req/${a.device.fingerprint}/+`,
      '#',
      '+/res/+/+',
      `${a.identity}/res/+/+`,
      `${a.identity}/res/${a.device.fingerprint}/#`,
      `${a.identity}/#`,
      '$SYS/#',
      a.state,
      `$share/g/${other.res('+')}`,
    ];
    for (const filter of filters) {
      // MQTT.js rejects a SUBACK with a failure code; the packet holds the code.
      const granted = await s.client.subscribeAsync(filter, { qos: 1 }).then(
        (grants) => grants.map((g) => g.qos),
        (err: { packet?: { granted?: number[] } }) => err.packet?.granted,
      );
      expect(granted, filter).to.deep.equal([128]);
    }
    // B's requests and responses never reach A.
    const t = await session(other);
    const res = await ask(other, t, 'points', {
      id: 'b',
      data: { series: 'x', points: [[T0, 1]] },
    });
    expect(res.status).to.equal(1);
    await s.client.publishAsync(a.req('time'), JSON.stringify({ id: 'a' }), { qos: 1 });
    const mine = await s.inbox.next();
    expect(mine.topic).to.equal(a.res('time'));
    expect(s.inbox.pending).to.equal(0);
  });

  it('drops a publish outside the ACL and disconnects the client, storing nothing', async () => {
    const a = await bound('pub-a');
    const other = await bound('pub-b');
    for (const topic of [
      other.req('points'),
      a.res('points'),
      `${a.identity}/req/${other.device.fingerprint}/points`,
      'anything/else',
      other.state,
    ]) {
      const client = await clients.connect(a.device);
      client.publish(topic, JSON.stringify({ id: 1, data: { series: 'p', points: [[T0, 1]] } }), {
        qos: 1,
      });
      expect(await closedWithin(client, 10_000), topic).to.equal(true);
    }
    expect(await countStoredPoints(fx().db, fx().server, other.device, ['p'])).to.equal(0);
    expect(await countStoredPoints(fx().db, fx().server, a.device, ['p'])).to.equal(0);
  });

  it('refuses QoS 2 and oversized payloads by disconnecting, storing nothing', async () => {
    const b = await bound('limits');
    const body = (n: number) =>
      JSON.stringify({ id: 1, data: { series: 'q', points: [[T0 + n, 1]] } });
    const qos2 = await clients.connect(b.device);
    qos2.publish(b.req('points'), body(0), { qos: 2 });
    expect(await closedWithin(qos2, 10_000)).to.equal(true);
    const large = await clients.connect(b.device);
    large.publish(b.req('points'), `${body(1)}${' '.repeat(5000)}`, { qos: 1 });
    expect(await closedWithin(large, 10_000)).to.equal(true);
    expect(await countStoredPoints(fx().db, fx().server, b.device, ['q'])).to.equal(0);
  });

  it('ends a connection whose packet declares more than the limit, before reading it', async () => {
    const b = await bound('declared');
    const conn = await rawConnection(fx(), b.device);
    conn.socket.write(connectPacket('big'));
    await waitForBytes(conn, 4);
    // A PUBLISH declaring 200 MB, then only a few bytes of it.
    conn.socket.write(Buffer.from([0x30, 0x80, 0x80, 0xe8, 0x5f, 0x00, 0x01, 0x61]));
    await conn.closed;
    const s = await session(b);
    expect((await ask(b, s, 'time', { id: 1 })).status).to.equal(1);
  });

  it('stores a retried (DUP) publish once, even without timestamps', async () => {
    const b = await bound('dup');
    const conn = await rawConnection(fx(), b.device);
    conn.socket.write(connectPacket('dup-client'));
    expect([...(await waitForBytes(conn, 4))]).to.deep.equal([0x20, 2, 0, 0]);
    const body = JSON.stringify({ id: 'd', data: { data: { serverTime: 7 } } });
    conn.socket.write(publishPacket(b.req('messages'), body, { qos: 1, messageId: 7 }));
    conn.socket.write(publishPacket(b.req('messages'), body, { qos: 1, messageId: 7, dup: true }));
    const acks = await waitForBytes(conn, 8);
    expect([...acks.subarray(4, 8)]).to.deep.equal([0x40, 2, 0, 7]);
    // Both PUBACKs come, the points are stored once.
    expect([...(await waitForBytes(conn, 12)).subarray(8, 12)]).to.deep.equal([0x40, 2, 0, 7]);
    conn.socket.destroy();
    expect(await countStoredPoints(fx().db, fx().server, b.device, ['serverTime'])).to.equal(1);
  });

  it('closes the connection on a malformed packet and keeps serving', async () => {
    const b = await bound('malformed');
    const garbage: Buffer[] = [
      Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f]), // remaining length over 4 bytes
      Buffer.from([0x00, 0x00]), // reserved packet type 0
      Buffer.concat([connectPacket('x'), Buffer.from([0x82, 0x04, 0x00, 0x01, 0x00, 0x00])]), // SUBSCRIBE, empty filter
      Buffer.concat([connectPacket('y'), publishPacket('a/#', '{}', { qos: 0 })]), // wildcard in PUBLISH
    ];
    for (const bytes of garbage) {
      const conn = await rawConnection(fx(), b.device);
      conn.socket.write(bytes);
      await conn.closed;
    }
    const s = await session(b);
    expect((await ask(b, s, 'time', { id: 1 })).status).to.equal(1);
  });

  it('refuses a will outside the state topic, and records a will on it', async () => {
    const b = await bound('will');
    const other = await bound('will-b');
    const refused = await connectDevice(fx(), b.device, {
      will: { topic: other.res('points'), payload: Buffer.from('{}'), qos: 0, retain: false },
    }).then(
      () => null,
      (e: Error & { code?: number }) => e,
    );
    expect(refused?.code).to.equal(5);
    const willing = await connectDevice(fx(), b.device, {
      will: {
        topic: b.state,
        payload: Buffer.from(JSON.stringify({ status: 'offline' })),
        qos: 1,
        retain: true,
      },
    });
    // An unclean end: the broker publishes the will.
    willing.stream.destroy();
    const s = await session(b);
    let lastState: { status?: string } | null = null;
    for (let i = 0; i < 50 && lastState?.status !== 'offline'; i++) {
      lastState = (await ask(b, s, 'status', { id: i })).data.lastState;
      if (lastState?.status !== 'offline') await new Promise((r) => setTimeout(r, 100));
    }
    expect(lastState).to.deep.include({ status: 'offline' });
  });

  it('disconnects a revoked device and refuses it afterwards', async () => {
    const b = await bound('revoke');
    const s = await session(b);
    expect((await ask(b, s, 'time', { id: 1 })).status).to.equal(1);
    const result = await fx().server.cli(['device', 'revoke', b.device.fingerprint]);
    expect(result.code, result.stderr).to.equal(0);
    await s.inbox.closed;
    const err = await connectDevice(fx(), b.device).then(
      () => null,
      (e: Error & { code?: number }) => e,
    );
    expect(err?.code).to.equal(5);
  });

  it('works with mosquitto_pub and mosquitto_sub over mTLS', async () => {
    const b = await bound('mosquitto');
    const tlsArgs = mosquittoTlsArgs(fx(), b.device);
    const key = crypto.randomBytes(32);
    // mosquitto_sub waits for one RES; it is subscribed once it printed nothing yet, so
    // the test publishes until the answer arrives.
    const sub = spawn('mosquitto_sub', [
      ...tlsArgs,
      '-t',
      b.res('+'),
      '-q',
      '1',
      '-C',
      '1',
      '-W',
      '30',
    ]);
    let out = '';
    sub.stdout.on('data', (chunk: Buffer) => (out += String(chunk)));
    const exited = new Promise<number | null>((resolve) => sub.once('exit', resolve));
    let attempt = 0;
    while (out === '' && sub.exitCode === null && attempt < 20) {
      attempt += 1;
      const pub = await mosquitto('mosquitto_pub', [
        ...tlsArgs,
        '-q',
        '1',
        '-t',
        b.req('points'),
        '-m',
        JSON.stringify({
          id: `p${attempt}`,
          key: key.toString('base64'),
          data: { series: 'm', points: [[T0, 1.5]] },
        }),
      ]);
      expect(pub.code, pub.stderr).to.equal(0);
      // mosquitto_pub exits after the PUBACK: the point is committed.
      expect(await storedPoints(fx().db, fx().server, b.device, 'm')).to.deep.equal([[T0, 1.5]]);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(await exited).to.equal(0);
    const res = JSON.parse(out) as { status: number; code: number; data: string };
    expect(res).to.deep.include({ status: 1, code: 200 });
    expect(decryptResponse(key, res.data)).to.have.property('series');
    // A state, and a publish outside the ACL refused.
    const state = await mosquitto('mosquitto_pub', [
      ...tlsArgs,
      '-q',
      '1',
      '-t',
      b.state,
      '-m',
      '{"status":"online"}',
    ]);
    expect(state.code, state.stderr).to.equal(0);
    const denied = await mosquitto('mosquitto_pub', [
      ...tlsArgs,
      '-q',
      '1',
      '-t',
      'other/req/x/points',
      '-m',
      '{}',
    ]);
    expect(denied.code).to.not.equal(0);
    const refused = await mosquitto('mosquitto_pub', [
      ...mosquittoTlsArgs(fx(), newDevice()),
      '-t',
      b.req('time'),
      '-m',
      '{}',
    ]);
    expect(refused.code).to.not.equal(0);
    expect(refused.stderr).to.match(/not authori[sz]ed/i);
  });
});

describe('MQTT channel: messages per minute', function () {
  this.timeout(60_000);
  const fx = useFixture({ FLEETGATE_MQTT_PORT: '0', FLEETGATE_MQTT_MESSAGES_PER_MINUTE: '2' });

  it('answers the message over the budget with 429 on its RES topic and stores nothing from it', async () => {
    const identity = uniqueName('mqtt-rate');
    const { device } = await fx().boundDevice(identity);
    const client = await connectDevice(fx(), device);
    try {
      const topics = deviceTopics(identity, device);
      const inbox = new Inbox(client);
      await client.subscribeAsync(topics.res('+'), { qos: 1 });
      const codes: number[] = [];
      for (let i = 0; i < 3; i++) {
        await client.publishAsync(
          topics.req('points'),
          JSON.stringify({ id: `r${i}`, data: { series: 'rate', points: [[T0 + i, i]] } }),
          { qos: 1 },
        );
        codes.push((await inbox.next()).json.code);
      }
      expect(codes).to.deep.equal([200, 200, 429]);
      expect(await countStoredPoints(fx().db, fx().server, device, ['rate'])).to.equal(2);
    } finally {
      await client.endAsync(true).catch(() => undefined);
    }
  });
});

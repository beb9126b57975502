import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import mqtt, { type MqttClient } from 'mqtt';
import { AdminClient, boundDevice, useFleetgate } from '../support/admin-client.js';
import {
  citusCluster,
  createCitusTestDatabase,
  query,
  useCitusCluster,
} from '../support/citus-cluster.js';
import { DeviceClient, newDevice, type TestDevice } from '../support/device-client.js';
import { startFleetgate, type FleetgateProcess } from '../support/fleetgate-process.js';
import { burstWithoutTs, expectBurstStoredOnce } from '../support/server-time-burst.js';
import { completeRotation, opensslKeyPair, proveRotation } from '../support/rotation.js';
import { openWatchedSocket } from '../support/websocket-client.js';
import { serverLogCaughtUp } from '../support/server-log.js';

const lines = (from: number, n: number, step = 1000) =>
  Array.from({ length: n }, (_, i) => `${from + i * step},${i}`).join('\n');

/**
 * fleetgate on a real Citus cluster (a coordinator and two workers): the
 * schema is distributed by `fleetgate migrate`, and the device paths work
 * with rows that live on the workers.
 */
describe('fleetgate on a Citus cluster', function () {
  this.timeout(180_000);
  useCitusCluster();
  // Node A of the two-node test: its channels' revocation poll as slow as
  // allowed, and MQTT on, so that a session closed at once was closed by the news.
  const fg = useFleetgate(
    {
      FLEETGATE_MQTT_PORT: '0',
      FLEETGATE_WS_REVOCATION_POLL_MS: '60000',
      FLEETGATE_MQTT_REVOCATION_POLL_MS: '60000',
    },
    createCitusTestDatabase,
  );
  afterEach(function () {
    // A failure on Citus is usually a refused distributed query: show the server's errors.
    if (this.currentTest?.state !== 'failed') return;
    const errors = fg.server
      .output()
      .split('\n')
      .filter((l) => l.includes('"level":50'));
    console.error(errors.slice(-3).join('\n').slice(0, 3000));
  });
  const sql = <R extends Record<string, unknown>>(text: string, values: unknown[] = []) =>
    query<R>(fg.db.url!, text, values);

  it('migrate distributed the fleet tables by device, colocated, and the small ones as reference tables', async () => {
    const rows = await sql<{
      name: string;
      method: string;
      column: string | null;
      colocation: number;
    }>(
      `select logicalrelid::text as name, partmethod as method,
              column_to_column_name(logicalrelid, partkey) as column, colocationid as colocation
       from pg_dist_partition where logicalrelid::text not like 'points\\_2%' order by 1`,
    );
    const byName = Object.fromEntries(rows.map((r) => [r.name, r]));
    for (const t of [
      'identities',
      'psks',
      'certificate_authorities',
      'ca_revoked_serials',
      'device_names',
    ]) {
      expect(byName[t]?.method, t).to.equal('n');
    }
    const devices = byName.devices!;
    expect(devices).to.include({ method: 'h', column: 'id' });
    for (const t of [
      'device_certificates',
      'series',
      'points',
      'rotation_challenges',
      'pending_rotations',
      'registrations',
      'device_states',
      'device_chain_serials',
      'audit_events',
    ]) {
      expect(byName[t], t).to.include({
        method: 'h',
        column: 'device_id',
        colocation: devices.colocation,
      });
    }
    expect(byName.certificate_fingerprints).to.include({ method: 'h', column: 'fingerprint' });
    // Month partitions of points are distributed with their parent.
    const months = await sql<{ n: string }>(
      "select count(*) as n from pg_dist_partition where logicalrelid::text ~ '^points_\\d{4}_\\d{2}$'",
    );
    expect(Number(months[0]!.n)).to.be.greaterThan(0);
    // Running migrate again distributes nothing twice and fails on nothing.
    expect((await fg.server.cli(['migrate'])).code).to.equal(0);
    // A database distributed before the migration that drops the devices trigger
    // (the news now comes from the application) takes it: Citus refuses even
    // `drop trigger if exists` on a distributed table.
    // (With the migrations after it too: kysely refuses a gap in the executed ones.)
    await sql(
      "delete from kysely_migration where name >= '2026-12-03T0600_device_events_from_application'",
    );
    const upgrade = await fg.server.cli(['migrate']);
    expect(upgrade.code, upgrade.stderr).to.equal(0);
    const [{ n }] = await sql<{ n: string }>(
      "select count(*)::text as n from kysely_migration where name = '2026-12-03T0600_device_events_from_application'",
    );
    expect(n).to.equal('1');
  });

  it('walks through the README: identity, PSK, bind, upload, export; the points live on the workers', async () => {
    expect((await fg.server.cli(['identity', 'create', 'walk'])).code).to.equal(0);
    const psk = (
      await fg.server.cli(['psk', 'issue', 'walk', '--max-devices', '10'])
    ).stdout.trim();
    const device = newDevice();
    const client = await boundDevice(fg.server, device, psk);
    try {
      const upload = await client.upload([
        { name: 'hr_measurement', content: lines(1_526_292_559_000, 3) },
      ]);
      expect(upload.status, upload.text).to.equal(200);
      expect(upload.json).to.deep.include({ stored: 3, duplicates: 0 });
      const again = await client.upload([
        { name: 'hr_measurement', content: lines(1_526_292_559_000, 3) },
      ]);
      expect(again.json).to.deep.include({ stored: 0, duplicates: 3 });
      const exported = await fg.server.cli(['export', device.fingerprint, 'hr_measurement']);
      expect(exported.stdout.trim().split('\n')).to.deep.equal(
        lines(1_526_292_559_000, 3).split('\n'),
      );
      // The coordinator holds no point: they are in the shards on the workers.
      const [{ id }] = await sql<{ id: number }>(
        'select device_id as id from device_certificates where fingerprint = $1',
        [device.fingerprint],
      );
      const placement = await sql<{ port: number }>(
        `select nodeport as port from citus_shards
         where table_name = 'points_1998_05'::regclass
           and shardid = get_shard_id_for_distribution_column('points_1998_05', $1::int)`,
        [id],
      ).catch(async () =>
        sql<{ port: number }>(
          `select p.nodeport as port from pg_dist_shard s join pg_dist_placement pl using (shardid)
           join pg_dist_node p using (groupid)
           where s.shardid = get_shard_id_for_distribution_column('points', $1::int)`,
          [id],
        ),
      );
      const workerPorts = (await citusCluster()).nodes.slice(1).map((n) => n.port);
      expect(workerPorts).to.include(placement[0]!.port);
      // Audit entries are distributed by device too: the bind is on the device's
      // shard, the PSK's issue (no device) reads back as deviceId null.
      const audit = JSON.parse((await fg.server.cli(['audit', 'walk', '--json'])).stdout) as {
        events: { action: string; deviceId: number | null }[];
      };
      const actions = Object.fromEntries(audit.events.map((e) => [e.action, e.deviceId]));
      expect(actions['device.bound']).to.equal(id);
      expect(actions['psk.issued']).to.equal(null);
      const [{ shards }] = await sql<{ shards: string }>(
        `select count(*) as shards from citus_shards where table_name = 'audit_events'::regclass`,
      );
      expect(Number(shards)).to.be.greaterThan(1);
    } finally {
      await client.close();
    }
  });

  it('binds exactly the identity device limit when devices bind at once, and never moves a certificate', async () => {
    const limit = 4;
    await fg.admin.post('/v1/identities', { name: 'capped', maxDevices: limit });
    const psks = await Promise.all([1, 2].map(() => fg.admin.issuePsk('capped')));
    const clients = Array.from({ length: 10 }, () => new DeviceClient(fg.server, newDevice()));
    try {
      await Promise.all(clients.map((c) => c.send('GET')));
      const answers = await Promise.all(clients.map((c, i) => c.bind(psks[i % psks.length])));
      const bound = answers.filter((a) => a.status === 200);
      expect(bound).to.have.length(limit);
      for (const refused of answers.filter((a) => a.status !== 200)) {
        expect(refused.status, refused.text).to.equal(403);
        expect(refused.json.code).to.equal('identity_device_limit');
      }
      expect((await fg.admin.get('/v1/identities/capped')).json).to.deep.include({
        devices: limit,
      });
      // A bound certificate stays with its identity: another identity's PSK cannot take it.
      const other = await fg.admin.identityWithPsk('thief');
      const taken = clients[answers.findIndex((a) => a.status === 200)]!;
      const steal = await taken.bind(other);
      expect(steal.status, steal.text).to.be.within(400, 499);
      const fingerprints = await sql<{ n: string }>(
        'select count(*) as n from certificate_fingerprints',
      );
      const certificates = await sql<{ n: string }>(
        'select count(*) as n from device_certificates',
      );
      expect(fingerprints[0]!.n).to.equal(certificates[0]!.n);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });

  it('stores a large upload through COPY once, also when it is retried and repeats timestamps', async () => {
    const client = await boundDevice(
      fg.server,
      newDevice(),
      await fg.admin.identityWithPsk('copy'),
    );
    try {
      const n = 30_000;
      // Two points share a timestamp: the first one wins.
      const content = `${lines(1_700_000_000_000, n, 10)}\n1700000000000,99`;
      const first = await client.upload([{ name: 'big', content }]);
      expect(first.status, first.text).to.equal(200);
      expect(first.json).to.deep.include({ stored: n, duplicates: 1 });
      const retry = await client.upload([{ name: 'big', content }]);
      expect(retry.json).to.deep.include({ stored: 0, duplicates: n + 1 });
      const [row] = await sql<{ n: string; v: number }>(
        "select count(*) as n, min(value) filter (where ts = to_timestamp(1700000000)) as v from points p join series s on s.id = p.series_id and s.device_id = p.device_id where s.name = 'big'",
      );
      expect(Number(row!.n)).to.equal(n);
      expect(row!.v).to.equal(0);
    } finally {
      await client.close();
    }
  });

  it('answers queries and buckets from the shards', async () => {
    const device = newDevice();
    const client = await boundDevice(fg.server, device, await fg.admin.identityWithPsk('readers'));
    try {
      const B = 1_700_000_040_000;
      const content = [`${B - 1},100`, `${B},1`, `${B + 30_000},2`, `${B + 60_000},10.5`].join(
        '\n',
      );
      expect((await client.upload([{ name: 'temp', content }])).status).to.equal(200);
      const base = `/v1/devices/${device.fingerprint}`;
      const series = (await fg.admin.get(`${base}/series`)).json.series;
      expect(series).to.have.length(1);
      expect(series[0]).to.deep.include({ name: 'temp', points: 4 });
      const range = await fg.admin.get(`${base}/points?series=temp&from=${B}&to=${B + 60_000}`);
      expect(range.status, range.text).to.equal(200);
      expect(range.json.points.map((p: { t: number }) => p.t)).to.deep.equal([B, B + 30_000]);
      const buckets = await fg.admin.get(
        `${base}/points?series=temp&from=${B - 60_000}&to=${B + 120_000}&bucket=1m`,
      );
      expect(buckets.status, buckets.text).to.equal(200);
      expect(
        buckets.json.buckets.map((b: { t: number; count: number }) => [b.t, b.count]),
      ).to.deep.equal([
        [B - 60_000, 1],
        [B, 2],
        [B + 60_000, 1],
      ]);
    } finally {
      await client.close();
    }
  });

  it('rotates a certificate and refuses a revoked device', async () => {
    const psk = await fg.admin.identityWithPsk('rotating');
    const oldCert = opensslKeyPair('ec', 'meter-1');
    const nextCert = opensslKeyPair('ec', 'meter-1');
    const oldClient = await boundDevice(fg.server, oldCert, psk);
    const newClient = new DeviceClient(fg.server, nextCert);
    try {
      const rotation = await proveRotation(oldClient, oldCert, nextCert);
      expect(rotation.status, rotation.text).to.equal(202);
      const done = await completeRotation(newClient, rotation.json.completionSecret);
      expect(done.status, done.text).to.equal(200);
      const upload = await newClient.upload([
        { name: 'temp', content: lines(1_700_000_000_000, 2) },
      ]);
      expect(upload.status, upload.text).to.equal(200);
      const revoked = await fg.admin.post(`/v1/devices/${nextCert.fingerprint}/revoke`, {});
      expect(revoked.status, revoked.text).to.equal(200);
      const refused = await newClient.upload([
        { name: 'temp', content: lines(1_700_000_100_000, 1) },
      ]);
      expect(refused.status).to.equal(403);
    } finally {
      await Promise.all([oldClient.close(), newClient.close()]);
    }
  });

  describe('two nodes on the cluster: news of a revocation made on node B closes the sessions node A holds', () => {
    let nodeB: FleetgateProcess;
    let adminB: AdminClient;
    const opened: Array<() => Promise<void> | void> = [];
    before(async function () {
      this.timeout(120_000);
      nodeB = await startFleetgate(fg.db, {
        FLEETGATE_DATA_DIR: path.join(fg.db.workDir, 'data-b'),
      });
      adminB = new AdminClient(nodeB);
      // Both nodes' event buses listen on the coordinator before anything is revoked.
      for (let attempt = 0; attempt < 400; attempt++) {
        const [{ n }] = await sql<{ n: string }>(
          `select count(*)::text as n from pg_stat_activity
           where datname = current_database() and state = 'idle'
             and query = 'listen fleetgate_device_events'`,
        );
        if (Number(n) >= 2) break;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    });
    after(async () => {
      for (const close of opened) await close();
      await adminB?.close();
      await nodeB?.stop();
    });

    /** A device bound through node A, holding a WebSocket and an MQTT session on node A. */
    async function sessionsOnA(identity: string) {
      const psk = await fg.admin.identityWithPsk(identity);
      const device = newDevice();
      const client = await boundDevice(fg.server, device, psk);
      opened.push(() => client.close());
      const [{ id }] = await sql<{ id: number }>(
        'select device_id as id from device_certificates where fingerprint = $1',
        [device.fingerprint],
      );
      const ws = await openWatchedSocket(fg.server, device);
      opened.push(() => ws.socket.terminate());
      const mq = await connectMqtt(fg.server, device);
      opened.push(() => mq.client.endAsync(true).catch(() => undefined));
      return { device, id: Number(id), ws, mq };
    }

    /** What node A logged when it closed sessions of this device: once it logged `count` closes. */
    async function closedOnA(deviceId: number, count: number) {
      const logged = () =>
        fg.server
          .output()
          .split('\n')
          .filter((line) => line.includes('connections closed'))
          .map(
            (line) =>
              JSON.parse(line) as { msg: string; by: string; reason: string; devices: number[] },
          )
          .filter((entry) => entry.devices.includes(deviceId))
          .map((entry) => ({ msg: entry.msg, by: entry.by, reason: entry.reason }));
      // The client may see its socket closed before the server's log line reaches us.
      const stdout = fg.server.child.stdout!;
      while (logged().length < count) await once(stdout, 'data');
      // Those closes and no other (a line still on its way included).
      await serverLogCaughtUp(fg.server);
      return logged();
    }

    it("revoked through node B's admin API: node A closes its WebSocket and MQTT sessions on the news", async () => {
      const { device, id, ws, mq } = await sessionsOnA('news-revoked');
      const revoked = await adminB.post(`/v1/devices/${device.fingerprint}/revoke`, {
        reason: 'stolen',
      });
      expect(revoked.status, revoked.text).to.equal(200);
      expect(await ws.closed).to.deep.equal({ code: 1008, reason: 'device_revoked' });
      await mq.closed;
      // Node A's poll runs once a minute: the log says the news closed them.
      expect(await closedOnA(id, 2)).to.have.deep.members([
        { msg: 'WebSocket connections closed', by: 'news', reason: 'device_revoked' },
        { msg: 'MQTT connections closed', by: 'news', reason: 'device_revoked' },
      ]);
    });

    it("identity disabled through node B's CLI: node A closes its devices' sessions on the news", async () => {
      const { id, ws, mq } = await sessionsOnA('news-disabled');
      const disabled = await nodeB.cli(['identity', 'disable', 'news-disabled']);
      expect(disabled.code, disabled.stderr).to.equal(0);
      expect(await ws.closed).to.deep.equal({ code: 1008, reason: 'device_revoked' });
      await mq.closed;
      expect((await closedOnA(id, 2)).map((e) => e.msg + ' by ' + e.by)).to.have.members([
        'WebSocket connections closed by news',
        'MQTT connections closed by news',
      ]);
    });

    it("certificate replaced through node B's CLI: node A closes the sessions of the retired one on the news", async () => {
      const { device, id, ws, mq } = await sessionsOnA('news-replaced');
      const next = newDevice();
      const file = path.join(fg.db.workDir, 'replacement.crt');
      fs.writeFileSync(file, next.certPem);
      const replaced = await nodeB.cli(['device', 'replace-cert', device.fingerprint, file]);
      expect(replaced.code, replaced.stderr).to.equal(0);
      expect(await ws.closed).to.deep.equal({ code: 1008, reason: 'certificate_refused' });
      await mq.closed;
      expect(await closedOnA(id, 2)).to.have.deep.members([
        { msg: 'WebSocket connections closed', by: 'news', reason: 'certificate_refused' },
        { msg: 'MQTT connections closed', by: 'news', reason: 'certificate_refused' },
      ]);
    });

    it('stores exactly once every reading without ts that either node answered with 200', async () => {
      // The server time of a device without ts is taken from its row (on a worker): before,
      // each node kept its own, and readings of one millisecond on both nodes collided.
      const psk = await fg.admin.identityWithPsk('nots-nodes');
      const device = newDevice();
      const clients = [
        new DeviceClient(fg.server, device, 16),
        new DeviceClient(nodeB, device, 16),
      ];
      opened.push(...clients.map((client) => () => client.close()));
      const bound = await clients[0]!.bind(psk);
      expect(bound.status, bound.text).to.equal(200);
      await expectBurstStoredOnce(fg.db, device.fingerprint, await burstWithoutTs(clients, 2, 64));
    });
  });
});

async function connectMqtt(
  server: FleetgateProcess,
  device: TestDevice,
): Promise<{ client: MqttClient; closed: Promise<void> }> {
  const port = /"mqttPort":(\d+)/.exec(server.output())?.[1];
  if (!port) throw new Error(`no MQTT listener in the server log:\n${server.output()}`);
  const client = await mqtt.connectAsync(`mqtts://localhost:${port}`, {
    ca: server.caPem,
    cert: device.certPem,
    key: device.keyPem,
    reconnectPeriod: 0,
    protocolVersion: 4,
    connectTimeout: 10_000,
  });
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  return { client, closed };
}

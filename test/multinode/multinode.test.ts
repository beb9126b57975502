/**
 * Three fleetgate nodes on one PostgreSQL (and one Redis) behind a real nginx
 * upstream (issue 15, "Stateless nodes"). Requests meant for one node go to
 * that node's Unix socket with the certificate header, exactly as nginx
 * forwards them; the rest go through nginx, which spreads them over the nodes.
 */
import crypto from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import { WebSocket } from 'ws';
import { AdminClient } from '../support/admin-client.js';
import {
  buildMultipart,
  DeviceClient,
  newDevice,
  readAnswer,
  type Answer,
  type TestDevice,
} from '../support/device-client.js';
import { startFleetgate, type FleetgateProcess } from '../support/fleetgate-process.js';
import {
  escapedPem,
  skipUnlessNginx,
  startNginxFront,
  type NginxFront,
} from '../support/nginx-front.js';
import { skipBecause } from '../support/skip.js';
import {
  createTestDatabase,
  queryTestDatabase,
  type TestDatabase,
} from '../support/test-database.js';
import { sClient } from '../support/openssl-client.js';
import { serverLogCaughtUp } from '../support/server-log.js';

const REDIS_URL = process.env.FLEETGATE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

async function redisAnswers(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/** The generated admin token, from the one node that printed it. */
function printedTokens(nodes: FleetgateProcess[]): string[] {
  return nodes.flatMap((node) => {
    const match = /shown this once, store it now:\s+(fgadm_\S+)/.exec(node.output());
    return match ? [match[1]!] : [];
  });
}

describe('several nodes on one PostgreSQL behind nginx', function () {
  this.timeout(180_000);
  let db: TestDatabase;
  let nodes: FleetgateProcess[] = [];
  let nginx: NginxFront;
  let agents: Agent[] = [];
  let admins: AdminClient[] = [];
  let extraNodes: FleetgateProcess[] = [];

  before(async function () {
    if (!process.env.DATABASE_URL) {
      skipBecause(
        this,
        'several nodes share one PostgreSQL server; the embedded database belongs to one process',
      );
    }
    skipUnlessNginx(this);
    if (!(await redisAnswers(REDIS_URL))) {
      skipBecause(this, `no Redis at ${REDIS_URL} (apt-get install redis-server)`);
    }
    db = await createTestDatabase();
    const common = {
      FLEETGATE_PROXY_MODE: 'nginx',
      FLEETGATE_REDIS_URL: REDIS_URL,
      // No configured token: the nodes must agree on a generated one.
      FLEETGATE_ADMIN_TOKEN: '',
      FLEETGATE_BIND_FAILURES_PER_ADDRESS: '1000',
      FLEETGATE_BIND_FAILURES_PER_CERTIFICATE: '5',
      FLEETGATE_UPLOADS_PER_DEVICE: '4',
      FLEETGATE_UPLOAD_WINDOW_SECONDS: '3600',
      // At their slowest: a WebSocket closed at once was closed by the news, not the poll.
      FLEETGATE_WS_REVOCATION_POLL_MS: '60000',
    };
    // Started together on an empty database: each one migrates and sets up the admin token.
    nodes = await Promise.all(
      [0, 1, 2].map((i) =>
        startFleetgate(db, {
          ...common,
          FLEETGATE_DATA_DIR: path.join(db.workDir, `data-${i}`),
          FLEETGATE_LISTEN_SOCKET: path.join(db.workDir, `node-${i}.sock`),
        }),
      ),
    );
    nginx = await startNginxFront(
      nodes[0]!,
      db.workDir,
      nodes.flatMap((node) => ['--upstream', `unix:${node.socketPath!}`]),
    );
    agents = nodes.map((node) => new Agent({ connect: { socketPath: node.socketPath! } }));
    const token = printedTokens(nodes)[0] ?? '';
    admins = nodes.map((node) => new AdminClient(node, token));
  });
  after(async function () {
    this.timeout(60_000);
    await Promise.all(agents.map((agent) => agent.close()));
    await Promise.all(admins.map((admin) => admin.close()));
    await nginx?.stop();
    await Promise.all([...nodes, ...extraNodes].map((node) => node.stop()));
    await db?.drop();
  });

  /** A request to node `i` as nginx forwards it: plain HTTP on its socket, certificate in the header. */
  async function viaNode(
    i: number,
    device: TestDevice,
    body: string | Buffer,
    contentType: string,
  ): Promise<Answer> {
    const res = await request('http://localhost/device_endpoint', {
      method: 'POST',
      dispatcher: agents[i % nodes.length]!,
      headers: { 'x-ssl-client-cert': escapedPem(device.certPem), 'content-type': contentType },
      body,
    });
    return readAnswer(res);
  }
  const bindVia = (i: number, device: TestDevice, psk: string) =>
    viaNode(i, device, JSON.stringify({ PSK: psk }), 'application/json');
  const uploadVia = (i: number, device: TestDevice, csv: string) => {
    const { body, contentType } = buildMultipart([{ name: 'temperature', content: csv }]);
    return viaNode(i, device, body, contentType);
  };
  async function boundDevice(identity: string): Promise<TestDevice> {
    const psk = await admins[0]!.identityWithPsk(identity);
    const device = newDevice();
    const bound = await bindVia(1, device, psk);
    expect(bound.status, bound.text).to.equal(200);
    return device;
  }

  it('nodes started together on an empty database generate one admin token, accepted by all', async () => {
    // Every line each node wrote at start is in (the token goes to stderr before the
    // listening line), so that a second node showing a token would be seen.
    await Promise.all(nodes.map((node) => serverLogCaughtUp(node)));
    const tokens = printedTokens(nodes);
    expect(tokens, 'exactly one node generated and showed the token').to.have.length(1);
    for (const admin of admins) {
      const answer = await admin.get('/v1/identities');
      expect(answer.status, answer.text).to.equal(200);
    }
    const rows = await queryTestDatabase<{ n: string }>(
      db,
      'select count(*)::text as n from admin_tokens',
    );
    expect(rows[0]!.n).to.equal('1');
  });

  it("holds an identity's device limit under concurrent binds spread over the nodes", async () => {
    const psk = await admins[0]!.identityWithPsk('limited', 3);
    const devices = Array.from({ length: 12 }, () => newDevice());
    const answers = await Promise.all(devices.map((device, i) => bindVia(i, device, psk)));
    const bound = answers.filter((a) => a.status === 200);
    expect(bound, answers.map((a) => a.text).join('\n')).to.have.length(3);
    for (const answer of answers.filter((a) => a.status !== 200)) {
      expect(answer.status, answer.text).to.be.within(400, 499);
      expect(answer.status).to.not.equal(429);
    }
    const rows = await queryTestDatabase<{ n: string }>(
      db,
      `select count(*)::text as n from devices d join identities i on i.id = d.identity_id
       where i.name = 'limited'`,
    );
    expect(rows[0]!.n).to.equal('3');
  });

  it('shares the bind-failure limit: the 6th failure of a certificate is 429 on every node', async () => {
    const device = newDevice();
    const wrong = `fgpsk_${crypto.randomBytes(24).toString('base64url')}`;
    for (let i = 0; i < 5; i++) {
      const answer = await bindVia(i, device, wrong);
      expect(answer.status, `failure ${i + 1} on node ${i % 3}: ${answer.text}`).to.be.within(
        400,
        428,
      );
    }
    for (let i = 0; i < nodes.length; i++) {
      const answer = await bindVia(i, device, wrong);
      expect(answer.status, `node ${i}: ${answer.text}`).to.equal(429);
      expect(answer.json.code).to.equal('too_many_failed_binds');
      expect(answer.headers['retry-after']).to.match(/^\d+$/);
    }
  });

  it('shares the upload limit: 4 uploads over three nodes, then 429 on every node', async () => {
    const device = await boundDevice('uploads');
    for (let i = 0; i < 4; i++) {
      const answer = await uploadVia(i, device, `${1_700_000_000_000 + i},${i}\n`);
      expect(answer.status, `upload ${i + 1} on node ${i % 3}: ${answer.text}`).to.equal(200);
    }
    for (let i = 0; i < nodes.length; i++) {
      const answer = await uploadVia(i, device, '1700000009000,9\n');
      expect(answer.status, `node ${i}: ${answer.text}`).to.equal(429);
      expect(answer.json.code).to.equal('upload_rate_limited');
    }
  });

  it('a device revoked through node A is refused by node B and C at once, and its WebSocket on C is closed', async () => {
    const device = await boundDevice('revoked');
    const ws = new WebSocket(`ws+unix://${nodes[2]!.socketPath!}:/device_endpoint/ws`, {
      headers: { 'x-ssl-client-cert': escapedPem(device.certPem) },
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
    );
    const revoked = await admins[0]!.post(`/v1/devices/${device.fingerprint}/revoke`, {
      reason: 'stolen',
    });
    expect(revoked.status, revoked.text).to.equal(200);
    for (const i of [1, 2]) {
      const answer = await uploadVia(i, device, '1700000000000,1\n');
      expect(answer.status, `node ${i}: ${answer.text}`).to.equal(403);
      expect(answer.json.code).to.equal('device_revoked');
    }
    expect(await closed).to.deep.equal({ code: 1008, reason: 'device_revoked' });
    // Node C says why it closed the socket: the news of node A's transaction.
    const [{ id }] = await queryTestDatabase<{ id: number }>(
      db,
      'select device_id as id from device_certificates where fingerprint = $1',
      [device.fingerprint],
    );
    const closes = () =>
      nodes[2]!
        .output()
        .split('\n')
        .filter((line) => line.includes('WebSocket connections closed'))
        .map((line) => JSON.parse(line) as { by: string; devices: number[] })
        .filter((entry) => entry.devices.includes(Number(id)));
    // The client may see its socket closed before the server's log line reaches us.
    while (closes().length === 0) await once(nodes[2]!.child.stdout!, 'data');
    // Closed once, by the news, and by nothing else (a line still on its way included).
    await serverLogCaughtUp(nodes[2]!);
    expect(closes().map((entry) => entry.by)).to.deep.equal(['news']);
  });

  it('a node killed (SIGKILL) mid-upload: the retry through nginx stores every point once', async () => {
    const device = await boundDevice('killed');
    const count = 20_000;
    const csv = Array.from({ length: count }, (_, i) => `${1_700_000_000_000 + i * 1000},${i}\n`);
    const { body, contentType } = buildMultipart([{ name: 'temperature', content: csv.join('') }]);
    const victim = nodes[2]!;
    // The first attempt reaches node C and stalls halfway through its body.
    const { PassThrough } = await import('node:stream');
    const stream = new PassThrough();
    const attempt = request('http://localhost/device_endpoint', {
      method: 'POST',
      dispatcher: agents[2]!,
      headers: {
        'x-ssl-client-cert': escapedPem(device.certPem),
        'content-type': contentType,
        'content-length': String(body.length),
      },
      body: stream,
    }).then(
      () => 'answered',
      () => 'cut',
    );
    stream.write(body.subarray(0, Math.floor(body.length / 2)));
    await waitForOpenTransaction(db);
    victim.child.kill('SIGKILL');
    expect(await attempt).to.equal('cut');
    stream.destroy();
    const client = new DeviceClient({ baseUrl: nginx.baseUrl, caPem: nginx.caPem }, device);
    try {
      // The device retries through nginx until a living node answers.
      let answer: Answer | undefined;
      for (let tries = 0; tries < 10 && answer?.status !== 200; tries++) {
        answer = await client.send('POST', body, { 'content-type': contentType });
        if (answer.status !== 200) expect(answer.status, answer.text).to.equal(503);
      }
      expect(answer!.status, answer!.text).to.equal(200);
      expect(answer!.json).to.include({ stored: count, duplicates: 0 });
      // A second retry (the device missed the 200) doubles nothing.
      const again = await client.send('POST', body, { 'content-type': contentType });
      expect(again.status, again.text).to.equal(200);
      expect(again.json).to.include({ stored: 0, duplicates: count });
    } finally {
      await client.close();
    }
    const rows = await queryTestDatabase<{ n: string }>(
      db,
      `select count(*)::text as n from points p join series s on s.id = p.series_id
       join device_certificates c on c.device_id = s.device_id where c.fingerprint = $1`,
      [device.fingerprint],
    );
    expect(rows[0]!.n).to.equal(String(count));
  });

  describe('TLS resumption on another node (direct mode)', () => {
    let ca: string[];
    let auth: string[];
    let fingerprint: string;

    before(async function () {
      this.timeout(120_000);
      extraNodes = await Promise.all(
        [3, 4].map((i) =>
          startFleetgate(db, {
            FLEETGATE_ADMIN_TOKEN: 'fgadm_direct_nodes_' + 'x'.repeat(24),
            FLEETGATE_DATA_DIR: path.join(db.workDir, `data-${i}`),
          }),
        ),
      );
      const device = newDevice();
      const dir = fs.mkdtempSync(path.join(db.workDir, 'tls-device-'));
      fs.writeFileSync(path.join(dir, 'device.crt'), device.certPem);
      fs.writeFileSync(path.join(dir, 'device.key'), device.keyPem);
      auth = ['-cert', path.join(dir, 'device.crt'), '-key', path.join(dir, 'device.key')];
      ca = [
        '-CAfile',
        path.join(db.env.FLEETGATE_CERTS_DIR!, 'dev-ca.crt'),
        '-verify_return_error',
      ];
      const psk = await admins[0]!.identityWithPsk('resumed');
      const client = new DeviceClient(extraNodes[0]!, device);
      const bound = await client.bind(psk);
      await client.close();
      expect(bound.status, bound.text).to.equal(200);
      fingerprint = device.fingerprint;
    });

    it('a session ID from node D resumes on node E (TLS 1.2, tickets off)', async () => {
      const file = path.join(db.workDir, 'session-id.pem');
      const first = await sClient(extraNodes[0]!.port, [
        '-tls1_2',
        '-no_ticket',
        '-sess_out',
        file,
        ...ca,
        ...auth,
      ]);
      expect(first).to.match(/New, TLSv1\.2/);
      const second = await sClient(extraNodes[1]!.port, [
        '-tls1_2',
        '-no_ticket',
        '-sess_in',
        file,
        ...ca,
      ]);
      expect(second).to.match(/Reused, TLSv1\.2/);
      expect(second).to.match(/HTTP\/1\.1 200 OK/);
      expect(second).to.include(`"fingerprint":"${fingerprint}"`);
    });

    for (const version of ['-tls1_2', '-tls1_3']) {
      it(`a ticket from node D resumes on node E (${version})`, async () => {
        const file = path.join(db.workDir, `ticket${version}.pem`);
        const first = await sClient(extraNodes[0]!.port, [
          version,
          '-sess_out',
          file,
          ...ca,
          ...auth,
        ]);
        expect(first).to.match(/TLS session ticket/);
        const second = await sClient(extraNodes[1]!.port, [version, '-sess_in', file, ...ca]);
        expect(second).to.match(/Reused, TLSv1\.[23]/);
        expect(second).to.match(/HTTP\/1\.1 200 OK/);
        expect(second).to.include(`"fingerprint":"${fingerprint}"`);
      });
    }
  });
});

/** Waits until some connection to the test database holds an open transaction (the upload's). */
async function waitForOpenTransaction(db: TestDatabase): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const rows = await queryTestDatabase<{ n: string }>(
      db,
      `select count(*)::text as n from pg_stat_activity
       where datname = current_database() and pid <> pg_backend_pid()
         and xact_start is not null and backend_type = 'client backend'`,
    );
    if (rows[0]!.n !== '0') return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('the upload never opened a transaction');
}

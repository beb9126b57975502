import { execFile, spawn } from 'node:child_process';
import { constants } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { DeviceClient, withFingerprint, type TestDevice } from '../test/support/device-client.js';
import type { FleetgateProcess } from '../test/support/fleetgate-process.js';
import { csvLines, multipartBody } from './support/bodies.js';
import type { BoundDevice } from './support/bench-server.js';
import { cpuSnapshot, rate, seconds, type CpuMeter, type Row } from './support/measure.js';

const run = promisify(execFile);

/**
 * Item 6, sleepy devices: a device that wakes up, uploads on a new connection
 * and sleeps. (a) Uploads on a new connection that resumes the previous TLS
 * session, against `openssl s_time -reuse` (bare resumed handshakes) with the
 * same certificate and server, and against bare resumed handshakes of Node's
 * own TLS client (the client kind of the uploads); next to them, what a
 * resumed connection costs with a status request only (certificate and device
 * checked, no ingest) and uploads resumed by session ID (tickets off, as many
 * embedded builds). Each row also gives the server's CPU per connection, which
 * is what bounds the ratio. (b) Full-handshake uploads with an ECDSA P-256
 * device and server certificate next to RSA 2048, side by side in one run.
 */
export async function benchSleepyDevices(
  server: FleetgateProcess,
  rsaDevices: readonly BoundDevice[],
  workDir: string,
  options: { workers: number; uploads: number; handshakeSeconds: number },
  meter: CpuMeter,
): Promise<Row[]> {
  // Sleepy devices are many devices: one per worker, as uploads of one device
  // are serialised by its row lock (and capped per device).
  const ecdsa: TestDevice[] = [];
  for (let w = 0; w < options.workers; w++) ecdsa.push(await boundEcdsaDevice(server, workDir, w));
  const rsaAll = rsaDevices.slice(0, options.workers).map((d) => d.device);
  const rsa = rsaAll[0]!;
  const rows: Row[] = [];

  const pid = server.child.pid!;
  const serverMs = (before: number, count: number) =>
    `${((1000 * (cpuSnapshot(pid, []).server - before)) / count).toFixed(1)} ms`;
  const measured = async <T extends { rate: number; count: number }>(work: () => Promise<T>) => {
    const cpu = await meter();
    const before = cpuSnapshot(pid, []).server;
    const result = await work();
    return { ...result, serverCpu: serverMs(before, result.count), cpu: await cpu() };
  };
  const resumed = await measured(() => uploads(server, rsaAll, options, 'resumed'));
  const bare = await measured(() => opensslResumedHandshakes(server.port, rsa, workDir, options));
  const nodeBare = await measured(() => nodeResumed(server, rsaAll, options, 'bare'));
  const status = await measured(() => nodeResumed(server, rsaAll, options, 'status'));
  const bySessionId = await measured(() => uploads(server, rsaAll, options, 'session-id'));
  rows.push(
    {
      item: '6 sleepy devices',
      measure: `uploads/s, each on a new connection resuming the last session (ticket), ${options.workers} devices at once (${resumed.reusedShare} resumed; server CPU ${resumed.serverCpu} each)`,
      value: rate(resumed.rate),
      reference: `${rate(bare.rate)} (openssl s_time -reuse)`,
      ratio: (resumed.rate / bare.rate).toFixed(2),
      target: '>= 0.5',
      cpu: resumed.cpu,
    },
    {
      item: '6 sleepy devices',
      measure: `bare resumed handshakes/s, ${options.workers} openssl s_time -reuse for ${options.handshakeSeconds} s (server CPU ${bare.serverCpu} each)`,
      value: '',
      reference: rate(bare.rate),
      cpu: bare.cpu,
    },
    {
      item: '6 sleepy devices',
      measure: `the same uploads against bare resumed handshakes of the same client kind (Node tls, ${options.workers} at once; server CPU ${nodeBare.serverCpu} each)`,
      value: rate(resumed.rate),
      reference: `${rate(nodeBare.rate)} (Node, connect resumed + close)`,
      ratio: (resumed.rate / nodeBare.rate).toFixed(2),
      cpu: nodeBare.cpu,
    },
    {
      item: '6 sleepy devices',
      measure: `resumed connection with a status request only (certificate and device checked, no ingest), ${options.workers} at once (server CPU ${status.serverCpu} each)`,
      value: rate(status.rate),
      reference: '',
      cpu: status.cpu,
    },
    {
      item: '6 sleepy devices',
      measure: `uploads/s resuming by session ID (client tickets off), ${options.workers} devices at once (${bySessionId.reusedShare} resumed; server CPU ${bySessionId.serverCpu} each)`,
      value: rate(bySessionId.rate),
      reference: `${rate(bare.rate)} (openssl s_time -reuse)`,
      ratio: (bySessionId.rate / bare.rate).toFixed(2),
      cpu: bySessionId.cpu,
    },
  );
  for (const [label, device] of [
    ['ECDSA P-256 device and server (ECDHE-ECDSA-AES128-GCM-SHA256)', ecdsa],
    ['RSA 2048 device and server (ECDHE-RSA-AES128-GCM-SHA256)', rsaAll],
  ] as const) {
    const cpu = await meter();
    const full = await uploads(
      server,
      device,
      options,
      label.startsWith('ECDSA') ? 'ecdsa' : 'rsa',
    );
    rows.push({
      item: '6 sleepy devices',
      measure: `uploads/s, full mTLS handshake each, ${label}, ${options.workers} devices at once`,
      value: rate(full.rate),
      reference: '',
      cpu: await cpu(),
    });
  }
  return rows;
}

async function boundEcdsaDevice(
  server: FleetgateProcess,
  workDir: string,
  n: number,
): Promise<TestDevice> {
  const keyPath = path.join(workDir, `ecdsa-device-${n}.key`);
  const certPath = path.join(workDir, `ecdsa-device-${n}.crt`);
  await run(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'].concat([
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-days',
      '30',
      '-subj',
      `/CN=bench-ecdsa-${n}`,
    ]),
  );
  const device = withFingerprint({
    certPem: fs.readFileSync(certPath, 'utf8'),
    keyPem: fs.readFileSync(keyPath, 'utf8'),
  });
  const issued = await server.cli(['psk', 'issue', 'bench']);
  if (issued.code !== 0) throw new Error(issued.stderr);
  const client = new DeviceClient(server, device);
  const bound = await client.bind(issued.stdout.trim());
  await client.close();
  if (bound.status !== 200) throw new Error(`bind failed: ${bound.status} ${bound.text}`);
  return device;
}

type Mode = 'resumed' | 'session-id' | 'ecdsa' | 'rsa';

async function uploads(
  server: FleetgateProcess,
  devices: readonly TestDevice[],
  options: { workers: number; uploads: number },
  mode: Mode,
): Promise<{ rate: number; count: number; reusedShare: string }> {
  // Each mode writes series of its own, so the same timestamps never collide.
  const startMs = Date.now() - 30 * 24 * 3600 * 1000;
  let next = 0;
  let reused = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: options.workers }, async (_, w) => {
      // One agent per simulated device: no keep-alive, so every upload is a new
      // connection; the agent keeps the TLS session (the device's saved session).
      const agent = new https.Agent({
        keepAlive: false,
        maxCachedSessions: mode === 'resumed' || mode === 'session-id' ? 1 : 0,
      });
      while (next < options.uploads) {
        const n = next++;
        const { body, contentType } = multipartBody(
          `sleepy-${mode}-${w}`,
          csvLines(startMs + n * 1e6, 100),
        );
        const device = devices[w % devices.length]!;
        if (await upload(server, device, agent, body, contentType, mode)) reused++;
      }
      agent.destroy();
    }),
  );
  return {
    rate: options.uploads / seconds(started),
    count: options.uploads,
    reusedShare: `${Math.round((100 * reused) / options.uploads)} %`,
  };
}

function upload(
  server: FleetgateProcess,
  device: TestDevice,
  agent: https.Agent,
  body: Buffer,
  contentType: string,
  mode: Mode,
): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port: server.port,
        path: '/device_endpoint',
        method: 'POST',
        agent,
        ca: server.caPem,
        cert: device.certPem,
        key: device.keyPem,
        maxVersion: 'TLSv1.2',
        ...(mode === 'ecdsa' ? { ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' } : {}),
        ...(mode === 'rsa' ? { ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' } : {}),
        // A device whose TLS stack has tickets turned off resumes by session ID.
        ...(mode === 'session-id' ? { secureOptions: constants.SSL_OP_NO_TICKET } : {}),
        headers: {
          'content-type': contentType,
          'content-length': body.length,
          connection: 'close',
        },
      },
      (res) => {
        const wasReused = (res.socket as import('node:tls').TLSSocket).isSessionReused();
        let text = '';
        res.on('data', (chunk) => (text += String(chunk)));
        res.on('end', () =>
          res.statusCode === 200
            ? resolve(wasReused)
            : reject(new Error(`upload ${res.statusCode} ${text}`)),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function opensslResumedHandshakes(
  port: number,
  device: TestDevice,
  workDir: string,
  options: { workers: number; handshakeSeconds: number },
): Promise<{ rate: number; count: number }> {
  const cert = path.join(workDir, 'sleepy-device.crt');
  const key = path.join(workDir, 'sleepy-device.key');
  fs.writeFileSync(cert, device.certPem);
  fs.writeFileSync(key, device.keyPem, { mode: 0o600 });
  const started = process.hrtime.bigint();
  const counts = await Promise.all(
    Array.from(
      { length: options.workers },
      () =>
        new Promise<number>((resolve, reject) => {
          const child = spawn('openssl', [
            's_time',
            '-connect',
            `127.0.0.1:${port}`,
            '-reuse',
            '-tls1_2',
            '-time',
            String(options.handshakeSeconds),
            '-cert',
            cert,
            '-key',
            key,
          ]);
          let out = '';
          child.stdout.on('data', (d) => (out += String(d)));
          child.on('error', reject);
          child.on('close', () => {
            const match = /(\d+) connections in [\d.]+s;/.exec(out);
            if (!match) reject(new Error(`openssl s_time printed:\n${out}`));
            else resolve(Number(match[1]));
          });
        }),
    ),
  );
  const count = counts.reduce((a, b) => a + b, 0);
  return { rate: count / seconds(started), count };
}

/**
 * Node's TLS client on new connections resuming the last session, one device
 * per worker: `bare` connects and closes (what `openssl s_time -reuse` does),
 * `status` sends `GET /device_endpoint` (the device is looked up, nothing is
 * stored) and reads the answer.
 */
async function nodeResumed(
  server: FleetgateProcess,
  devices: readonly TestDevice[],
  options: { workers: number; uploads: number },
  mode: 'bare' | 'status',
): Promise<{ rate: number; count: number }> {
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: options.workers }, async (_, w) => {
      const device = devices[w % devices.length]!;
      let session: Buffer | undefined;
      while (next < options.uploads) {
        next++;
        session = await resumedConnection(server, device, session, mode);
      }
    }),
  );
  return { rate: options.uploads / seconds(started), count: options.uploads };
}

function resumedConnection(
  server: FleetgateProcess,
  device: TestDevice,
  session: Buffer | undefined,
  mode: 'bare' | 'status',
): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    let latest = session;
    let answer = '';
    const socket = tls.connect({
      host: '127.0.0.1',
      servername: 'localhost',
      port: server.port,
      ca: server.caPem,
      cert: device.certPem,
      key: device.keyPem,
      maxVersion: 'TLSv1.2',
      ...(session ? { session } : {}),
    });
    socket.on('session', (saved: Buffer) => (latest = saved));
    socket.on('secureConnect', () => {
      if (mode === 'bare') socket.end();
      else
        socket.write(
          'GET /device_endpoint HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
        );
    });
    socket.on('data', (chunk: Buffer) => (answer += String(chunk)));
    socket.on('end', () => {
      socket.end();
      if (mode === 'status' && !answer.startsWith('HTTP/1.1 200'))
        reject(new Error(`status answer: ${answer.slice(0, 200)}`));
      else resolve(latest);
    });
    socket.on('error', reject);
  });
}

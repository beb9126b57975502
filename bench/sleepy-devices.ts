import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { promisify } from 'node:util';
import { DeviceClient, withFingerprint, type TestDevice } from '../test/support/device-client.js';
import type { FleetgateProcess } from '../test/support/fleetgate-process.js';
import { csvLines, multipartBody } from './support/bodies.js';
import type { BoundDevice } from './support/bench-server.js';
import { rate, seconds, type CpuMeter, type Row } from './support/measure.js';

const run = promisify(execFile);

/**
 * Item 6, sleepy devices: a device that wakes up, uploads on a new connection
 * and sleeps. (a) Uploads on a new connection that resumes the previous TLS
 * session, against `openssl s_time -reuse` (bare resumed handshakes) with the
 * same certificate and server. (b) Full-handshake uploads with an ECDSA P-256
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

  const resumedCpu = await meter();
  const resumed = await uploads(server, rsaAll, options, 'resumed');
  const resumedCpuSplit = await resumedCpu();
  const bareCpu = await meter();
  const bare = await opensslResumedHandshakes(server.port, rsa, workDir, options);
  const bareCpuSplit = await bareCpu();
  rows.push(
    {
      item: '6 sleepy devices',
      measure: `uploads/s, each on a new connection resuming the last session, ${options.workers} devices at once (${resumed.reusedShare} resumed)`,
      value: rate(resumed.rate),
      reference: `${rate(bare)} (openssl s_time -reuse)`,
      ratio: (resumed.rate / bare).toFixed(2),
      target: '>= 0.5',
      cpu: resumedCpuSplit,
    },
    {
      item: '6 sleepy devices',
      measure: `bare resumed handshakes/s, ${options.workers} openssl s_time -reuse for ${options.handshakeSeconds} s`,
      value: '',
      reference: rate(bare),
      cpu: bareCpuSplit,
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

async function uploads(
  server: FleetgateProcess,
  devices: readonly TestDevice[],
  options: { workers: number; uploads: number },
  mode: 'resumed' | 'ecdsa' | 'rsa',
): Promise<{ rate: number; reusedShare: string }> {
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
        maxCachedSessions: mode === 'resumed' ? 1 : 0,
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
    reusedShare: `${Math.round((100 * reused) / options.uploads)} %`,
  };
}

function upload(
  server: FleetgateProcess,
  device: TestDevice,
  agent: https.Agent,
  body: Buffer,
  contentType: string,
  mode: 'resumed' | 'ecdsa' | 'rsa',
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
): Promise<number> {
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
  return counts.reduce((a, b) => a + b, 0) / seconds(started);
}

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { csvLines, multipartBody } from './support/bodies.js';
import type { BoundDevice } from './support/bench-server.js';
import { rate, seconds, type CpuMeter, type Row } from './support/measure.js';

/**
 * Item 3: each upload on a fresh mTLS connection (no agent, no session
 * resumption: a full handshake every time), `workers` at once, against
 * `openssl s_time -new` doing bare handshakes with the same certificates and
 * keys against the same server, `workers` processes at once.
 */
export async function benchNewConnections(
  devices: readonly BoundDevice[],
  port: number,
  caPem: string,
  workDir: string,
  options: { workers: number; uploads: number; handshakeSeconds: number },
  meter: CpuMeter,
): Promise<Row[]> {
  const startMs = Date.now() - 20 * 24 * 3600 * 1000;
  let next = 0;
  const cpu = await meter();
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: options.workers }, async (_, w) => {
      const { device } = devices[w % devices.length]!;
      while (next < options.uploads) {
        const n = next++;
        const { body, contentType } = multipartBody(`fresh${w}`, csvLines(startMs + n * 1e6, 100));
        await uploadOnNewConnection(port, caPem, device.certPem, device.keyPem, body, contentType);
      }
    }),
  );
  const ours = options.uploads / seconds(started);
  const cpuSplit = await cpu();
  const bareCpu = await meter();
  const bare = await opensslHandshakeRate(port, devices[0]!, workDir, options);
  const bareCpuSplit = await bareCpu();
  return [
    {
      item: '3 new connections',
      measure: `uploads/s, full mTLS handshake each (RSA 2048), ${options.workers} at once`,
      value: rate(ours),
      reference: `${rate(bare)} (openssl s_time -new)`,
      ratio: (ours / bare).toFixed(2),
      target: '>= 0.5',
      cpu: cpuSplit,
    },
    {
      item: '3 new connections',
      measure: `bare handshakes/s, ${options.workers} openssl s_time -new for ${options.handshakeSeconds} s`,
      value: '',
      reference: rate(bare),
      cpu: bareCpuSplit,
    },
  ];
}

function uploadOnNewConnection(
  port: number,
  ca: string,
  cert: string,
  key: string,
  body: Buffer,
  contentType: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port,
        path: '/device_endpoint',
        method: 'POST',
        agent: false,
        ca,
        cert,
        key,
        headers: {
          'content-type': contentType,
          'content-length': body.length,
          connection: 'close',
        },
      },
      (res) => {
        let text = '';
        res.on('data', (chunk) => (text += String(chunk)));
        res.on('end', () =>
          res.statusCode === 200
            ? resolve()
            : reject(new Error(`upload ${res.statusCode} ${text}`)),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function opensslHandshakeRate(
  port: number,
  { device }: BoundDevice,
  workDir: string,
  options: { workers: number; handshakeSeconds: number },
): Promise<number> {
  const cert = path.join(workDir, 'device.crt');
  const key = path.join(workDir, 'device.key');
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
            '-new',
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

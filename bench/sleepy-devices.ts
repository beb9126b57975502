import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { withFingerprint, DeviceClient, type TestDevice } from '../test/support/device-client.js';
import { REPO_ROOT, type FleetgateProcess } from '../test/support/fleetgate-process.js';
import { deviceFiles, factoryDevice } from '../test/tls/device-stacks.js';
import type { BoundDevice } from './support/bench-server.js';
import { cpuSnapshot, rate, seconds, type CpuMeter, type Row } from './support/measure.js';

const run = promisify(execFile);

/**
 * Item 6, sleepy devices: a device that wakes up, uploads on a new connection
 * and sleeps. The devices are a small C program on mbed TLS 2.28
 * (bench/clients/sleepy_upload.c, compiled here), the TLS stack of the
 * firmware they stand for, one process per device, as `openssl s_time` is a
 * small C program: a client in Node would spend several times the server's
 * CPU on the same two cores and measure itself.
 *
 * (a) Uploads of 100 points, each on a new connection resuming the previous
 * TLS session by ticket, against `openssl s_time -reuse` (bare resumed
 * handshakes) with the same certificate and server; next to them, what a
 * resumed connection costs with a status request only (certificate and device
 * checked, nothing stored) and uploads resumed by session ID (tickets off, as
 * many embedded builds). Each row gives the server's CPU per connection, which
 * is what bounds the ratio. (b) Full-handshake uploads with an ECDSA P-256
 * device and server certificate next to RSA 2048, side by side in one run.
 * (c) The floor: Node's own HTTPS server in a process of its own, with fleetgate's
 * certificates and suites, answering the same resumed connections' GET with a
 * constant JSON (no framework, no database, no log): what any Node server
 * pays per resumed request before doing anything, against the same s_time.
 */
export async function benchSleepyDevices(
  server: FleetgateProcess,
  rsaDevices: readonly BoundDevice[],
  workDir: string,
  options: { workers: number; uploads: number; handshakeSeconds: number },
  meter: CpuMeter,
): Promise<Row[]> {
  const client = await compileClient(workDir);
  // Sleepy devices are many devices: one per worker, as uploads of one device
  // are serialised by its row lock (and capped per device).
  const ecdsa: DeviceFiles[] = [];
  for (let w = 0; w < options.workers; w++) {
    ecdsa.push(
      deviceFiles(await boundEcdsaDevice(server, workDir, w), workDir, `sleepy-ecdsa-${w}`),
    );
  }
  const rsa = rsaDevices
    .slice(0, options.workers)
    .map((d, w) => deviceFiles(d.device, workDir, `sleepy-rsa-${w}`));
  const caPath = path.join(workDir, 'sleepy-server-ca.pem');
  fs.writeFileSync(caPath, server.caPem);
  const rows: Row[] = [];

  const pid = server.child.pid!;
  const serverMs = (before: number, count: number) =>
    `${((1000 * (cpuSnapshot(pid, []).server - before)) / count).toFixed(2)} ms`;
  const measured = async <T extends { rate: number; count: number }>(work: () => Promise<T>) => {
    const cpu = await meter();
    const before = cpuSnapshot(pid, []).server;
    const result = await work();
    return { ...result, serverCpu: serverMs(before, result.count), cpu: await cpu() };
  };
  // Each run writes series of its own, so timestamps never collide between runs.
  const runs = { client, server, caPath, options };
  // Unmeasured warm-up, three times as many uploads as a measured row: the
  // first thousands of requests of a fresh server also pay for V8 compiling
  // the request path, not steady state. With one round, the next three rounds
  // of 1,000 uploads still cost 2.7, 2.1 and 2.0 ms of server CPU each (V8
  // went on optimizing functions: --trace-opt), a server that runs for days
  // pays the last.
  for (let round = 0; round < 3; round++) await uploads(runs, rsa, 'ticket');
  await uploads(runs, rsa, 'status');
  const resumed = await measured(() => uploads(runs, rsa, 'ticket'));
  const bare = await measured(() =>
    opensslResumedHandshakes(server.port, rsa[0]!, caPath, options),
  );
  const status = await measured(() => uploads(runs, rsa, 'status'));
  const bySessionId = await measured(() => uploads(runs, rsa, 'session-id'));
  const floor = await nodeFloor(server, { ...runs, options }, rsa, 'constant');
  const floorStore = await nodeFloor(server, { ...runs, options }, rsa, 'store');
  rows.push(
    {
      item: '6 sleepy devices',
      measure: `uploads/s of 100 points, each on a new connection resuming the last session (ticket), ${options.workers} mbed TLS devices at once (${resumed.resumedShare} resumed; server CPU ${resumed.serverCpu} each)`,
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
      measure: `resumed connections with a status request only (certificate and device checked, nothing stored), ${options.workers} at once (${status.resumedShare} resumed; server CPU ${status.serverCpu} each)`,
      value: rate(status.rate),
      reference: `${rate(bare.rate)} (openssl s_time -reuse)`,
      ratio: (status.rate / bare.rate).toFixed(2),
      cpu: status.cpu,
    },
    {
      item: '6 sleepy devices',
      measure: `uploads/s resuming by session ID (client tickets off), ${options.workers} devices at once (${bySessionId.resumedShare} resumed; server CPU ${bySessionId.serverCpu} each)`,
      value: rate(bySessionId.rate),
      reference: `${rate(bare.rate)} (openssl s_time -reuse)`,
      ratio: (bySessionId.rate / bare.rate).toFixed(2),
      cpu: bySessionId.cpu,
    },
    {
      item: '6 sleepy devices',
      measure: `floor: Node's bare HTTPS server in a process of its own (fleetgate's certificates and suites, constant JSON, no express, no database, no log) answering the same resumed GETs, ${options.workers} at once (server CPU ${floor.serverCpu} each)`,
      value: rate(floor.rate),
      reference: `${rate(bare.rate)} (openssl s_time -reuse)`,
      ratio: (floor.rate / bare.rate).toFixed(2),
      cpu: '',
    },
    {
      item: '6 sleepy devices',
      measure: `floor with store: the same bare server storing each upload of 100 points (body cut out by hand, one prepared INSERT ... ON CONFLICT DO NOTHING, no device, no checks, no log), resumed by ticket, ${options.workers} at once (server CPU ${floorStore.serverCpu} each)`,
      value: rate(floorStore.rate),
      reference: `${rate(bare.rate)} (openssl s_time -reuse)`,
      ratio: (floorStore.rate / bare.rate).toFixed(2),
      cpu: '',
    },
  );
  for (const [label, devices, mode] of [
    ['ECDSA P-256 device and server', ecdsa, 'full-ecdsa'],
    ['RSA 2048 device and server', rsa, 'full-rsa'],
  ] as const) {
    const full = await measured(() => uploads(runs, devices, mode));
    rows.push({
      item: '6 sleepy devices',
      measure: `uploads/s, full mTLS handshake each, ${label} (${full.cipher}), ${options.workers} devices at once (server CPU ${full.serverCpu} each)`,
      value: rate(full.rate),
      reference: '',
      cpu: full.cpu,
    });
  }
  return rows;
}

/**
 * Node's https server with fleetgate's TLS options in a process of its own
 * (bench/support/floor-server.ts), answering every request with a constant
 * JSON (`constant`: the status requests) or storing each upload with one
 * INSERT and nothing else (`store`: the ticket-resumed uploads); warmed up
 * like fleetgate's server, then measured by its CPU.
 */
async function nodeFloor(
  server: FleetgateProcess,
  runs: UploadRuns,
  devices: readonly DeviceFiles[],
  mode: 'constant' | 'store',
): Promise<{ rate: number; count: number; serverCpu: string }> {
  const child = spawn(
    process.execPath,
    [
      fileURLToPath(new URL('./support/floor-server.js', import.meta.url)),
      server.env.FLEETGATE_DATA_DIR!,
      server.env.FLEETGATE_CERTS_DIR!,
      mode,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...server.env } },
  );
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (chunk) => {
        out += String(chunk);
        const match = /PORT (\d+)/.exec(out);
        if (match) resolve(Number(match[1]));
      });
      child.once('exit', (code) => reject(new Error(`the floor server exited with ${code}`)));
    });
    const what = mode === 'store' ? 'ticket' : 'status';
    await uploads({ ...runs, port }, devices, what);
    const before = cpuSnapshot(child.pid!, []).server;
    const result = await uploads({ ...runs, port }, devices, what);
    const ms = (1000 * (cpuSnapshot(child.pid!, []).server - before)) / result.count;
    return { ...result, serverCpu: `${ms.toFixed(2)} ms` };
  } finally {
    child.kill();
  }
}

type DeviceFiles = ReturnType<typeof deviceFiles>;

const MBEDTLS_LIBS = ['-lmbedtls', '-lmbedx509', '-lmbedcrypto'];

/** The benchmark's device client, compiled against Debian's libmbedtls-dev. */
async function compileClient(workDir: string): Promise<string> {
  const source = path.join(REPO_ROOT, 'bench', 'clients', 'sleepy_upload.c');
  const binary = path.join(workDir, 'sleepy_upload');
  try {
    const shared = path.join(REPO_ROOT, 'test', 'tls', 'clients');
    await run('gcc', ['-O2', '-I', shared, '-o', binary, source].concat(MBEDTLS_LIBS));
  } catch (err) {
    throw new Error(
      `item 6 needs gcc and mbed TLS (apt-get install gcc libc6-dev libmbedtls-dev): ${String(err)}`,
      { cause: err },
    );
  }
  return binary;
}

async function boundEcdsaDevice(
  server: FleetgateProcess,
  workDir: string,
  n: number,
): Promise<TestDevice> {
  const made = factoryDevice('ec', workDir, `bench-ecdsa-${n}`);
  const device = withFingerprint({
    certPem: fs.readFileSync(made.certPath, 'utf8'),
    keyPem: fs.readFileSync(made.keyPath, 'utf8'),
  });
  const issued = await server.cli(['psk', 'issue', 'bench']);
  if (issued.code !== 0) throw new Error(issued.stderr);
  const client = new DeviceClient(server, device);
  const bound = await client.bind(issued.stdout.trim());
  await client.close();
  if (bound.status !== 200) throw new Error(`bind failed: ${bound.status} ${bound.text}`);
  return device;
}

type Mode = 'ticket' | 'session-id' | 'status' | 'full-ecdsa' | 'full-rsa';

const MODE_ARGS: Record<Mode, string[]> = {
  ticket: [],
  'session-id': ['--tickets', '0'],
  status: ['--status-only'],
  'full-ecdsa': ['--resume', '0', '--cipher', 'TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256'],
  'full-rsa': ['--resume', '0', '--cipher', 'TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256'],
};

let seriesRun = 0;

interface UploadRuns {
  client: string;
  server: FleetgateProcess;
  caPath: string;
  options: { workers: number; uploads: number };
  /** Another server than fleetgate's port (the floor). */
  port?: number;
}

/** `options.uploads` in all, spread over one client process per device. */
async function uploads(
  runs: UploadRuns,
  devices: readonly DeviceFiles[],
  mode: Mode,
): Promise<{ rate: number; count: number; resumedShare: string; cipher: string }> {
  const { workers } = runs.options;
  const each = Math.ceil(runs.options.uploads / workers);
  const run = seriesRun++;
  // Timestamps a month back, one second apart inside an upload, 1000 s between uploads.
  const startMs = Date.now() - 30 * 24 * 3600 * 1000;
  const started = process.hrtime.bigint();
  const done = await Promise.all(
    Array.from({ length: workers }, (_, w) => {
      const device = devices[w % devices.length]!;
      return runClient(runs.client, [
        '--host',
        '127.0.0.1',
        '--port',
        String(runs.port ?? runs.server.port),
        '--ca',
        runs.caPath,
        '--cert',
        device.certPath,
        '--key',
        device.keyPath,
        '--series',
        `sleepy-${run}-${w}`,
        '--start-ms',
        String(startMs),
        '--uploads',
        String(each),
        ...MODE_ARGS[mode],
      ]);
    }),
  );
  const count = each * workers;
  const resumed = done.reduce((sum, d) => sum + d.resumed, 0);
  return {
    rate: count / seconds(started),
    count,
    resumedShare: `${Math.round((100 * resumed) / count)} %`,
    cipher: done[0]!.cipher,
  };
}

function runClient(binary: string, args: string[]): Promise<{ resumed: number; cipher: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args);
    let out = '';
    child.stdout.on('data', (d) => (out += String(d)));
    child.stderr.on('data', (d) => (out += String(d)));
    child.on('error', reject);
    child.on('close', (code) => {
      const match = /DONE uploads=\d+ resumed=(\d+) cipher=(\S+)/.exec(out);
      if (code !== 0 || !match) reject(new Error(`sleepy_upload ${args.join(' ')}:\n${out}`));
      else resolve({ resumed: Number(match[1]), cipher: match[2]! });
    });
  });
}

async function opensslResumedHandshakes(
  port: number,
  device: DeviceFiles,
  caPath: string,
  options: { workers: number; handshakeSeconds: number },
): Promise<{ rate: number; count: number }> {
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
            '-CAfile',
            caPath,
            '-cert',
            device.certPath,
            '-key',
            device.keyPath,
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

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestDatabase } from './test-database.js';

/** The repository root, from dist/test/support. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = path.join(REPO_ROOT, 'bin', 'fleetgate.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface FleetgateProcess {
  /** The TCP port; 0 when the server listens on a Unix socket (proxy mode). */
  port: number;
  /** Set when the server listens on a Unix socket (FLEETGATE_LISTEN_SOCKET). */
  socketPath?: string;
  baseUrl: string;
  /** The development CA the server certificate was issued by ('' behind a proxy, which has none). */
  caPem: string;
  /** The admin API (plain HTTP on loopback unless FLEETGATE_ADMIN_HOST says otherwise). */
  adminPort: number;
  adminUrl: string;
  /** FLEETGATE_ADMIN_TOKEN of this process (random unless the test chose one). */
  adminToken: string;
  env: Record<string, string>;
  child: ChildProcess;
  /** Everything the server wrote to stdout and stderr so far. */
  output(): string;
  cli(args: string[]): Promise<CliResult>;
  stop(): Promise<void>;
}

/** How long a server may take to listen: generous, for a loaded machine. */
const START_TIMEOUT_MS = 90_000;

/** Servers still running; killed if the test process exits without stopping them. */
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/** Starts `fleetgate serve` as a real process on a free port and waits until it listens. */
export async function startFleetgate(
  db: TestDatabase,
  extraEnv: Record<string, string> = {},
  args: string[] = [],
): Promise<FleetgateProcess> {
  extraEnv = { ...adminTestEnv(), ...extraEnv };
  const env: Record<string, string> = { ...db.env, FLEETGATE_LOG_LEVEL: 'info', ...extraEnv };
  const child = spawn(
    process.execPath,
    [BIN, 'serve', '--port', '0', '--host', '127.0.0.1', ...args],
    {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  let output = '';
  child.stdout!.on('data', (chunk) => (output += String(chunk)));
  child.stderr!.on('data', (chunk) => (output += String(chunk)));
  const listening = await new Promise<{ port: number; socketPath?: string }>((resolve, reject) => {
    // Generous: the machine running the suite may be loaded. A server that does not
    // come up in time is killed, so that no orphan keeps its database or port.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start within ${START_TIMEOUT_MS} ms:\n${output}`));
    }, START_TIMEOUT_MS);
    const check = () => {
      const match = /"port":(\d+)[^\n]*fleetgate listening/.exec(output);
      const socket = /"socket":"([^"]+)"[^\n]*fleetgate listening/.exec(output);
      if (match || socket) {
        clearTimeout(timer);
        // Once only: run on every later chunk, the two searches flatten and scan
        // the whole output so far, quadratic in the log's length (a benchmark's
        // server logs a line per request; its client spent more CPU here than
        // the server did per upload).
        child.stdout!.off('data', check);
        resolve(socket ? { port: 0, socketPath: socket[1] } : { port: Number(match![1]) });
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${output}`));
    });
  });
  const { port } = listening;
  // Behind a proxy the app serves plain HTTP and creates no certificates itself.
  const caFile = path.join(env.FLEETGATE_CERTS_DIR!, 'dev-ca.crt');
  const caPem = fs.existsSync(caFile) ? fs.readFileSync(caFile, 'utf8') : '';
  return {
    port,
    ...(listening.socketPath ? { socketPath: listening.socketPath } : {}),
    baseUrl: `${env.FLEETGATE_PROXY_MODE === 'nginx' ? 'http' : 'https'}://localhost:${port}`,
    caPem,
    env,
    child,
    ...adminEndpoint(output, env),
    output: () => output,
    cli: (cliArgs) => runCli(env, cliArgs),
    stop: () => stopProcess(child),
  };
}

/** The admin listener on a free port, with a token the test knows. */
function adminTestEnv(): Record<string, string> {
  return {
    FLEETGATE_ADMIN_PORT: '0',
    FLEETGATE_ADMIN_TOKEN: `fgadm_test_${crypto.randomBytes(24).toString('base64url')}`,
  };
}

/** Where the admin API listens, from its log line (logged before the device listener's). */
function adminEndpoint(output: string, env: Record<string, string>) {
  const logged = /"adminPort":(\d+)[^\n]*"msg":"admin API listening on (https?):/.exec(output);
  const scheme = logged?.[2] ?? 'http';
  const adminPort = logged ? Number(logged[1]) : 0;
  return {
    adminPort,
    // The development server certificate names localhost; plain HTTP is on 127.0.0.1.
    adminUrl: `${scheme}://${scheme === 'https' ? 'localhost' : '127.0.0.1'}:${adminPort}`,
    adminToken: env.FLEETGATE_ADMIN_TOKEN ?? '',
  };
}

export function runCli(env: Record<string, string>, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, ...env }, maxBuffer: 256 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
  // 'exit' can come before the last of the server's output has been read;
  // 'close' comes once its pipes have ended, so output() then holds every
  // line. Bounded, in case something else still held a pipe open.
  let waited: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise((resolve) => (waited = setTimeout(resolve, 2000)))]);
  clearTimeout(waited);
}

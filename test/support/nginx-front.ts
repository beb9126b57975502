import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { FleetgateProcess } from './fleetgate-process.js';
import { REPO_ROOT } from './fleetgate-process.js';
import { freePort } from './free-port.js';
import { skipBecause } from './skip.js';

export const NGINX_BIN = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/bin/nginx'].find(
  (candidate) => fs.existsSync(candidate),
);

/** Skips the calling suite, saying why, on a machine without nginx (CI installs it). */
export function skipUnlessNginx(suite: Mocha.Context): void {
  if (NGINX_BIN) return;
  skipBecause(suite, 'nginx is not installed (apt-get install nginx)');
}

export interface NginxFront {
  port: number;
  /** https://localhost:PORT: what devices connect to. */
  baseUrl: string;
  /** The development CA that issued nginx's server certificate. */
  caPem: string;
  caPath: string;
  prefix: string;
  child: ChildProcess;
  errorLog(): string;
  /** Files nginx spooled request bodies to (must stay empty: no request buffering). */
  spooledBodies(): string[];
  /**
   * Re-renders the configuration (and the device CA bundle) as the README says
   * after `fleetgate ca trust/remove`, reloads nginx, and waits until the
   * workers of the old configuration are gone.
   */
  reload(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts nginx in front of a running proxy-mode fleetgate with the documented
 * command (nginx/run.sh, the same as `npm run nginx`) and the app's own
 * environment, on a free port, under a prefix in `workDir`.
 */
export async function startNginxFront(
  app: FleetgateProcess,
  workDir: string,
  /** More arguments for nginx/run.sh (`--upstream ADDR` per node). */
  runArgs: string[] = [],
): Promise<NginxFront> {
  // nginx cannot listen on port 0 and report the port it got: a free port is
  // picked first, and when another process takes it in between (nginx exits
  // with "Address already in use"), again with another one.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startNginxFrontOnce(app, workDir, await freePort(), runArgs);
    } catch (err) {
      if (attempt >= 5 || !/Address already in use/.test((err as Error).message)) throw err;
    }
  }
}

async function startNginxFrontOnce(
  app: FleetgateProcess,
  workDir: string,
  port: number,
  runArgs: string[],
): Promise<NginxFront> {
  if (!NGINX_BIN) throw new Error('nginx is not installed (apt-get install nginx)');
  const prefix = fs.mkdtempSync(path.join(workDir, 'nginx-'));
  const env = {
    ...process.env,
    ...app.env,
    NGINX_BIN,
    ...(app.socketPath ? {} : { FLEETGATE_PORT: String(app.port) }),
  };
  const child = spawn(
    path.join(REPO_ROOT, 'nginx', 'run.sh'),
    ['--listen', `127.0.0.1:${port}`, '--prefix', prefix, ...runArgs],
    {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout!.on('data', (chunk) => (output += String(chunk)));
  child.stderr!.on('data', (chunk) => (output += String(chunk)));
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`nginx exited with ${code}:\n${output}`))),
  );
  await Promise.race([waitForPort(port), exited]);
  const caPath = path.join(app.env.FLEETGATE_CERTS_DIR!, 'dev-ca.crt');
  const errorLogPath = path.join(prefix, 'logs', 'error.log');
  const bodyTemp = path.join(prefix, 'temp', 'client_body');
  return {
    port,
    baseUrl: `https://localhost:${port}`,
    caPem: fs.readFileSync(caPath, 'utf8'),
    caPath,
    prefix,
    child,
    errorLog: () => (fs.existsSync(errorLogPath) ? fs.readFileSync(errorLogPath, 'utf8') : ''),
    spooledBodies: () =>
      fs.existsSync(bodyTemp) ? fs.readdirSync(bodyTemp, { recursive: true }).map(String) : [],
    reload: async () => {
      const config = path.join(prefix, 'nginx.conf');
      const rendered = await run(
        process.execPath,
        [
          path.join(REPO_ROOT, 'bin', 'fleetgate.js'),
          'nginx-config',
          '--listen',
          `127.0.0.1:${port}`,
          '--prefix',
          prefix,
          ...runArgs,
        ],
        env,
      );
      fs.writeFileSync(config, rendered);
      const oldWorkers = await workersOf(child.pid!);
      await run(
        NGINX_BIN,
        ['-p', `${prefix}/`, '-c', config, '-e', errorLogPath, '-s', 'reload'],
        env,
      );
      for (let waited = 0; oldWorkers.some((pid) => fs.existsSync(`/proc/${pid}`)); waited += 50) {
        if (waited > 20_000) throw new Error('nginx workers of the old configuration did not exit');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      await done;
    },
  };
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env }, (err, stdout, stderr) =>
      err
        ? reject(new Error(`${path.basename(file)} ${args.join(' ')}: ${stderr}`))
        : resolve(stdout),
    );
  });
}

/** The worker processes of nginx's master. */
async function workersOf(master: number): Promise<number[]> {
  const out = await run('pgrep', ['-P', String(master)], process.env).catch(() => '');
  return out.split('\n').filter(Boolean).map(Number);
}

async function waitForPort(port: number): Promise<void> {
  for (let attempt = 0; attempt < 300; attempt++) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`nginx did not listen on port ${port}`);
}

export interface ProxiedFleetgate {
  app: FleetgateProcess;
  nginx: NginxFront;
  stop(): Promise<void>;
}

/** fleetgate in proxy mode on a Unix socket in `workDir`, with nginx in front of it. */
export async function startBehindNginx(
  start: (env: Record<string, string>) => Promise<FleetgateProcess>,
  workDir: string,
  env: Record<string, string> = {},
): Promise<ProxiedFleetgate> {
  const app = await start({
    FLEETGATE_PROXY_MODE: 'nginx',
    FLEETGATE_LISTEN_SOCKET: path.join(workDir, 'app.sock'),
    ...env,
  });
  try {
    const nginx = await startNginxFront(app, workDir);
    return { app, nginx, stop: async () => (await nginx.stop(), await app.stop()) };
  } catch (err) {
    await app.stop();
    throw err;
  }
}

/** The certificate header as nginx's `$ssl_client_escaped_cert` would carry it. */
export const escapedPem = (certPem: string): string => encodeURIComponent(certPem);

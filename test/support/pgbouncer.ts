import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from './free-port.js';

/**
 * A throwaway PgBouncer (Debian 12's is 1.18) in front of the PostgreSQL that
 * DATABASE_URL names: its own ini and user list in a temporary directory, no
 * Unix socket, trust authentication, one pool mode. Every database of the
 * server is reachable through it under its own name.
 */
export interface PgBouncer {
  port: number;
  mode: 'session' | 'transaction';
  /** `url` (a database on the server DATABASE_URL names) with host and port of the bouncer. */
  through(url: string): string;
  /** Everything PgBouncer wrote so far. */
  output(): string;
  stop(): Promise<void>;
}

/** Why PgBouncer cannot run here, or undefined when it can. */
export function pgbouncerUnavailable(): string | undefined {
  if (!process.env.DATABASE_URL) {
    return 'PgBouncer sits in front of a PostgreSQL server; the embedded database has none';
  }
  try {
    execFileSync('pgbouncer', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'pgbouncer is not installed (apt-get install pgbouncer)';
  }
  if (process.getuid?.() === 0) {
    try {
      execFileSync('id', ['postgres'], { stdio: 'ignore' });
    } catch {
      return 'PgBouncer refuses to run as root and there is no postgres user to run it as';
    }
  }
  return undefined;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export async function startPgBouncer(
  mode: 'session' | 'transaction',
  settings: Record<string, string> = {},
): Promise<PgBouncer> {
  const server = new URL(process.env.DATABASE_URL!);
  const user = decodeURIComponent(server.username || os.userInfo().username);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-pgbouncer-'));
  // PgBouncer will not run as root: it is started as `postgres` (-u), which must read these.
  fs.chmodSync(dir, 0o755);
  const port = await freePort();
  const lines = {
    listen_addr: '127.0.0.1',
    listen_port: String(port),
    unix_socket_dir: '',
    auth_type: 'trust',
    auth_file: path.join(dir, 'users.txt'),
    pool_mode: mode,
    default_pool_size: '10',
    max_client_conn: '200',
    logfile: '',
    pidfile: '',
    ...settings,
  };
  fs.writeFileSync(path.join(dir, 'users.txt'), `"${user}" ""\n`, { mode: 0o644 });
  fs.writeFileSync(
    path.join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = host=${server.hostname || '127.0.0.1'} port=${server.port || '5432'}`,
      '[pgbouncer]',
      ...Object.entries(lines).map(([key, value]) => `${key} = ${value}`),
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  const asUser = process.getuid?.() === 0 ? ['-u', 'postgres'] : [];
  const child = spawn('pgbouncer', [...asUser, path.join(dir, 'pgbouncer.ini')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let output = '';
  child.stdout!.on('data', (chunk) => (output += String(chunk)));
  child.stderr!.on('data', (chunk) => (output += String(chunk)));
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      live.delete(child);
      resolve();
    }),
  );
  const through = (url: string) => {
    const parsed = new URL(url);
    parsed.hostname = '127.0.0.1';
    parsed.port = String(port);
    return parsed.toString();
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  };
  // Up when a query goes through it.
  const deadline = Date.now() + 15_000;
  for (;;) {
    const client = new pg.Client({ connectionString: through(process.env.DATABASE_URL!) });
    try {
      await client.connect();
      await client.query('select 1');
      await client.end();
      break;
    } catch (err) {
      await client.end().catch(() => undefined);
      if (child.exitCode !== null || Date.now() > deadline) {
        await stop();
        throw new Error(`PgBouncer did not start: ${String(err)}\n${output}`, { cause: err });
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return { port, mode, through, output: () => output, stop };
}

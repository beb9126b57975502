import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from './free-port.js';

/**
 * A Postgres cluster of its own in a temporary directory, for tests that stop
 * and restart the database: the machine's own server is never touched.
 * initdb refuses to run as root, so as root it runs as the postgres user.
 */
export interface PostgresBinaries {
  /** The directory with initdb and pg_ctl, when found. */
  dir?: string;
  /** Why none was found: every place that was looked at. */
  reason?: string;
}

const hasServerBinaries = (dir: string) =>
  fs.existsSync(path.join(dir, 'initdb')) && fs.existsSync(path.join(dir, 'pg_ctl'));

/**
 * Where the PostgreSQL server binaries are, whatever the version:
 * `pg_config --bindir`, the directory of the running server's major version
 * (Debian and RHEL layouts), then PATH.
 */
export async function findPostgresBinaries(): Promise<PostgresBinaries> {
  const tried: string[] = [];
  const candidates: Array<[string, () => string | Promise<string | undefined> | undefined]> = [
    [
      'pg_config --bindir',
      () => execFileSync('pg_config', ['--bindir'], { stdio: 'pipe' }).toString().trim(),
    ],
  ];
  for (const [how, find] of candidates) {
    let dir: string | undefined;
    try {
      dir = await find();
    } catch (err) {
      tried.push(`${how}: ${(err as Error).message.split('\n')[0]}`);
      continue;
    }
    if (!dir) continue;
    if (hasServerBinaries(dir)) return { dir };
    tried.push(`${how}: ${dir} has no initdb and pg_ctl`);
  }
  const major = await runningServerMajor().catch((err: Error) => {
    tried.push(`the running server's version: ${err.message}`);
    return undefined;
  });
  if (major) {
    for (const dir of [`/usr/lib/postgresql/${major}/bin`, `/usr/pgsql-${major}/bin`]) {
      if (hasServerBinaries(dir)) return { dir };
      tried.push(`server version ${major}: ${dir} has no initdb and pg_ctl`);
    }
  }
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    if (hasServerBinaries(dir)) return { dir };
  }
  tried.push('PATH: no initdb and pg_ctl');
  return {
    reason: `PostgreSQL server binaries (initdb, pg_ctl) not found (apt-get install postgresql); tried ${tried.join('; ')}`,
  };
}

/** The major version of the server DATABASE_URL names (where CI runs the suite). */
async function runningServerMajor(): Promise<number | undefined> {
  const url = process.env.DATABASE_URL;
  if (!url) return undefined;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ v: string }>(
      "select current_setting('server_version_num') as v",
    );
    return Math.floor(Number(rows[0]!.v) / 10_000);
  } finally {
    await client.end();
  }
}

export interface ThrowawayPostgres {
  port: number;
  url: string;
  /** Starts the server on `port` (nothing when it runs). */
  start(): void;
  /** `fast` rolls back open transactions and closes connections, like a restart or failover. */
  stop(mode?: 'fast' | 'immediate'): void;
  restart(): void;
  /** The same, without blocking the event loop (for load running alongside). */
  restartAsync(): Promise<void>;
  destroy(): void;
}

/** How many ports are tried when another process takes the picked one first. */
const PORT_ATTEMPTS = 5;

/**
 * Creates a cluster and claims its port. PostgreSQL cannot listen on port 0 and
 * say which port it got, so a free port is picked (`freePort`) and the server
 * started on it; when another process took that port in between ("Address
 * already in use" in the server log), again with another one. The cluster is
 * left stopped unless `running`: its `url` is final either way. Restarts keep
 * the port (clients hold the address); a collision there fails with the log.
 */
export async function createThrowawayPostgres({
  running = false,
} = {}): Promise<ThrowawayPostgres> {
  const { dir: PG_BIN, reason } = await findPostgresBinaries();
  if (!PG_BIN) throw new Error(reason);
  const root = process.getuid?.() === 0;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-pg-'));
  fs.chmodSync(dir, 0o755);
  const dataDir = path.join(dir, 'data');
  const logFile = path.join(dir, 'server.log');
  const ownerCommand = (bin: string, args: string[]): [string, string[]] => {
    const command = [path.join(PG_BIN, bin), ...args];
    return root
      ? ['runuser', ['-u', 'postgres', '--', ...command]]
      : [command[0]!, command.slice(1)];
  };
  const asOwner = (bin: string, args: string[]) => {
    const [file, argv] = ownerCommand(bin, args);
    execFileSync(file, argv, { stdio: 'pipe', cwd: dir });
  };
  if (root) execFileSync('chown', ['postgres:postgres', dir]);
  asOwner('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8']);
  let port = 0;
  const options = () =>
    `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${dir} -c fsync=on -c max_connections=300`;
  const pgCtl = (...args: string[]) =>
    asOwner('pg_ctl', ['-D', dataDir, '-w', '-t', '60', ...args]);
  const serverLog = () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '');
  let isRunning = false;
  const start = () => {
    if (isRunning) return;
    const logBefore = serverLog().length;
    try {
      pgCtl('-o', options(), '-l', logFile, 'start');
    } catch (err) {
      const log = serverLog().slice(logBefore);
      throw Object.assign(new Error(`pg_ctl start on port ${port} failed:\n${log}`), {
        addressInUse: /Address already in use/.test(log),
        cause: err,
      });
    }
    isRunning = true;
  };
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      start();
      break;
    } catch (err) {
      if (attempt >= PORT_ATTEMPTS || !(err as { addressInUse?: boolean }).addressInUse) {
        fs.rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }
  const cluster: ThrowawayPostgres = {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    start,
    stop(mode = 'fast') {
      if (!isRunning) return;
      pgCtl('-m', mode, 'stop');
      isRunning = false;
    },
    restart() {
      cluster.stop('fast');
      cluster.start();
    },
    async restartAsync() {
      const [file, argv] = ownerCommand('pg_ctl', [
        '-D',
        dataDir,
        '-w',
        '-t',
        '60',
        '-m',
        'fast',
        '-o',
        options(),
        '-l',
        logFile,
        'restart',
      ]);
      await promisify(execFile)(file, argv, { cwd: dir });
      isRunning = true;
    },
    destroy() {
      try {
        cluster.stop('immediate');
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  if (!running) cluster.stop();
  return cluster;
}

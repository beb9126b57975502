import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/**
 * A Postgres cluster of its own in a temporary directory, for tests that stop
 * and restart the database: the machine's own server is never touched.
 * initdb refuses to run as root, so as root it runs as the postgres user.
 */
export const PG_BIN = '/usr/lib/postgresql/15/bin';

export function throwawayPostgresMissing(): string | null {
  return fs.existsSync(path.join(PG_BIN, 'initdb')) && fs.existsSync(path.join(PG_BIN, 'pg_ctl'))
    ? null
    : `PostgreSQL server binaries not found in ${PG_BIN} (apt-get install postgresql-15)`;
}

export interface ThrowawayPostgres {
  port: number;
  url: string;
  start(): void;
  /** `fast` rolls back open transactions and closes connections, like a restart or failover. */
  stop(mode?: 'fast' | 'immediate'): void;
  restart(): void;
  /** The same, without blocking the event loop (for load running alongside). */
  restartAsync(): Promise<void>;
  destroy(): void;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function createThrowawayPostgres(): Promise<ThrowawayPostgres> {
  const root = process.getuid?.() === 0;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-pg-'));
  fs.chmodSync(dir, 0o755);
  const dataDir = path.join(dir, 'data');
  const port = await freePort();
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
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${dir} -c fsync=on -c max_connections=300`;
  const pgCtl = (...args: string[]) =>
    asOwner('pg_ctl', ['-D', dataDir, '-w', '-t', '60', ...args]);
  let running = false;
  const cluster: ThrowawayPostgres = {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    start() {
      pgCtl('-o', options, '-l', path.join(dir, 'server.log'), 'start');
      running = true;
    },
    stop(mode = 'fast') {
      if (!running) return;
      pgCtl('-m', mode, 'stop');
      running = false;
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
        options,
        '-l',
        path.join(dir, 'server.log'),
        'restart',
      ]);
      await promisify(execFile)(file, argv, { cwd: dir });
    },
    destroy() {
      try {
        cluster.stop('immediate');
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  return cluster;
}

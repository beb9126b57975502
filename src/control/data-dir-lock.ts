import fs from 'node:fs';
import path from 'node:path';

/**
 * The embedded database can be opened by one process only. Whoever opens it
 * (the server, or a CLI command while no server runs) holds this lock file;
 * a CLI command that finds a live server's lock talks to that server instead.
 */
export interface LockHolder {
  pid: number;
  role: 'server' | 'cli';
}

export type LockAttempt =
  { acquired: true; release: () => void } | { acquired: false; holder: LockHolder };

export function lockPath(dataDir: string): string {
  return path.join(dataDir, 'fleetgate.lock');
}

export function acquireDataDirLock(dataDir: string, role: LockHolder['role']): LockAttempt {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = lockPath(dataDir);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.writeFileSync(file, JSON.stringify({ pid: process.pid, role }), {
        flag: 'wx',
        mode: 0o600,
      });
      let released = false;
      return {
        acquired: true,
        release: () => {
          if (released) return;
          released = true;
          fs.rmSync(file, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = readHolder(file);
      if (holder && isAlive(holder.pid)) return { acquired: false, holder };
      // Left behind by a process that died (SIGKILL, power loss): take it over.
      fs.rmSync(file, { force: true });
    }
  }
  throw new Error(`could not lock ${file}`);
}

function readHolder(file: string): LockHolder | null {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LockHolder>;
    return typeof parsed.pid === 'number' ? { pid: parsed.pid, role: parsed.role ?? 'cli' } : null;
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

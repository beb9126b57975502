import fs from 'node:fs';
import path from 'node:path';

/**
 * A server on PostgreSQL leaves a note in its data directory saying so, so
 * that a CLI started beside it without DATABASE_URL does not quietly create
 * and use a second, empty, embedded database (where a PSK issued would never
 * bind). The note holds no secret: the URL is stored with its password masked.
 */
export interface RunNote {
  pid: number;
  database: 'postgres';
  location: string;
}

export function runFilePath(dataDir: string): string {
  return path.join(dataDir, 'fleetgate.run.json');
}

/** Writes the note; the returned function removes it (only if it is still ours). */
export function writeRunNote(dataDir: string, note: Omit<RunNote, 'pid'>): () => void {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = runFilePath(dataDir);
  const mine: RunNote = { pid: process.pid, ...note };
  fs.writeFileSync(file, JSON.stringify(mine), { mode: 0o600 });
  return () => {
    if (readRunNote(dataDir)?.pid === process.pid) fs.rmSync(file, { force: true });
  };
}

/** The note of a server that is still running; null when none is (or it died). */
export function liveRunNote(dataDir: string): RunNote | null {
  const note = readRunNote(dataDir);
  if (!note) return null;
  try {
    process.kill(note.pid, 0);
    return note;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? note : null;
  }
}

function readRunNote(dataDir: string): RunNote | null {
  try {
    const parsed = JSON.parse(fs.readFileSync(runFilePath(dataDir), 'utf8')) as Partial<RunNote>;
    if (typeof parsed.pid !== 'number' || parsed.database !== 'postgres') return null;
    return { pid: parsed.pid, database: 'postgres', location: String(parsed.location ?? '') };
  } catch {
    return null;
  }
}

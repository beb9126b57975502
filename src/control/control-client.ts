import http from 'node:http';
import path from 'node:path';
import type { AdminArgs } from '../cli/admin-commands.js';

// The CLI's side of the control socket. It imports nothing of the server: a
// command run beside a server on the embedded database only sends its name and
// arguments, and every such `fleetgate` process starts faster for it.

/**
 * A Unix socket in the data directory (mode 0600: only the owner of the data
 * may use it) through which CLI commands run inside the server that holds the
 * embedded database. Output streams back as the response body.
 */
export function controlSocketPath(dataDir: string): string {
  return path.join(dataDir, 'control.sock');
}

/** Runs an admin command in the server behind the socket, streaming its output to `out`. */
export function runThroughControlSocket(
  dataDir: string,
  command: string,
  args: AdminArgs,
  out: NodeJS.WritableStream,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath: controlSocketPath(dataDir), method: 'POST', path: '/run' },
      (res) => {
        if (res.statusCode === 200) {
          res.pipe(out as NodeJS.WritableStream, { end: false });
          res.on('end', () => resolve());
          res.on('error', reject);
          res.on('aborted', () => reject(new Error('the server interrupted the command')));
          return;
        }
        let body = '';
        res.on('data', (chunk) => (body += String(chunk)));
        res.on('end', () => {
          const parsed = safeJson(body);
          reject(new ControlCommandError(parsed?.error ?? `server answered ${res.statusCode}`));
        });
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify({ command, args }));
  });
}

export class ControlCommandError extends Error {
  override name = 'ControlCommandError';
}

function safeJson(text: string): { error?: string } | null {
  try {
    return JSON.parse(text) as { error?: string };
  } catch {
    return null;
  }
}

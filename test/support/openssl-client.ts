import { spawn } from 'node:child_process';

/** A status request, as firmware sends it, closing the connection after the answer. */
export const GET_STATUS =
  'GET /device_endpoint HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';

/** Runs `openssl s_client` against the device port with a request on stdin; returns all it printed. */
export function sClient(port: number, args: string[], input = GET_STATUS): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn('openssl', [
      's_client',
      '-connect',
      `127.0.0.1:${port}`,
      '-servername',
      'localhost',
      '-ign_eof',
      ...args,
    ]);
    let output = '';
    child.stdout.on('data', (chunk) => (output += String(chunk)));
    child.stderr.on('data', (chunk) => (output += String(chunk)));
    // s_client may exit before it reads stdin (a handshake refused at once): the
    // write then fails with EPIPE, and what it printed is still the answer.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
    const timer = setTimeout(() => child.kill(), 20_000);
    child.on('close', () => {
      clearTimeout(timer);
      resolve(output);
    });
  });
}

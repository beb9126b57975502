import net from 'node:net';
import tls from 'node:tls';

export interface RawAnswer {
  status: number;
  head: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- test assertions read arbitrary JSON
  json: any;
}

export type Connect = () => net.Socket;

export const overUnixSocket =
  (socketPath: string): Connect =>
  () =>
    net.connect(socketPath);

export const overTcp =
  (port: number, localAddress: string): Connect =>
  () =>
    net.connect({ host: '127.0.0.1', port, localAddress });

export const overMutualTls =
  (port: number, ca: string, cert?: { certPem: string; keyPem: string }): Connect =>
  () =>
    tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca,
      cert: cert?.certPem,
      key: cert?.keyPem,
    });

/**
 * Sends a request head byte for byte (duplicate or empty headers included),
 * then lets `feed` write the body for as long as it likes; resolves with the
 * first complete answer, whether or not the body was finished.
 */
export function rawRequest(
  connect: Connect,
  head: string[],
  feed: (socket: net.Socket, answered: () => boolean) => Promise<unknown> = async () => {},
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect();
    let received = Buffer.alloc(0);
    let answer: RawAnswer | null = null;
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      answer ??= parseAnswer(received);
      if (answer) {
        resolve(answer);
        socket.destroy();
      }
    });
    socket.on('error', (err) => (answer ? undefined : reject(err)));
    socket.on('close', () =>
      answer ? undefined : reject(new Error(`closed without an answer: ${received.toString()}`)),
    );
    socket.write(`${head.join('\r\n')}\r\n\r\n`);
    feed(socket, () => answer !== null).catch(() => undefined);
  });
}

function parseAnswer(data: Buffer): RawAnswer | null {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const head = data.subarray(0, end).toString('latin1');
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  const body = data.subarray(end + 4);
  if (!length || body.length < Number(length[1])) return null;
  const text = body.subarray(0, Number(length[1])).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: Number(head.split(' ')[1]), head, json };
}

/** Writes `total` bytes in pieces of `chunk`, waiting for drain, until done or answered. */
export async function writeUntilAnswered(
  socket: net.Socket,
  answered: () => boolean,
  total: number,
  chunk: Buffer,
  frame: (piece: Buffer) => Buffer = (piece) => piece,
): Promise<number> {
  let written = 0;
  while (written < total && !answered() && !socket.destroyed) {
    const piece = chunk.subarray(0, Math.min(chunk.length, total - written));
    written += piece.length;
    if (!socket.write(frame(piece))) await new Promise((resolve) => socket.once('drain', resolve));
  }
  return written;
}

import tls from 'node:tls';
import { expect } from 'chai';
import type { TestDevice } from './device-client.js';
import type { FleetgateProcess } from './fleetgate-process.js';

/** A bare mTLS socket, for requests no HTTP client library would send. */
export function connectRaw(
  server: FleetgateProcess,
  device: TestDevice | null,
): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port: server.port,
      servername: 'localhost',
      ca: server.caPem,
      ...(device ? { cert: device.certPem, key: device.keyPem } : {}),
    });
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', reject);
  });
}

export interface RawAnswer {
  status: number;
  head: string;
  body: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- test assertions read arbitrary JSON
  json: any;
}

/** Everything the server sends until it closes the connection (or the socket errors). */
export function readUntilClosed(socket: tls.TLSSocket): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    socket.on('data', (chunk) => (text += String(chunk)));
    socket.once('close', () => resolve(text));
    socket.on('error', () => undefined);
  });
}

export function parseRawAnswer(text: string): RawAnswer {
  const split = text.indexOf('\r\n\r\n');
  const head = split >= 0 ? text.slice(0, split) : text;
  const body = split >= 0 ? text.slice(split + 4) : '';
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status, head, body, json };
}

/** Sends raw bytes and returns the parsed answer once the server closes. */
export async function rawRequest(
  server: FleetgateProcess,
  device: TestDevice | null,
  bytes: string | Buffer,
): Promise<RawAnswer> {
  const socket = await connectRaw(server, device);
  const closed = readUntilClosed(socket);
  socket.write(bytes);
  const answer = parseRawAnswer(await closed);
  return answer;
}

/** The headers helmet sets on every express answer, also on answers written to the socket. */
export function expectSecurityHeaders(head: string): void {
  expect(head).to.match(/\r\nx-content-type-options: nosniff\r\n/i);
  expect(head).to.match(/\r\nstrict-transport-security: max-age=\d+/i);
  expect(head).to.match(/\r\ncontent-security-policy: default-src 'self'/i);
  expect(head).to.match(/\r\nx-frame-options: SAMEORIGIN\r\n/i);
  expect(head).to.match(/\r\ncontent-type: application\/json; charset=utf-8\r\n/i);
}

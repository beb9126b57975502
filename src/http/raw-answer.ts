import { STATUS_CODES } from 'node:http';
import { securityHeaderLines } from './security-headers.js';

let headerLines: string | null = null;

/**
 * A whole HTTP answer with a JSON error body, for the places that write to
 * the socket because there is no request to answer through express: the HTTP
 * parser's refusals (400, 408, 413, 431) and the timeout of a connection that
 * sent no request. It carries the same security headers as every other answer
 * and closes the connection.
 */
export function rawJsonAnswer(status: number, error: { error: string; code: string }): string {
  headerLines ??= securityHeaderLines();
  const body = JSON.stringify(error);
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
    headerLines +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

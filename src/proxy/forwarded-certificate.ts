import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { AppError, badRequest } from '../http/app-error.js';
import { inspectCertificateCached } from '../tls/certificate-cache.js';
import { decodePemCertificate, type CertificateInfo } from '../tls/certificate-info.js';

/**
 * A device certificate is at most a few KB of DER; URL-escaped PEM grows it by
 * about half. Anything beyond this is not a device certificate.
 */
export const MAX_FORWARDED_CERT_BYTES = 16 * 1024;

/**
 * The last certificate parsed per upstream connection. nginx reuses one
 * keep-alive connection for requests of many devices, so the cache is keyed by
 * the header value, never by the connection alone.
 */
const lastParsed = new WeakMap<Socket, { header: string; info: CertificateInfo }>();

/**
 * The certificate nginx forwarded (URL-escaped PEM, as `$ssl_client_escaped_cert`
 * gives), or null when the header is absent: nginx omits it when the device
 * presented no certificate. Everything else that is not exactly one well-formed
 * certificate is a 400, so a broken proxy setup shows up at once.
 */
export function forwardedCertificate(
  req: IncomingMessage,
  headerName: string,
): CertificateInfo | null {
  const values = req.headersDistinct[headerName];
  if (values === undefined) return null;
  if (values.length !== 1) {
    throw invalidHeader(headerName, `was sent ${values.length} times; exactly one is allowed`);
  }
  const header = values[0]!;
  const cached = lastParsed.get(req.socket);
  if (cached?.header === header) return cached.info;
  const info = parseHeader(headerName, header);
  lastParsed.set(req.socket, { header, info });
  return info;
}

function parseHeader(headerName: string, header: string): CertificateInfo {
  if (header.trim() === '') throw invalidHeader(headerName, 'is empty');
  if (header.length > MAX_FORWARDED_CERT_BYTES) {
    throw invalidHeader(headerName, `is longer than ${MAX_FORWARDED_CERT_BYTES} bytes`);
  }
  let pem: string;
  try {
    pem = decodeURIComponent(header);
  } catch {
    throw invalidHeader(headerName, 'is not valid URL-escaped text');
  }
  try {
    return inspectCertificateCached(decodePemCertificate(pem));
  } catch (err) {
    if (err instanceof AppError)
      throw invalidHeader(headerName, `does not hold a certificate: ${err.message}`);
    throw err;
  }
}

function invalidHeader(headerName: string, problem: string) {
  return badRequest('invalid_client_cert_header', `the ${headerName} header ${problem}`);
}

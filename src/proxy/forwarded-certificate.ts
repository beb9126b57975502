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

/** nginx's `$ssl_client_verify`, set by the rendered configuration on every request. */
export const VERIFY_HEADER = 'x-client-verify';
/** The digest of the CAs that configuration verifies with (see trustAnchorsDigest). */
export const TRUST_ANCHORS_HEADER = 'x-client-trust-anchors';

/**
 * nginx's verdict on the device's chain, read only from a trusted proxy (which
 * always sets both headers, replacing any copy the client sent): null when it
 * is absent, e.g. a configuration rendered before the headers existed.
 */
export function forwardedVerdict(
  req: IncomingMessage,
): { verify: string; anchorsDigest: string | null } | null {
  const verify = req.headersDistinct[VERIFY_HEADER];
  if (verify?.length !== 1) return null;
  const digest = req.headersDistinct[TRUST_ANCHORS_HEADER];
  return {
    verify: verify[0]!,
    anchorsDigest: digest?.length === 1 && /^[0-9a-f]{64}$/.test(digest[0]!) ? digest[0]! : null,
  };
}

import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { unauthorized } from '../http/app-error.js';
import { inspectCertificate, type CertificateInfo } from './certificate-info.js';
import { assertAcceptableDeviceCertificate } from './device-certificate-policy.js';

/**
 * Parsed certificates per TLS connection. Renegotiation is disabled on the
 * server, so a connection's peer certificate cannot change; keep-alive
 * requests then skip re-parsing. Validity is still checked on every request.
 */
const inspected = new WeakMap<object, CertificateInfo | null>();

function certificateOfSocket(socket: TLSSocket): CertificateInfo | null {
  if (inspected.has(socket)) return inspected.get(socket) ?? null;
  const peer =
    typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate(false) : null;
  const der = peer && Buffer.isBuffer(peer.raw) && peer.raw.length > 0 ? peer.raw : null;
  const info = der ? inspectCertificate(der) : null;
  inspected.set(socket, info);
  return info;
}

/** The certificate the client presented on this request's connection, if any. */
export function peerCertificate(req: IncomingMessage): CertificateInfo | null {
  return certificateOfSocket(req.socket as TLSSocket);
}

/** The presented certificate, or a 401 when it is missing or not acceptable. */
export function requireClientCertificate(req: IncomingMessage, now = new Date()): CertificateInfo {
  const info = peerCertificate(req);
  if (!info) throw unauthorized('no_client_certificate', 'a client certificate is required');
  assertAcceptableDeviceCertificate(info, now);
  return info;
}

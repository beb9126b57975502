import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { unauthorized } from '../http/app-error.js';
import { forwardedCertificate } from '../proxy/forwarded-certificate.js';
import { originOf } from '../proxy/request-origin.js';
import { inspectCertificateCached } from './certificate-cache.js';
import type { CertificateInfo } from './certificate-info.js';
import { assertAcceptableDeviceCertificate } from './device-certificate-policy.js';

/**
 * Parsed certificates per TLS connection. Renegotiation is disabled on the
 * server, so a connection's peer certificate cannot change; keep-alive
 * requests then skip re-parsing, and a new connection with a certificate seen
 * lately (a sleepy device resuming) reuses its inspection. Validity is still
 * checked on every request.
 */
const inspected = new WeakMap<object, CertificateInfo | null>();

function certificateOfSocket(socket: TLSSocket): CertificateInfo | null {
  if (inspected.has(socket)) return inspected.get(socket) ?? null;
  // Not getPeerX509Certificate(): on Node 20 it loses the intermediates the
  // client sent, which peerIntermediates() reads afterwards (tested by the
  // enrollment tests).
  const peer =
    typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate(false) : null;
  const der = peer && Buffer.isBuffer(peer.raw) && peer.raw.length > 0 ? peer.raw : null;
  const info = der ? inspectCertificateCached(der) : null;
  inspected.set(socket, info);
  return info;
}

/**
 * The certificate the client presented: on the TLS connection in direct mode,
 * in the forwarded header only when the request came through a trusted proxy,
 * and none at all from any other peer while proxy mode is on.
 */
export function peerCertificate(req: IncomingMessage): CertificateInfo | null {
  const origin = originOf(req);
  switch (origin.kind) {
    case 'direct':
      return certificateOfSocket(req.socket as TLSSocket);
    case 'trusted-proxy':
      return forwardedCertificate(req, origin.certHeader);
    case 'untrusted-peer':
      return null;
  }
}

/** The presented certificate, or a 401 when it is missing or not acceptable. */
export function requireClientCertificate(req: IncomingMessage, now = new Date()): CertificateInfo {
  const info = peerCertificate(req);
  if (!info) throw unauthorized('no_client_certificate', 'a client certificate is required');
  assertAcceptableDeviceCertificate(info, now);
  return info;
}

/**
 * The certificates the client sent after its own in the TLS handshake (direct
 * mode only; behind a proxy only the leaf is forwarded). Node links them by
 * issuer in getPeerCertificate(true); the server's trust store is empty, so
 * all of them come from the client.
 */
export function peerIntermediates(req: IncomingMessage): Buffer[] | null {
  if (originOf(req).kind !== 'direct') return null;
  const socket = req.socket as TLSSocket;
  if (typeof socket.getPeerCertificate !== 'function') return null;
  const leaf = socket.getPeerCertificate(true);
  if (!leaf || !Buffer.isBuffer(leaf.raw)) return null;
  const out: Buffer[] = [];
  let current = leaf;
  for (let i = 0; i < 10; i++) {
    const next = current.issuerCertificate;
    if (!next || next === current || !Buffer.isBuffer(next.raw) || next.raw.equals(current.raw))
      break;
    out.push(next.raw);
    current = next;
  }
  return out;
}

/**
 * The certificate on a TLS socket of another protocol than HTTP (the MQTT
 * listener), checked like requireClientCertificate's.
 */
export function requireSocketCertificate(socket: TLSSocket, now = new Date()): CertificateInfo {
  const info = certificateOfSocket(socket);
  if (!info) throw unauthorized('no_client_certificate', 'a client certificate is required');
  assertAcceptableDeviceCertificate(info, now);
  return info;
}

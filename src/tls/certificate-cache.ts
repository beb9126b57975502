import { fingerprintOf, inspectCertificate, type CertificateInfo } from './certificate-info.js';

/** About 2 KB each (the DER bytes and the parsed fields): a few MB at most. */
const MAX_ENTRIES = 2048;

/**
 * Inspections of the certificates seen lately, by their DER bytes. A sleepy
 * device presents the same certificate on every new connection (behind nginx
 * in a header of every request), and parsing it (X509Certificate, RFC 5280
 * shape, the self-signature check) cost more server CPU than the resumed TLS
 * handshake itself. What is kept depends on the bytes alone: validity dates,
 * key policy and everything about the device (bound, revoked, CRL) are still
 * checked on every request. Least recently used first out; a certificate that
 * fails to parse is not kept (it throws again next time).
 */
const inspections = new Map<string, CertificateInfo>();

export function inspectCertificateCached(der: Buffer): CertificateInfo {
  const key = fingerprintOf(der);
  const hit = inspections.get(key);
  if (hit && hit.der.equals(der)) {
    inspections.delete(key);
    inspections.set(key, hit);
    return hit;
  }
  const info = Object.freeze(inspectCertificate(der));
  inspections.set(key, info);
  if (inspections.size > MAX_ENTRIES) {
    inspections.delete(inspections.keys().next().value as string);
  }
  return info;
}

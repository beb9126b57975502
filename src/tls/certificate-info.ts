import { createHash, X509Certificate, type KeyObject } from 'node:crypto';
import { AppError } from '../http/app-error.js';
import { tbsStructure } from './tbs-structure.js';

export interface CertificateInfo {
  fingerprint: string;
  subject: string;
  issuer: string;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  keyType: string;
  keyBits: number | null;
  rsaExponent: number | null;
  selfSigned: boolean;
  /** The certificate's DER bytes (for chain verification). */
  der: Buffer;
}

// Only the NIST curves get a size; any other curve is reported with keyBits null so that the
// policy cannot mistake e.g. secp256k1 or brainpoolP256r1 for P-256.
const EC_CURVE_BITS: Record<string, number> = {
  prime256v1: 256,
  'P-256': 256,
  secp384r1: 384,
  'P-384': 384,
  secp521r1: 521,
  'P-521': 521,
};

const malformed = (message: string) => new AppError(400, 'malformed_certificate', message);

export function fingerprintOf(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}

export function inspectCertificate(der: Buffer): CertificateInfo {
  const cert = parseDer(der);
  const key = publicKeyOf(cert);
  const details = key?.asymmetricKeyDetails;
  const keyType = key?.asymmetricKeyType ?? 'unknown';
  const isRsa = keyType === 'rsa' || keyType === 'rsa-pss';
  return {
    fingerprint: fingerprintOf(cert.raw),
    subject: oneLine(cert.subject),
    issuer: oneLine(cert.issuer),
    serialNumber: cert.serialNumber.toLowerCase(),
    notBefore: certDate(cert, 'validFrom'),
    notAfter: certDate(cert, 'validTo'),
    keyType,
    keyBits: isRsa
      ? (details?.modulusLength ?? null)
      : keyType === 'ec'
        ? (EC_CURVE_BITS[details?.namedCurve ?? ''] ?? null)
        : null,
    rsaExponent: isRsa ? safeExponent(details?.publicExponent) : null,
    selfSigned: key !== null && isSelfSigned(cert, key),
    der: cert.raw,
  };
}

export function parsePemCertificate(pem: string): Buffer {
  const der = decodePemCertificate(pem);
  parseDer(der);
  return der;
}

/**
 * The DER bytes of exactly one PEM CERTIFICATE block, not parsed yet
 * (inspectCertificate parses them, and refuses them as parsePemCertificate would).
 */
export function decodePemCertificate(pem: string): Buffer {
  // Any other block (a private key pasted alongside, a chain) means the caller sent something
  // other than the one certificate we were asked to read, so refuse rather than guess.
  const blocks = [...pem.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g)];
  const begins = pem.match(/-----BEGIN /g)?.length ?? 0;
  if (blocks.length !== 1 || begins !== 1 || blocks[0][1] !== 'CERTIFICATE') {
    throw malformed('expected exactly one PEM CERTIFICATE block');
  }
  const body = blocks[0][2].replace(/\s+/g, '');
  // Buffer.from(…, 'base64') silently skips junk characters, which would hide corruption.
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body) || body.length % 4 !== 0) {
    throw malformed('PEM certificate body is not valid base64');
  }
  return Buffer.from(body, 'base64');
}

function parseDer(der: Buffer): X509Certificate {
  if (!Buffer.isBuffer(der) || der.length === 0 || der[0] !== 0x30) {
    throw malformed('certificate is not DER-encoded');
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch (err) {
    throw malformed(`certificate could not be parsed: ${(err as Error).message}`);
  }
  // OpenSSL ignores trailing bytes; insisting on an exact match keeps "same certificate" and
  // "same fingerprint" equivalent no matter which bytes a caller hashes.
  if (!cert.raw.equals(der)) {
    throw malformed('certificate has trailing or non-canonical bytes');
  }
  assertRfc5280Structure(cert, der);
  return cert;
}

/**
 * Shapes OpenSSL parses but RFC 5280 forbids. A serial number is at most 20
 * octets (4.1.2.2): longer ones are fuzzing or a broken issuer, and would be
 * stored and shown everywhere. Extensions exist only in version 3 (4.1.2.9).
 */
function assertRfc5280Structure(cert: X509Certificate, der: Buffer): void {
  const serialOctets = Math.ceil(cert.serialNumber.replace(/^0+/, '').length / 2);
  if (serialOctets > 20) {
    throw malformed(`certificate serial number has ${serialOctets} octets, at most 20 allowed`);
  }
  const structure = tbsStructure(der);
  if (!structure) throw malformed('certificate structure could not be read');
  if (structure.hasExtensions && structure.version !== 3) {
    throw malformed(`version ${structure.version} certificate carries extensions`);
  }
}

function publicKeyOf(cert: X509Certificate): KeyObject | null {
  try {
    return cert.publicKey;
  } catch {
    // Algorithms OpenSSL cannot load (e.g. GOST) are reported as 'unknown' so that the policy
    // rejects them as a key problem (401) rather than as a malformed certificate.
    return null;
  }
}

function isSelfSigned(cert: X509Certificate, key: KeyObject): boolean {
  // Not checkIssued(cert): OpenSSL's issuer check also demands keyCertSign when keyUsage is
  // present, which end-entity device certificates rightly lack.
  try {
    return cert.subject === cert.issuer && cert.verify(key);
  } catch {
    return false;
  }
}

function oneLine(name: string): string {
  return name.split('\n').filter(Boolean).join(', ');
}

// Node 20 only has the validFrom/validTo strings ("Nov 22 03:41:00 2025 GMT");
// validFromDate/validToDate arrived in Node 23, so use them only when present.
function certDate(cert: X509Certificate, field: 'validFrom' | 'validTo'): Date {
  const native = (cert as unknown as Record<string, unknown>)[`${field}Date`];
  const date = native instanceof Date ? native : new Date(cert[field]);
  if (Number.isNaN(date.getTime())) {
    throw malformed(`certificate has an unreadable ${field} date`);
  }
  return date;
}

// A bigint beyond 2^53 cannot be represented exactly, and its parity (which the policy checks)
// would be lost; such exponents are unusual enough to be reported as null and rejected.
function safeExponent(e: bigint | undefined): number | null {
  if (e === undefined || e > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return Number(e);
}

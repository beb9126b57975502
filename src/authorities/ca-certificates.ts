import { randomBytes, webcrypto } from 'node:crypto';
import { badRequest } from '../http/app-error.js';
import { fingerprintOf } from '../tls/certificate-info.js';
import { normaliseMac } from './mac-address.js';
import { x509 } from './x509.js';

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

export interface CaMaterial {
  certificatePem: string;
  keyPem: string;
  fingerprint: string;
}

export interface CertificateSummary {
  fingerprint: string;
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  pem: string;
  der: Buffer;
}

function serial(): string {
  // 16 random bytes, positive (first bit clear), as RFC 5280 wants.
  const bytes = randomBytes(16);
  bytes[0] &= 0x7f;
  bytes[0] |= 0x01;
  return bytes.toString('hex');
}

function keyPem(pkcs8: ArrayBuffer): string {
  const b64 = Buffer.from(pkcs8).toString('base64');
  return `-----BEGIN PRIVATE KEY-----\n${b64.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

/** A device CA: ECDSA P-256, CA:true (no intermediates below it), keyCertSign and cRLSign. */
export async function createDeviceCa(commonName: string, years = 20): Promise<CaMaterial> {
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${escapeDnValue(commonName)}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + years * 365 * DAY_MS),
    signingAlgorithm: SIGN,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    certificatePem: cert.toString('pem') + '\n',
    keyPem: keyPem(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)),
    fingerprint: fingerprintOf(Buffer.from(cert.rawData)),
  };
}

export async function importCaKey(pem: string): Promise<CryptoKey> {
  const body = pem
    .replace(/-----BEGIN PRIVATE KEY-----|-----END PRIVATE KEY-----/g, '')
    .replace(/\s+/g, '');
  try {
    return await webcrypto.subtle.importKey('pkcs8', Buffer.from(body, 'base64'), EC_P256, false, [
      'sign',
    ]);
  } catch {
    throw badRequest('invalid_ca_key', 'ca.key is not a PKCS#8 ECDSA P-256 private key');
  }
}

/** Issues a device certificate (CN = name) for a public key, signed by the CA. */
export async function issueDeviceCertificate(
  ca: x509.X509Certificate,
  caKey: CryptoKey,
  publicKey: CryptoKey,
  commonName: string,
  days: number,
): Promise<x509.X509Certificate> {
  const now = Date.now();
  return x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${escapeDnValue(commonName)}`,
    issuer: ca.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + days * DAY_MS),
    signingAlgorithm: SIGN,
    publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      await x509.AuthorityKeyIdentifierExtension.create(ca, false),
    ],
  });
}

export async function generateDeviceKey(): Promise<{ keys: CryptoKeyPair; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  return { keys, keyPem: keyPem(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) };
}

function escapeDnValue(value: string): string {
  return value.replace(/([,+"\\<>;=])/g, '\\$1');
}

/** Reads one PEM or DER certificate; 400 `invalid_ca_certificate` otherwise. */
export function parseCertificate(input: string | Buffer): x509.X509Certificate {
  try {
    const text = Buffer.isBuffer(input) ? input.toString('latin1') : input;
    if (text.includes('-----BEGIN')) {
      const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g);
      if (!blocks || blocks.length !== 1) throw new Error('expected one PEM certificate');
      return new x509.X509Certificate(blocks[0]);
    }
    const der = Buffer.isBuffer(input) ? input : Buffer.from(input, 'base64');
    return new x509.X509Certificate(new Uint8Array(der));
  } catch (err) {
    throw badRequest(
      'invalid_ca_certificate',
      `not one X.509 certificate in PEM or DER: ${(err as Error).message}`,
    );
  }
}

export function summarize(cert: x509.X509Certificate): CertificateSummary {
  const der = Buffer.from(cert.rawData);
  return {
    fingerprint: fingerprintOf(der),
    subject: cert.subject,
    issuer: cert.issuer,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    pem: cert.toString('pem') + '\n',
    der,
  };
}

/** True when the certificate may issue certificates: CA:true, and keyCertSign if keyUsage is present. */
export function caProblem(cert: x509.X509Certificate): string | null {
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  if (!bc || !bc.ca) return 'its basicConstraints do not say CA:TRUE';
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  if (ku && (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    return 'its keyUsage lacks keyCertSign';
  }
  return null;
}

/** A serial number as certificate-info reports it: lowercase hex without leading zeros. */
export function normaliseSerial(hex: string): string {
  return hex.toLowerCase().replace(/^0+(?=.)/, '');
}

/** Whether a stored CA certificate (PEM) and `cert` carry the same public key. */
export function samePublicKey(pem: string, cert: x509.X509Certificate): boolean {
  const other = new x509.X509Certificate(pem);
  return Buffer.from(other.publicKey.rawData).equals(Buffer.from(cert.publicKey.rawData));
}

export function commonNameOf(cert: x509.X509Certificate): string | null {
  const values = cert.subjectName.getField('CN');
  return values.length === 1 ? values[0] : null;
}

/**
 * A device's name from its certificate: the subject CN, a MAC address in its
 * one written form (`44:8A:5B:9C:70:93` and `448a5b9c7093` are one device, as
 * in a MAC file), so a second certificate cannot take a MAC under another case.
 */
export function deviceNameOf(cert: x509.X509Certificate): string | null {
  const cn = commonNameOf(cert);
  return cn === null ? null : sameDeviceName(cn);
}

/** A stored or typed name in the form names are compared in. */
export function sameDeviceName(name: string): string {
  return normaliseMac(name) ?? name;
}

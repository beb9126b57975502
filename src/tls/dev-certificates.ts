import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type forge from 'node-forge';
import { fingerprintOf, parsePemCertificate } from './certificate-info.js';

export interface PemPair {
  certPem: string;
  keyPem: string;
}

export interface DeviceCertificateOptions {
  commonName?: string;
  notBefore?: Date;
  notAfter?: Date;
  rsaBits?: number;
  rsaExponent?: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;
// Backdating absorbs clock skew between the machine that issues and the one that checks.
const backdated = () => new Date(Date.now() - 5 * 60 * 1000);
/**
 * node-forge (about 2 MB of JavaScript) is loaded on first use: a server with
 * its certificates already in place never needs it, and every megabyte of
 * resting memory counts against the upload memory budget.
 */
const requireCjs = createRequire(import.meta.url);
let forgeModule: typeof forge | undefined;
function forgeLib(): typeof forge {
  return (forgeModule ??= requireCjs('node-forge') as typeof forge);
}

interface KeyPair {
  keyPem: string;
  publicKey: forge.pki.PublicKey;
  privateKey: forge.pki.PrivateKey;
}

// forge's pure-JS RSA key generation takes seconds; OpenSSL's takes milliseconds.
function generateRsaKey(bits = 2048, exponent = 65537): KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicExponent: exponent,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return {
    keyPem: privateKey,
    publicKey: forgeLib().pki.publicKeyFromPem(publicKey),
    privateKey: forgeLib().pki.privateKeyFromPem(privateKey),
  };
}

// RFC 5280 wants a positive serial of at most 20 octets; a zero top byte would need
// non-minimal DER, so force it to be non-zero with the sign bit clear.
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0] & 0x7f || 0x01;
  return bytes.toString('hex');
}

function newCertificate(
  key: KeyPair,
  commonName: string,
  notBefore: Date,
  notAfter: Date,
): forge.pki.Certificate {
  const cert = forgeLib().pki.createCertificate();
  cert.publicKey = key.publicKey;
  cert.serialNumber = randomSerial();
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  cert.setSubject([{ name: 'commonName', value: commonName }]);
  return cert;
}

function sign(
  cert: forge.pki.Certificate,
  issuerCert: forge.pki.Certificate,
  issuerKey: forge.pki.PrivateKey,
  extensions: object[],
): string {
  cert.setIssuer(issuerCert.subject.attributes);
  cert.setExtensions([
    ...extensions,
    { name: 'subjectKeyIdentifier' },
    {
      name: 'authorityKeyIdentifier',
      keyIdentifier: issuerCert.generateSubjectKeyIdentifier().getBytes(),
    },
  ]);
  cert.sign(issuerKey as forge.pki.rsa.PrivateKey, forgeLib().md.sha256.create());
  return forgeLib().pki.certificateToPem(cert);
}

function loadIssuer(ca: PemPair): { cert: forge.pki.Certificate; key: forge.pki.PrivateKey } {
  return {
    cert: forgeLib().pki.certificateFromPem(ca.certPem),
    key: forgeLib().pki.privateKeyFromPem(ca.keyPem),
  };
}

export function createDevCa(): PemPair {
  const key = generateRsaKey();
  const notAfter = new Date(Date.now() + 10 * 365 * DAY_MS);
  const cert = newCertificate(key, 'fleetgate development CA', backdated(), notAfter);
  const certPem = sign(cert, cert, key.privateKey, [
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
  ]);
  return { certPem, keyPem: key.keyPem };
}

export function createServerCertificate(
  ca: PemPair,
  hostnames = ['localhost'],
  ips = ['127.0.0.1', '::1'],
): PemPair {
  const issuer = loadIssuer(ca);
  const key = generateRsaKey();
  // 825 days is the longest lifetime Apple platforms accept for TLS server certificates.
  const notAfter = new Date(Date.now() + 825 * DAY_MS);
  const cert = newCertificate(key, hostnames[0] ?? ips[0] ?? 'localhost', backdated(), notAfter);
  const certPem = sign(cert, issuer.cert, issuer.key, [
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: [
        ...hostnames.map((value) => ({ type: 2, value })),
        ...ips.map((ip) => ({ type: 7, ip })),
      ],
    },
  ]);
  return { certPem, keyPem: key.keyPem };
}

function deviceCertificate(ca: PemPair | null, opts: DeviceCertificateOptions): PemPair {
  const key = generateRsaKey(opts.rsaBits, opts.rsaExponent);
  const notBefore = opts.notBefore ?? backdated();
  const notAfter = opts.notAfter ?? new Date(Date.now() + 365 * DAY_MS);
  const cn = opts.commonName ?? `device-${randomBytes(8).toString('hex')}`;
  const cert = newCertificate(key, cn, notBefore, notAfter);
  const issuer = ca ? loadIssuer(ca) : { cert, key: key.privateKey };
  const certPem = sign(cert, issuer.cert, issuer.key, [
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, critical: true },
    { name: 'extKeyUsage', clientAuth: true },
  ]);
  return { certPem, keyPem: key.keyPem };
}

export function createSelfSignedDeviceCertificate(opts: DeviceCertificateOptions = {}): PemPair {
  return deviceCertificate(null, opts);
}

export function createCaSignedDeviceCertificate(
  ca: PemPair,
  opts: DeviceCertificateOptions = {},
): PemPair {
  return deviceCertificate(ca, opts);
}

// Write-then-rename so a crash never leaves a half-written PEM that the next start would trust.
function writeFileAtomic(path: string, data: string, mode: number): void {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

export function ensureDevServerCertificates(certsDir: string): {
  certPath: string;
  keyPath: string;
  caPath: string;
  created: boolean;
} {
  const certPath = join(certsDir, 'server.crt');
  const keyPath = join(certsDir, 'server.key');
  const caPath = join(certsDir, 'dev-ca.crt');
  const caKeyPath = join(certsDir, 'dev-ca.key');
  if (existsSync(certPath) && existsSync(keyPath)) {
    return { certPath, keyPath, caPath, created: false };
  }
  mkdirSync(certsDir, { recursive: true });
  // Reusing the CA keeps devices and curl setups that already trust it working.
  let ca: PemPair;
  if (existsSync(caPath) && existsSync(caKeyPath)) {
    ca = { certPem: readFileSync(caPath, 'utf8'), keyPem: readFileSync(caKeyPath, 'utf8') };
  } else {
    ca = createDevCa();
    writeFileAtomic(caKeyPath, ca.keyPem, 0o600);
    writeFileAtomic(caPath, ca.certPem, 0o644);
  }
  const server = createServerCertificate(ca);
  writeFileAtomic(keyPath, server.keyPem, 0o600);
  writeFileAtomic(certPath, server.certPem, 0o644);
  return { certPath, keyPath, caPath, created: true };
}

export function writeDeviceCertificate(outDir: string): {
  certPath: string;
  keyPath: string;
  fingerprint: string;
} {
  mkdirSync(outDir, { recursive: true });
  const device = createSelfSignedDeviceCertificate();
  const certPath = join(outDir, 'device.crt');
  const keyPath = join(outDir, 'device.key');
  writeFileAtomic(keyPath, device.keyPem, 0o600);
  writeFileAtomic(certPath, device.certPem, 0o644);
  return { certPath, keyPath, fingerprint: fingerprintOf(parsePemCertificate(device.certPem)) };
}

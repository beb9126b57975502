import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  randomBytes,
  sign as cryptoSign,
} from 'node:crypto';
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

/**
 * An ECDSA P-256 server certificate signed by the (RSA) development CA.
 * node-forge can neither hold nor encode EC public keys, so forge builds the
 * TBSCertificate around a throwaway placeholder key, the placeholder's
 * SubjectPublicKeyInfo is swapped for the P-256 one from node:crypto, and
 * node:crypto signs the result with the CA key. No other dependency and no
 * openssl binary is needed at run time; the tests check the result with
 * `openssl verify` and real TLS clients.
 */
export function createEcdsaServerCertificate(
  ca: PemPair,
  hostnames = ['localhost'],
  ips = ['127.0.0.1', '::1'],
): PemPair {
  const f = forgeLib();
  const issuer = loadIssuer(ca);
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spkiDer = ec.publicKey.export({ type: 'spki', format: 'der' });
  const spki = f.asn1.fromDer(f.util.createBuffer(spkiDer.toString('binary')));
  // RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's value.
  const bitString = (spki.value as forge.asn1.Asn1[])[1]!.value as string;
  const ski = createHash('sha1')
    .update(Buffer.from(bitString.slice(1), 'binary'))
    .digest('hex');
  const placeholder = generateRsaKey(1024);
  const notAfter = new Date(Date.now() + 825 * DAY_MS);
  const cert = newCertificate(
    placeholder,
    hostnames[0] ?? ips[0] ?? 'localhost',
    backdated(),
    notAfter,
  );
  cert.setIssuer(issuer.cert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    // ECDHE-ECDSA: the key only signs, it never encrypts a key exchange.
    { name: 'keyUsage', digitalSignature: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: [
        ...hostnames.map((value) => ({ type: 2, value })),
        ...ips.map((ip) => ({ type: 7, ip })),
      ],
    },
    { name: 'subjectKeyIdentifier', subjectKeyIdentifier: ski },
    {
      name: 'authorityKeyIdentifier',
      keyIdentifier: issuer.cert.generateSubjectKeyIdentifier().getBytes(),
    },
  ]);
  cert.signatureOid = f.pki.oids.sha256WithRSAEncryption!;
  cert.siginfo.algorithmOid = f.pki.oids.sha256WithRSAEncryption!;
  // Present in node-forge, missing from its type declarations.
  const tbs = (
    f.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }
  ).getTBSCertificate(cert);
  // TBSCertificate: [0] version, serial, signature, issuer, validity, subject, spki, ...
  (tbs.value as forge.asn1.Asn1[])[6] = spki;
  const tbsDer = Buffer.from(f.asn1.toDer(tbs).getBytes(), 'binary');
  const signature = cryptoSign('sha256', tbsDer, createPrivateKey(ca.keyPem));
  const { asn1 } = f;
  const certificate = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    tbs,
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
      asn1.create(
        asn1.Class.UNIVERSAL,
        asn1.Type.OID,
        false,
        asn1.oidToDer(f.pki.oids.sha256WithRSAEncryption!).getBytes(),
      ),
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''),
    ]),
    asn1.create(
      asn1.Class.UNIVERSAL,
      asn1.Type.BITSTRING,
      false,
      String.fromCharCode(0) + signature.toString('binary'),
    ),
  ]);
  const der = Buffer.from(asn1.toDer(certificate).getBytes(), 'binary');
  const certPem = `-----BEGIN CERTIFICATE-----\n${der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n?$/, '\n')}-----END CERTIFICATE-----\n`;
  const keyPem = ec.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  return { certPem, keyPem };
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

export interface DevServerCertificates {
  /** The RSA 2048 server certificate (for RSA-only clients). */
  certPath: string;
  keyPath: string;
  /** The ECDSA P-256 server certificate (for ECDHE-ECDSA-only clients). */
  ecdsaCertPath: string;
  ecdsaKeyPath: string;
  caPath: string;
  created: boolean;
}

/**
 * The development CA and its two server certificates (RSA and ECDSA P-256),
 * created on first use. A certs directory from before the ECDSA certificate
 * existed gets one added, issued by the same CA.
 */
export function ensureDevServerCertificates(certsDir: string): DevServerCertificates {
  const certPath = join(certsDir, 'server.crt');
  const keyPath = join(certsDir, 'server.key');
  const ecdsaCertPath = join(certsDir, 'server-ecdsa.crt');
  const ecdsaKeyPath = join(certsDir, 'server-ecdsa.key');
  const caPath = join(certsDir, 'dev-ca.crt');
  const caKeyPath = join(certsDir, 'dev-ca.key');
  const paths = { certPath, keyPath, ecdsaCertPath, ecdsaKeyPath, caPath };
  const haveRsa = existsSync(certPath) && existsSync(keyPath);
  const haveEcdsa = existsSync(ecdsaCertPath) && existsSync(ecdsaKeyPath);
  if (haveRsa && haveEcdsa) return { ...paths, created: false };
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
  if (!haveRsa) {
    const server = createServerCertificate(ca);
    writeFileAtomic(keyPath, server.keyPem, 0o600);
    writeFileAtomic(certPath, server.certPem, 0o644);
  }
  if (!haveEcdsa) {
    const server = createEcdsaServerCertificate(ca);
    writeFileAtomic(ecdsaKeyPath, server.keyPem, 0o600);
    writeFileAtomic(ecdsaCertPath, server.certPem, 0o644);
  }
  return { ...paths, created: true };
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

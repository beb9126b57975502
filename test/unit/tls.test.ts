import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { AppError } from '../../src/http/app-error.js';
import {
  fingerprintOf,
  inspectCertificate,
  parsePemCertificate,
} from '../../src/tls/certificate-info.js';
import { inspectCertificateCached } from '../../src/tls/certificate-cache.js';
import { assertAcceptableDeviceCertificate } from '../../src/tls/device-certificate-policy.js';
import {
  createCaSignedDeviceCertificate,
  createDevCa,
  createSelfSignedDeviceCertificate,
  ensureDevServerCertificates,
  writeDeviceCertificate,
} from '../../src/tls/dev-certificates.js';

const DAY_MS = 24 * 60 * 60 * 1000;

function openssl(args: string[], cwd: string): string {
  return execFileSync('openssl', args, { cwd, encoding: 'utf8', stdio: 'pipe' });
}

function expectAppError(fn: () => unknown, status: number, code: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).to.be.instanceOf(AppError);
  expect(err).to.include({ status, code });
}

const derOf = (certPem: string): Buffer => parsePemCertificate(certPem);

describe('tls certificates', function () {
  this.timeout(30_000);
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'fleetgate-tls-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  describe('certificate-info', () => {
    it('computes the same SHA-256 fingerprint as openssl', () => {
      const { certPem } = createSelfSignedDeviceCertificate();
      const file = join(dir, 'fp.crt');
      writeFileSync(file, certPem);
      const out = openssl(['x509', '-noout', '-fingerprint', '-sha256', '-in', file], dir);
      const expected = out.trim().split('=')[1].replace(/:/g, '').toLowerCase();
      expect(fingerprintOf(derOf(certPem))).to.equal(expected);
      expect(inspectCertificate(derOf(certPem)).fingerprint).to.equal(expected);
    });

    it('reports RSA 2048 key details', () => {
      const info = inspectCertificate(derOf(createSelfSignedDeviceCertificate().certPem));
      expect(info.keyType).to.equal('rsa');
      expect(info.keyBits).to.equal(2048);
      expect(info.rsaExponent).to.equal(65537);
      expect(info.selfSigned).to.equal(true);
      expect(info.subject).to.match(/^CN=device-[0-9a-f]+$/);
      expect(info.notBefore.getTime()).to.be.lessThan(Date.now());
    });

    it('reports EC P-256 key details', () => {
      openssl(
        ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'].concat([
          '-subj',
          '/CN=x/O=Acme',
          '-days',
          '1',
          '-keyout',
          'ec.key',
          '-out',
          'ec.crt',
        ]),
        dir,
      );
      const info = inspectCertificate(
        parsePemCertificate(readFileSync(join(dir, 'ec.crt'), 'utf8')),
      );
      expect(info.keyType).to.equal('ec');
      expect(info.keyBits).to.equal(256);
      expect(info.rsaExponent).to.equal(null);
      expect(info.subject).to.equal('CN=x, O=Acme');
      expect(() => assertAcceptableDeviceCertificate(info)).not.to.throw();
    });

    it('reports CA-signed certificates as not self-signed', () => {
      const ca = createDevCa();
      const info = inspectCertificate(derOf(createCaSignedDeviceCertificate(ca).certPem));
      expect(info.selfSigned).to.equal(false);
      expect(info.issuer).to.equal('CN=fleetgate development CA');
    });
  });

  describe('certificate inspections kept across connections', () => {
    it('gives the same inspection for the same bytes, a new one for other bytes', () => {
      const der = derOf(createSelfSignedDeviceCertificate().certPem);
      const first = inspectCertificateCached(der);
      expect(first).to.deep.equal(inspectCertificate(der));
      // A copy of the bytes (a new connection presenting the same certificate) hits.
      expect(inspectCertificateCached(Buffer.from(der))).to.equal(first);
      expect(Object.isFrozen(first)).to.equal(true);
      const other = derOf(createSelfSignedDeviceCertificate().certPem);
      expect(inspectCertificateCached(other).fingerprint).to.equal(fingerprintOf(other));
    });

    it('keeps nothing for bytes that do not parse: they are refused every time', () => {
      const der = derOf(createSelfSignedDeviceCertificate().certPem);
      const padded = Buffer.concat([der, Buffer.from([0, 0, 0])]);
      for (let i = 0; i < 2; i++) {
        expectAppError(() => inspectCertificateCached(padded), 400, 'malformed_certificate');
      }
    });

    it('still refuses an expired certificate on each check (dates are not cached away)', () => {
      const info = inspectCertificateCached(derOf(createSelfSignedDeviceCertificate().certPem));
      expect(() => assertAcceptableDeviceCertificate(info)).not.to.throw();
      const later = new Date(info.notAfter.getTime() + DAY_MS);
      expectAppError(
        () => assertAcceptableDeviceCertificate(info, later),
        401,
        'certificate_expired',
      );
      expect(inspectCertificateCached(Buffer.from(info.der))).to.equal(info);
    });
  });

  describe('malformed input', () => {
    const valid = () => derOf(createSelfSignedDeviceCertificate().certPem);

    it('rejects random bytes', () => {
      expectAppError(() => inspectCertificate(randomBytes(512)), 400, 'malformed_certificate');
      const seq = Buffer.concat([Buffer.from([0x30]), randomBytes(300)]);
      expectAppError(() => inspectCertificate(seq), 400, 'malformed_certificate');
    });

    it('rejects a truncated certificate and trailing garbage', () => {
      const der = valid();
      expectAppError(
        () => inspectCertificate(der.subarray(0, der.length - 10)),
        400,
        'malformed_certificate',
      );
      const padded = Buffer.concat([der, Buffer.from([0, 0, 0])]);
      expectAppError(() => inspectCertificate(padded), 400, 'malformed_certificate');
    });

    it('rejects deeply nested ASN.1 without crashing', () => {
      const depth = 5000;
      const parts: Buffer[] = [];
      for (let i = 0; i < depth; i++) {
        const len = (depth - i - 1) * 4;
        parts.push(Buffer.from([0x30, 0x82, (len >> 8) & 0xff, len & 0xff]));
      }
      expectAppError(() => inspectCertificate(Buffer.concat(parts)), 400, 'malformed_certificate');
    });

    it('rejects empty DER and PEM that is not exactly one certificate', () => {
      expectAppError(() => inspectCertificate(Buffer.alloc(0)), 400, 'malformed_certificate');
      const { certPem, keyPem } = createSelfSignedDeviceCertificate();
      for (const pem of ['', 'hello', certPem + certPem, certPem + keyPem, keyPem]) {
        expectAppError(() => parsePemCertificate(pem), 400, 'malformed_certificate');
      }
      const corrupt = certPem.replace(/\n[A-Za-z0-9+/]{10}/, '\n!!!!!!!!!!');
      expectAppError(() => parsePemCertificate(corrupt), 400, 'malformed_certificate');
    });
  });

  describe('device certificate policy', () => {
    const check = (certPem: string) => () =>
      assertAcceptableDeviceCertificate(inspectCertificate(derOf(certPem)));

    it('accepts a fresh self-signed and a CA-signed certificate', () => {
      expect(check(createSelfSignedDeviceCertificate().certPem)).not.to.throw();
      expect(check(createCaSignedDeviceCertificate(createDevCa()).certPem)).not.to.throw();
    });

    it('rejects expired and not-yet-valid certificates', () => {
      const now = Date.now();
      const expired = createSelfSignedDeviceCertificate({
        notBefore: new Date(now - 400 * DAY_MS),
        notAfter: new Date(now - DAY_MS),
      });
      expectAppError(check(expired.certPem), 401, 'certificate_expired');
      const future = createSelfSignedDeviceCertificate({
        notBefore: new Date(now + DAY_MS),
        notAfter: new Date(now + 400 * DAY_MS),
      });
      expectAppError(check(future.certPem), 401, 'certificate_not_yet_valid');
    });

    it('rejects RSA 1024', () => {
      expectAppError(
        check(createSelfSignedDeviceCertificate({ rsaBits: 1024 }).certPem),
        401,
        'weak_key',
      );
    });

    it('rejects public exponent 3 (openssl- and forge-built)', () => {
      openssl(
        ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'].concat([
          '-pkeyopt',
          'rsa_keygen_pubexp:3',
          '-out',
          'e3.key',
        ]),
        dir,
      );
      openssl(
        ['req', '-x509', '-key', 'e3.key', '-subj', '/CN=e3', '-days', '1', '-out', 'e3.crt'],
        dir,
      );
      const pem = readFileSync(join(dir, 'e3.crt'), 'utf8');
      expect(inspectCertificate(derOf(pem)).rsaExponent).to.equal(3);
      expectAppError(check(pem), 401, 'weak_key');
      expectAppError(
        check(createSelfSignedDeviceCertificate({ rsaExponent: 3 }).certPem),
        401,
        'weak_key',
      );
    });

    it('rejects unsupported key types and curves', () => {
      const base = inspectCertificate(derOf(createSelfSignedDeviceCertificate().certPem));
      const cases = [
        { keyType: 'dsa', keyBits: 2048 },
        { keyType: 'ec', keyBits: null },
        { keyType: 'ec', keyBits: 224 },
        { keyType: 'rsa', keyBits: 2048, rsaExponent: 65538 },
      ];
      for (const c of cases) {
        expectAppError(() => assertAcceptableDeviceCertificate({ ...base, ...c }), 401, 'weak_key');
      }
      expect(() =>
        assertAcceptableDeviceCertificate({ ...base, keyType: 'ed25519' }),
      ).not.to.throw();
    });
  });

  describe('dev certificate files', () => {
    it('creates the server certificate once and reuses it afterwards', () => {
      const certsDir = join(dir, 'certs', 'nested');
      const first = ensureDevServerCertificates(certsDir);
      expect(first.created).to.equal(true);
      expect(statSync(first.keyPath).mode & 0o777).to.equal(0o600);
      expect(statSync(join(certsDir, 'dev-ca.key')).mode & 0o777).to.equal(0o600);
      const serverPem = readFileSync(first.certPath, 'utf8');

      const second = ensureDevServerCertificates(certsDir);
      expect(second).to.deep.equal({ ...first, created: false });
      expect(readFileSync(second.certPath, 'utf8')).to.equal(serverPem);

      const server = new X509Certificate(serverPem);
      const caPem = readFileSync(first.caPath, 'utf8');
      expect(server.verify(createPublicKey(caPem))).to.equal(true);
      expect(server.checkIssued(new X509Certificate(caPem))).to.equal(true);
      expect(server.checkHost('localhost')).to.equal('localhost');
      expect(server.checkIP('127.0.0.1')).to.equal('127.0.0.1');
      expect(server.checkIP('::1')).to.equal('::1');
    });

    it('reuses an existing dev CA when only the server files are missing', () => {
      const certsDir = join(dir, 'certs-reuse');
      const first = ensureDevServerCertificates(certsDir);
      const caPem = readFileSync(first.caPath, 'utf8');
      rmSync(first.certPath);
      const second = ensureDevServerCertificates(certsDir);
      expect(second.created).to.equal(true);
      expect(readFileSync(second.caPath, 'utf8')).to.equal(caPem);
      const server = new X509Certificate(readFileSync(second.certPath));
      expect(server.verify(createPublicKey(caPem))).to.equal(true);
    });

    it('issues an ECDSA P-256 server certificate from the same CA, which openssl verifies', () => {
      const certsDir = join(dir, 'certs-ecdsa');
      const made = ensureDevServerCertificates(certsDir);
      expect(statSync(made.ecdsaKeyPath).mode & 0o777).to.equal(0o600);
      const caPem = readFileSync(made.caPath, 'utf8');
      const server = new X509Certificate(readFileSync(made.ecdsaCertPath));
      expect(server.publicKey.asymmetricKeyType).to.equal('ec');
      expect(server.publicKey.asymmetricKeyDetails?.namedCurve).to.equal('prime256v1');
      expect(server.verify(createPublicKey(caPem))).to.equal(true);
      expect(server.checkPrivateKey(createPrivateKey(readFileSync(made.ecdsaKeyPath)))).to.equal(
        true,
      );
      expect(server.checkHost('localhost')).to.equal('localhost');
      expect(server.checkIP('127.0.0.1')).to.equal('127.0.0.1');
      const out = openssl(
        ['verify', '-purpose', 'sslserver', '-CAfile', made.caPath, made.ecdsaCertPath],
        dir,
      );
      expect(out).to.include(': OK');
      const text = openssl(['x509', '-noout', '-text', '-in', made.ecdsaCertPath], dir);
      expect(text).to.match(/Key Usage: critical\s+Digital Signature\n/);
      expect(text).to.include('TLS Web Server Authentication');
      expect(text).to.include('X509v3 Subject Key Identifier');
    });

    it('adds the ECDSA certificate to a certs directory that has only the RSA one', () => {
      const certsDir = join(dir, 'certs-upgrade');
      const first = ensureDevServerCertificates(certsDir);
      const rsaPem = readFileSync(first.certPath, 'utf8');
      rmSync(first.ecdsaCertPath);
      rmSync(first.ecdsaKeyPath);
      const second = ensureDevServerCertificates(certsDir);
      expect(second.created).to.equal(true);
      expect(readFileSync(second.certPath, 'utf8')).to.equal(rsaPem);
      const caPem = readFileSync(second.caPath, 'utf8');
      expect(
        new X509Certificate(readFileSync(second.ecdsaCertPath)).verify(createPublicKey(caPem)),
      ).to.equal(true);
    });

    it('writes a device certificate whose fingerprint matches the file', () => {
      const out = writeDeviceCertificate(join(dir, 'device'));
      expect(statSync(out.keyPath).mode & 0o777).to.equal(0o600);
      const der = parsePemCertificate(readFileSync(out.certPath, 'utf8'));
      expect(out.fingerprint)
        .to.equal(fingerprintOf(der))
        .and.to.match(/^[0-9a-f]{64}$/);
      const key = createPrivateKey(readFileSync(out.keyPath));
      expect(new X509Certificate(der).checkPrivateKey(key)).to.equal(true);
    });
  });
});

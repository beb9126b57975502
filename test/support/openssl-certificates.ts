import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash, X509Certificate } from 'node:crypto';
import type { PemPair } from '../../src/tls/dev-certificates.js';
import type { TestDevice } from './device-client.js';
import { selfSignedCertificate } from './openssl-cli.js';

/**
 * Device certificates made by the openssl CLI, for shapes our own generator
 * does not produce: copied subjects and SANs, odd serials, opaque extensions.
 */
export function opensslDevice(options: {
  subject: string;
  san?: string;
  serialHex?: string;
  /** Extra `-addext` arguments. */
  extensions?: string[];
}): TestDevice {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-openssl-'));
  try {
    const more: string[] = [];
    if (options.san) more.push('-addext', `subjectAltName=${options.san}`);
    if (options.serialHex) more.push('-set_serial', `0x${options.serialHex}`);
    for (const ext of options.extensions ?? []) more.push('-addext', ext);
    selfSignedCertificate({
      keyFile: path.join(dir, 'key.pem'),
      certFile: path.join(dir, 'cert.pem'),
      subject: options.subject,
      more,
    });
    return unvalidatedDevice({
      certPem: fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8'),
      keyPem: fs.readFileSync(path.join(dir, 'key.pem'), 'utf8'),
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Fingerprinted without fleetgate's parser, which refuses some of these certificates. */
export function unvalidatedDevice(pair: PemPair): TestDevice {
  const der = new X509Certificate(pair.certPem).raw;
  return { ...pair, fingerprint: createHash('sha256').update(der).digest('hex') };
}

/** DER of `depth` SEQUENCEs nested inside each other, as hex. */
export function nestedSequenceHex(depth: number): string {
  let inner = Buffer.from([0x05, 0x00]); // NULL at the core
  for (let i = 0; i < depth; i++)
    inner = Buffer.concat([Buffer.from([0x30]), derLength(inner.length), inner]);
  return inner.toString('hex');
}

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

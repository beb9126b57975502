import fs from 'node:fs';
import path from 'node:path';
import type { CaMaterial } from './ca-certificates.js';

/**
 * Writes ca.crt (0644) and ca.key (0600, created exclusively: an existing key
 * is never overwritten, since devices already issued would be orphaned).
 */
export function writeCaFiles(
  dir: string,
  material: CaMaterial,
): { certPath: string; keyPath: string; remove(): void } {
  fs.mkdirSync(dir, { recursive: true });
  const certPath = path.join(dir, 'ca.crt');
  const keyPath = path.join(dir, 'ca.key');
  for (const file of [certPath, keyPath]) {
    if (fs.existsSync(file)) throw new Error(`${file} exists; refusing to overwrite a CA`);
  }
  fs.writeFileSync(keyPath, material.keyPem, { mode: 0o600, flag: 'wx' });
  fs.chmodSync(keyPath, 0o600);
  fs.writeFileSync(certPath, material.certificatePem, { mode: 0o644, flag: 'wx' });
  return {
    certPath,
    keyPath,
    remove() {
      fs.rmSync(certPath, { force: true });
      fs.rmSync(keyPath, { force: true });
    },
  };
}

/** A certificate or CRL file as text: PEM as it is, DER as base64 (both parsers take either). */
export function readCertificateFile(file: string): string {
  const bytes = fs.readFileSync(file);
  const text = bytes.toString('latin1');
  return text.includes('-----BEGIN') ? text : bytes.toString('base64');
}

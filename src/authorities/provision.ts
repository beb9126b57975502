import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  generateDeviceKey,
  importCaKey,
  issueDeviceCertificate,
  parseCertificate,
  summarize,
} from './ca-certificates.js';
import { x509 } from './x509.js';

export interface ProvisionOptions {
  macs: string[];
  caDir: string;
  outDir: string;
  serverCaPem: string;
  /** Sign `<mac without colons>.csr` from here instead of generating keys. */
  csrDir?: string;
  days: number;
  onProgress?: (done: number) => void;
}

export interface ManifestRow {
  mac: string;
  fingerprint: string;
  notAfter: string;
  status: 'provisioned' | 'exists';
}

export const macDirName = (mac: string) => mac.replace(/:/g, '');

export function loadCa(caDir: string): { certPem: string; keyPem: string } {
  return {
    certPem: fs.readFileSync(path.join(caDir, 'ca.crt'), 'utf8'),
    keyPem: fs.readFileSync(path.join(caDir, 'ca.key'), 'utf8'),
  };
}

/**
 * Writes OUT/<mac>/{device.key, device.crt, ca.crt, server-ca.crt} for every
 * MAC that has no bundle yet, and OUT/manifest.csv for all of them. A bundle
 * is written into a temporary directory and renamed into place, so a run cut
 * short leaves whole bundles or none; a rerun marks existing ones `exists`.
 */
export async function provisionBundles(options: ProvisionOptions): Promise<ManifestRow[]> {
  const { certPem, keyPem } = loadCa(options.caDir);
  const ca = parseCertificate(certPem);
  const caKey = await importCaKey(keyPem);
  fs.mkdirSync(options.outDir, { recursive: true });
  const rows: ManifestRow[] = [];
  let done = 0;
  for (const mac of options.macs) {
    const dir = path.join(options.outDir, macDirName(mac));
    const crtPath = path.join(dir, 'device.crt');
    if (fs.existsSync(crtPath)) {
      const existing = summarize(parseCertificate(fs.readFileSync(crtPath, 'utf8')));
      rows.push({
        mac,
        fingerprint: existing.fingerprint,
        notAfter: existing.notAfter.toISOString(),
        status: 'exists',
      });
    } else {
      let publicKey: CryptoKey;
      let devicePem: string | null = null;
      if (options.csrDir) {
        const csr = readCsr(options.csrDir, mac);
        if (!(await csr.verify())) {
          throw new Error(`the CSR of ${mac} is not signed by its own key`);
        }
        publicKey = await csr.publicKey.export();
      } else {
        const generated = await generateDeviceKey();
        publicKey = generated.keys.publicKey;
        devicePem = generated.keyPem;
      }
      const cert = summarize(await issueDeviceCertificate(ca, caKey, publicKey, mac, options.days));
      const tmp = path.join(options.outDir, `.${macDirName(mac)}.${randomUUID()}`);
      fs.mkdirSync(tmp);
      if (devicePem) fs.writeFileSync(path.join(tmp, 'device.key'), devicePem, { mode: 0o600 });
      fs.writeFileSync(path.join(tmp, 'device.crt'), cert.pem);
      fs.writeFileSync(path.join(tmp, 'ca.crt'), certPem);
      fs.writeFileSync(path.join(tmp, 'server-ca.crt'), options.serverCaPem);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.renameSync(tmp, dir);
      rows.push({
        mac,
        fingerprint: cert.fingerprint,
        notAfter: cert.notAfter.toISOString(),
        status: 'provisioned',
      });
    }
    done += 1;
    options.onProgress?.(done);
  }
  const manifest =
    'mac,fingerprint,not_after,status\n' +
    rows.map((r) => `${r.mac},${r.fingerprint},${r.notAfter},${r.status}\n`).join('');
  const tmpManifest = path.join(options.outDir, `.manifest.${randomUUID()}.csv`);
  fs.writeFileSync(tmpManifest, manifest);
  fs.renameSync(tmpManifest, path.join(options.outDir, 'manifest.csv'));
  return rows;
}

function readCsr(csrDir: string, mac: string): x509.Pkcs10CertificateRequest {
  const file = path.join(csrDir, `${macDirName(mac)}.csr`);
  if (!fs.existsSync(file)) throw new Error(`no CSR for ${mac}: ${file} is missing`);
  const csr = new x509.Pkcs10CertificateRequest(fs.readFileSync(file, 'utf8'));
  return csr;
}

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { withFingerprint, type TestDevice } from '../../test/support/device-client.js';
import { inParallel } from './measure.js';

const run = promisify(execFile);

/**
 * `count` self-signed RSA 2048 device certificates made by the openssl CLI, a
 * few at a time. They share one key: only the certificate (its fingerprint)
 * tells devices apart, the handshake costs the same, and making a hundred keys
 * with the pure-JS signer took most of a --quick run on a busy machine.
 */
export async function makeDeviceCertificates(dir: string, count: number): Promise<TestDevice[]> {
  fs.mkdirSync(dir, { recursive: true });
  const keyPath = path.join(dir, 'devices.key');
  await run('openssl', [
    'genpkey',
    '-algorithm',
    'RSA',
    '-pkeyopt',
    'rsa_keygen_bits:2048',
    '-out',
    keyPath,
  ]);
  const keyPem = fs.readFileSync(keyPath, 'utf8');
  const devices: TestDevice[] = new Array<TestDevice>(count);
  await inParallel(
    Array.from({ length: count }, (_, i) => i),
    4,
    async (i) => {
      const certPath = path.join(dir, `device-${i}.crt`);
      await run('openssl', [
        'req',
        '-x509',
        '-key',
        keyPath,
        '-out',
        certPath,
        '-days',
        '2',
        '-subj',
        `/CN=bench-device-${i}`,
        '-set_serial',
        String(1000 + i),
        '-addext',
        'basicConstraints=CA:FALSE',
        '-addext',
        'keyUsage=critical,digitalSignature',
        '-addext',
        'extendedKeyUsage=clientAuth',
      ]);
      devices[i] = withFingerprint({ certPem: fs.readFileSync(certPath, 'utf8'), keyPem });
    },
  );
  return devices;
}

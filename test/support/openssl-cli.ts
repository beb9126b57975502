import { execFileSync } from 'node:child_process';
import path from 'node:path';

/**
 * Keys, requests and certificates made by the plain openssl CLI, as firmware
 * tooling and factory stations make them: the commands the openssl-based test
 * helpers and tests share.
 */

/** Runs openssl (in `cwd`); throws, with its stderr, when it fails. */
export function openssl(args: string[], cwd?: string): void {
  execFileSync('openssl', args, { stdio: 'pipe', cwd });
}

/** `openssl req` arguments for a new unencrypted key: P-256, or RSA 2048. */
export function newKeyArgs(kind: 'ec' | 'rsa' = 'ec'): string[] {
  return kind === 'ec'
    ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
    : ['-newkey', 'rsa:2048', '-nodes'];
}

/** A new key in `keyFile` and a self-signed certificate for `subject` (`/CN=...`) in `certFile`. */
export function selfSignedCertificate(options: {
  keyFile: string;
  certFile: string;
  subject: string;
  kind?: 'ec' | 'rsa';
  days?: number;
  /** More `openssl req` arguments (extensions, serial). */
  more?: string[];
  cwd?: string;
}): void {
  openssl(
    [
      'req',
      '-x509',
      ...newKeyArgs(options.kind),
      '-keyout',
      options.keyFile,
      '-out',
      options.certFile,
      '-days',
      String(options.days ?? 30),
      '-subj',
      options.subject,
      ...(options.more ?? []),
    ],
    options.cwd,
  );
}

/** A new P-256 key in `keyFile` and a certificate request for `subject` in `csrFile`. */
export function certificateRequest(
  keyFile: string,
  csrFile: string,
  subject: string,
  cwd?: string,
): void {
  openssl(
    ['req', '-new', ...newKeyArgs(), '-keyout', keyFile, '-out', csrFile, '-subj', subject],
    cwd,
  );
}

/**
 * A device certificate for `cn` signed with openssl alone (fleetgate knows
 * nothing of it) by the CA that `fleetgate ca create --out caDir` wrote
 * (ca.crt, ca.key): its key, request and certificate are `base`.key, .csr, .crt.
 */
export function issueWithCaDir(caDir: string, base: string, cn: string): void {
  certificateRequest(`${base}.key`, `${base}.csr`, `/CN=${cn}`);
  const signer = ['-CA', path.join(caDir, 'ca.crt'), '-CAkey', path.join(caDir, 'ca.key')];
  openssl([
    'x509',
    '-req',
    '-in',
    `${base}.csr`,
    ...signer,
    '-CAcreateserial',
    '-out',
    `${base}.crt`,
    '-days',
    '30',
  ]);
}

/**
 * Firmware-style TLS clients for the tests: small C programs on Debian's mbed
 * TLS 2.28 and wolfSSL 5.5 (test/tls/clients/*.c), compiled with gcc into a
 * temporary directory on first use, plus the request files they send.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../support/fleetgate-process.js';
import type { TestDevice } from '../support/device-client.js';
import { selfSignedCertificate } from '../support/openssl-cli.js';

export type Stack = 'mbedtls' | 'wolfssl';

const SOURCES: Record<Stack, { file: string; header: string; libs: string[]; pkg: string }> = {
  mbedtls: {
    file: 'mbedtls_client.c',
    header: '/usr/include/mbedtls/ssl.h',
    libs: ['-lmbedtls', '-lmbedx509', '-lmbedcrypto'],
    pkg: 'libmbedtls-dev',
  },
  wolfssl: {
    file: 'wolfssl_client.c',
    header: '/usr/include/wolfssl/ssl.h',
    libs: ['-lwolfssl'],
    pkg: 'libwolfssl-dev',
  },
};

const CLIENT_DIR = path.join(REPO_ROOT, 'test', 'tls', 'clients');
let buildDir: string | undefined;
const built = new Map<Stack, string>();

/** Why this stack cannot be built here, or null when it can. */
export function stackMissing(stack: Stack): string | null {
  try {
    execFileSync('gcc', ['--version'], { stdio: 'pipe' });
  } catch {
    return 'gcc is not installed';
  }
  const source = SOURCES[stack];
  if (!fs.existsSync(source.header)) {
    return `${source.header} is missing (apt-get install ${source.pkg})`;
  }
  return null;
}

/** The compiled client of this stack (compiled once per test process). */
export function clientBinary(stack: Stack): string {
  const done = built.get(stack);
  if (done) return done;
  buildDir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-tls-clients-'));
  const source = SOURCES[stack];
  const out = path.join(buildDir, stack);
  execFileSync(
    'gcc',
    ['-O1', '-Wall', '-Werror', '-o', out, path.join(CLIENT_DIR, source.file), ...source.libs],
    { stdio: 'pipe' },
  );
  built.set(stack, out);
  return out;
}

export function removeBuiltClients(): void {
  if (buildDir) fs.rmSync(buildDir, { recursive: true, force: true });
  buildDir = undefined;
  built.clear();
}

export interface ClientOptions {
  ciphers?: string[];
  tickets?: boolean;
  mfl?: 512 | 1024 | 2048 | 4096;
  writeSize?: number;
  tls13?: boolean;
  alpn?: string;
}

export interface Connection {
  version: string;
  cipher: string;
  resumed: boolean;
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- test assertions read arbitrary JSON
  json: any;
  raw: string;
}

export interface ClientRun {
  code: number;
  output: string;
  connections: Connection[];
}

/**
 * Runs the client once: one connection per request (raw HTTP bytes), each
 * after the first offering the previous session for resumption.
 */
export function runClient(
  stack: Stack,
  target: { port: number; caPath: string },
  device: { certPath: string; keyPath: string },
  requests: Buffer[],
  options: ClientOptions = {},
): Promise<ClientRun> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-tls-req-'));
  const files = requests.map((body, i) => {
    const file = path.join(dir, `request-${i}.http`);
    fs.writeFileSync(file, body);
    return file;
  });
  const args = [
    '--host',
    '127.0.0.1',
    '--port',
    String(target.port),
    '--ca',
    target.caPath,
    '--cert',
    device.certPath,
    '--key',
    device.keyPath,
    '--tickets',
    options.tickets === false ? '0' : '1',
  ];
  if (options.ciphers) args.push('--ciphers', options.ciphers.join(','));
  if (options.mfl) args.push('--mfl', String(options.mfl));
  if (options.writeSize) args.push('--write-size', String(options.writeSize));
  if (options.tls13) args.push('--tls13');
  if (options.alpn) args.push('--alpn', options.alpn);
  return new Promise((resolve) => {
    execFile(
      clientBinary(stack),
      [...args, ...files],
      { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        fs.rmSync(dir, { recursive: true, force: true });
        const output = `${stdout}${stderr}`;
        resolve({
          code: err ? (typeof err.code === 'number' ? err.code : 1) : 0,
          output,
          connections: parseConnections(stdout),
        });
      },
    );
  });
}

function parseConnections(stdout: string): Connection[] {
  const parts = stdout.split(/^CONNECTION \d+ /m).slice(1);
  return parts.map((part) => {
    const header = /^version=(\S+) cipher=(\S+) resumed=([01])\n/.exec(part);
    const raw = part.slice(header?.[0].length ?? 0);
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(raw)?.[1] ?? 0);
    const bodyText = raw.split('\r\n\r\n').slice(1).join('\r\n\r\n').trim();
    let json: unknown;
    try {
      json = JSON.parse(bodyText);
    } catch {
      json = undefined;
    }
    return {
      version: header?.[1] ?? '',
      cipher: header?.[2] ?? '',
      resumed: header?.[3] === '1',
      status,
      json,
      raw,
    };
  });
}

/** Writes the device's PEM files where a C client can read them. */
export function deviceFiles(device: TestDevice, dir: string, name: string) {
  const certPath = path.join(dir, `${name}.crt`);
  const keyPath = path.join(dir, `${name}.key`);
  fs.writeFileSync(certPath, device.certPem);
  fs.writeFileSync(keyPath, device.keyPem, { mode: 0o600 });
  return { certPath, keyPath };
}

const HOST = 'Host: localhost\r\n';

export function bindRequest(psk: string): Buffer {
  const body = JSON.stringify({ PSK: psk });
  return Buffer.from(
    `POST /device_endpoint HTTP/1.1\r\n${HOST}Content-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export function statusRequest(): Buffer {
  return Buffer.from(`GET /device_endpoint HTTP/1.1\r\n${HOST}Connection: close\r\n\r\n`);
}

/** One series upload as firmware sends it: with Content-Length, or chunked. */
export function uploadRequest(
  series: string,
  lines: string[],
  encoding: 'content-length' | 'chunked' = 'content-length',
): Buffer {
  const boundary = 'fgdevice7d9f1c';
  const body = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="${series}"; filename="${series}.csv"\r\n` +
      `Content-Type: text/csv\r\n\r\n${lines.join('\n')}\n\r\n--${boundary}--\r\n`,
  );
  const head =
    `POST /device_endpoint HTTP/1.1\r\n${HOST}` +
    `Content-Type: multipart/form-data; boundary=${boundary}\r\nConnection: close\r\n`;
  if (encoding === 'content-length') {
    return Buffer.concat([Buffer.from(`${head}Content-Length: ${body.length}\r\n\r\n`), body]);
  }
  // Chunks of 100 bytes, as a device streaming from a small buffer would send.
  const chunks: Buffer[] = [Buffer.from(`${head}Transfer-Encoding: chunked\r\n\r\n`)];
  for (let off = 0; off < body.length; off += 100) {
    const piece = body.subarray(off, off + 100);
    chunks.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(chunks);
}

/** A P-256 or RSA device certificate made by openssl, as a device's factory would. */
export function factoryDevice(kind: 'ec' | 'rsa', dir: string, name: string) {
  const keyPath = path.join(dir, `${name}.key`);
  const certPath = path.join(dir, `${name}.crt`);
  selfSignedCertificate({ keyFile: keyPath, certFile: certPath, subject: `/CN=${name}`, kind });
  const der = new X509Certificate(fs.readFileSync(certPath)).raw;
  const fingerprint = createHash('sha256').update(der).digest('hex');
  return { certPath, keyPath, fingerprint };
}

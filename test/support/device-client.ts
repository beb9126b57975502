import crypto from 'node:crypto';
import type { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import { fingerprintOf, parsePemCertificate } from '../../src/tls/certificate-info.js';
import {
  createSelfSignedDeviceCertificate,
  type DeviceCertificateOptions,
  type PemPair,
} from '../../src/tls/dev-certificates.js';
import type { FleetgateProcess } from './fleetgate-process.js';

export interface TestDevice extends PemPair {
  fingerprint: string;
}

export function newDevice(options: DeviceCertificateOptions = {}): TestDevice {
  return withFingerprint(createSelfSignedDeviceCertificate(options));
}

export function withFingerprint(pair: PemPair): TestDevice {
  return { ...pair, fingerprint: fingerprintOf(parsePemCertificate(pair.certPem)) };
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- test assertions read arbitrary JSON
  json: any;
}

/** Reads a whole undici response; `json` is set when the body parses as JSON. */
export async function readAnswer(res: Dispatcher.ResponseData): Promise<Answer> {
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

export interface FilePartSpec {
  name: string;
  filename?: string;
  content: string | Buffer;
}

/** A multipart body built by hand, so tests control every byte. */
export function buildMultipart(
  parts: FilePartSpec[],
  boundary = `----fg${crypto.randomBytes(8).toString('hex')}`,
) {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    chunks.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"; filename="${part.filename ?? `${part.name}.csv`}"\r\nContent-Type: text/plain\r\n\r\n`,
      ),
      Buffer.isBuffer(part.content) ? part.content : Buffer.from(part.content),
      Buffer.from('\r\n'),
    );
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

/**
 * An mTLS client for one device over one keep-alive connection pool (undici),
 * the way firmware with an HTTP client library would talk to the server.
 */
export class DeviceClient {
  readonly agent: Agent;

  constructor(
    private readonly server: Pick<FleetgateProcess, 'baseUrl' | 'caPem'>,
    readonly device: TestDevice | null,
    connections = 1,
  ) {
    this.agent = new Agent({
      connections,
      connect: {
        ca: server.caPem,
        servername: 'localhost',
        ...(device ? { cert: device.certPem, key: device.keyPem } : {}),
      },
    });
  }

  async send(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH',
    body?: string | Buffer | Readable,
    headers: Record<string, string> = {},
    path = '/device_endpoint',
  ): Promise<Answer> {
    const res = await request(`${this.server.baseUrl}${path}`, {
      method,
      body,
      headers,
      dispatcher: this.agent,
    });
    return readAnswer(res);
  }

  bind(psk: unknown): Promise<Answer> {
    return this.send('POST', JSON.stringify({ PSK: psk }), { 'content-type': 'application/json' });
  }

  upload(parts: FilePartSpec[]): Promise<Answer> {
    const { body, contentType } = buildMultipart(parts);
    return this.send('POST', body, { 'content-type': contentType });
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

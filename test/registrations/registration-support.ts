import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { curl, type CurlAnswer } from '../support/curl.js';
import { newDevice } from '../support/device-client.js';
import type { Fixture } from '../support/fixture.js';

/** A device's certificate and key as files, for curl. */
export interface DeviceFiles {
  name: string;
  crt: string;
  key: string;
  fingerprint: string;
  /** Last 4 hex digits of the certificate's serial number, as an owner reads them. */
  serial4: string;
}

/** The device side of the registration flow, with nothing but curl over mTLS. */
export class RegistrationCurl {
  private count = 0;
  constructor(
    private readonly fx: () => Fixture,
    private readonly dir: string,
  ) {}

  private get caFile(): string {
    const file = path.join(this.dir, 'server-ca.pem');
    if (!fs.existsSync(file)) fs.writeFileSync(file, this.fx().server.caPem);
    return file;
  }

  url(suffix = ''): string {
    return `https://localhost:${this.fx().server.port}/device_endpoint${suffix}`;
  }

  device(): DeviceFiles {
    this.count += 1;
    const name = `device-${this.count}`;
    const pair = newDevice({ commonName: name });
    const crt = path.join(this.dir, `${name}.crt`);
    const key = path.join(this.dir, `${name}.key`);
    fs.writeFileSync(crt, pair.certPem);
    fs.writeFileSync(key, pair.keyPem, { mode: 0o600 });
    const serial = new X509Certificate(pair.certPem).serialNumber;
    return { name, crt, key, fingerprint: pair.fingerprint, serial4: serial.slice(-4) };
  }

  as(device: DeviceFiles, args: string[]): Promise<CurlAnswer> {
    return curl(['--cacert', this.caFile, '--cert', device.crt, '--key', device.key, ...args]);
  }

  bind(device: DeviceFiles, psk: string): Promise<CurlAnswer> {
    const body = JSON.stringify({ PSK: psk });
    return this.as(device, ['-H', 'Content-Type: application/json', '-d', body, this.url()]);
  }

  status(
    device: DeviceFiles,
    rid: string,
  ): Promise<CurlAnswer & { headers: Record<string, string> }> {
    return this.as(device, ['-i', this.url(`/registrations/${rid}/status`)]).then(withHeaders);
  }

  complete(device: DeviceFiles, rid: string, nonce: string): Promise<CurlAnswer> {
    return this.as(device, [
      '-X',
      'PUT',
      '-H',
      'Content-Type: application/json',
      '-d',
      JSON.stringify({ nonce }),
      this.url(`/registrations/${rid}`),
    ]);
  }

  upload(device: DeviceFiles): Promise<CurlAnswer> {
    const file = path.join(this.dir, `${device.name}-points.csv`);
    fs.writeFileSync(file, '1526292559214,95\n');
    return this.as(device, ['-F', `temp=@${file};type=text/plain`, this.url()]);
  }

  /** The owner's confirmation through the admin API, with curl. */
  confirm(identity: string, pin: string, serialLast4: string): Promise<CurlAnswer> {
    return this.admin('POST', `/v1/identities/${identity}/registrations/confirm`, {
      pin,
      serialLast4,
    });
  }

  admin(method: string, route: string, body?: unknown): Promise<CurlAnswer> {
    const server = this.fx().server;
    return curl([
      '-X',
      method,
      '-H',
      `Authorization: Bearer ${server.adminToken}`,
      ...(body === undefined
        ? []
        : ['-H', 'Content-Type: application/json', '-d', JSON.stringify(body)]),
      `${server.adminUrl}${route}`,
    ]);
  }

  /** A new identity that requires confirmation, and a PSK for it (through the CLI). */
  async confirmingIdentity(name: string): Promise<string> {
    await this.ok(['identity', 'create', name, '--require-confirmation']);
    return (await this.ok(['psk', 'issue', name])).trim();
  }

  async ok(args: string[]): Promise<string> {
    const r = await this.fx().server.cli(args);
    if (r.code !== 0) throw new Error(`fleetgate ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }

  async auditActions(identity: string): Promise<Array<Record<string, unknown>>> {
    const out = await this.ok(['audit', identity, '--json', '--limit', '200']);
    return (JSON.parse(out) as { events: Array<Record<string, unknown>> }).events.reverse();
  }
}

/** `curl -i`: the status line and headers come before the body; keep the headers. */
function withHeaders(answer: CurlAnswer): CurlAnswer & { headers: Record<string, string> } {
  const cut = answer.text.indexOf('\r\n\r\n');
  const head = answer.text.slice(0, cut);
  const text = answer.text.slice(cut + 4);
  const headers: Record<string, string> = {};
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: answer.status, text, json, headers };
}

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Answer, DeviceClient } from './device-client.js';
import { unvalidatedDevice } from './openssl-certificates.js';
import { selfSignedCertificate } from './openssl-cli.js';
import type { TestDevice } from './device-client.js';

/** A device key and self-signed certificate made by the openssl CLI, as firmware tooling would. */
export function opensslKeyPair(kind: 'ec' | 'rsa', commonName = 'sensor'): TestDevice {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-rotation-'));
  try {
    selfSignedCertificate({
      keyFile: path.join(dir, 'key.pem'),
      certFile: path.join(dir, 'cert.pem'),
      subject: `/CN=${commonName}`,
      kind,
    });
    return unvalidatedDevice({
      certPem: fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8'),
      keyPem: fs.readFileSync(path.join(dir, 'key.pem'), 'utf8'),
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The documented rotation message. */
export const rotationMessage = (challenge: string, current: string, next: string) =>
  `fleetgate-rotation-v1:${challenge}:${current}:${next}`;

/** `printf '%s' "$MSG" | openssl dgst -sha256 -sign key.pem | openssl base64 -A`, for real. */
export function opensslSign(keyPem: string, message: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-sign-'));
  try {
    const keyFile = path.join(dir, 'key.pem');
    fs.writeFileSync(keyFile, keyPem, { mode: 0o600 });
    const signature = execFileSync('openssl', ['dgst', '-sha256', '-sign', keyFile], {
      input: Buffer.from(message, 'ascii'),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    return signature.toString('base64');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export const requestChallenge = (client: DeviceClient) =>
  client.send('POST', undefined, {}, '/device_endpoint/rotate/challenge');

export const submitRotation = (
  client: DeviceClient,
  body: { certificate?: string; challenge?: string; signature?: string },
) =>
  client.send(
    'POST',
    JSON.stringify(body),
    { 'content-type': 'application/json' },
    '/device_endpoint/rotate',
  );

export const completeRotation = (client: DeviceClient, completionSecret: unknown) =>
  client.send(
    'POST',
    JSON.stringify({ completionSecret }),
    { 'content-type': 'application/json' },
    '/device_endpoint/rotate/complete',
  );

/**
 * Challenge, then a proof signed with the next key by openssl: what a device
 * does to rotate. Returns the rotate answer (202 with the completion secret).
 */
export async function proveRotation(
  client: DeviceClient,
  current: TestDevice,
  next: TestDevice,
): Promise<Answer> {
  const challenge = await requestChallenge(client);
  if (challenge.status !== 200) throw new Error(`challenge: ${challenge.status} ${challenge.text}`);
  const signature = opensslSign(
    next.keyPem,
    rotationMessage(challenge.json.challenge, current.fingerprint, next.fingerprint),
  );
  return submitRotation(client, {
    certificate: next.certPem,
    challenge: challenge.json.challenge,
    signature,
  });
}

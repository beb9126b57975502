import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { TestDevice } from './device-client.js';
import { uniqueName, type Fixture } from './fixture.js';

/** The MQTT port of a fixture's server, from its log line. */
export function mqttPortOf(fx: Fixture): number {
  const match = /"mqttPort":(\d+)/.exec(fx.server.output());
  if (!match) throw new Error(`no MQTT listener in the server log:\n${fx.server.output()}`);
  return Number(match[1]);
}

/** An MQTT.js client over mTLS with the device's certificate: MQTT 3.1.1, no reconnects. */
export function connectDevice(
  fx: Fixture,
  device: Pick<TestDevice, 'certPem' | 'keyPem'>,
  options: IClientOptions = {},
): Promise<MqttClient> {
  return mqtt.connectAsync(`mqtts://localhost:${mqttPortOf(fx)}`, {
    ca: fx.server.caPem,
    cert: device.certPem,
    key: device.keyPem,
    reconnectPeriod: 0,
    protocolVersion: 4,
    connectTimeout: 10_000,
    ...options,
  });
}

/**
 * MQTT clients for a mocha suite: `connect` is connectDevice, and every client
 * it made is ended after its test.
 */
export function useMqttClients(fx: () => Fixture): {
  connect: (device: TestDevice, options?: IClientOptions) => Promise<MqttClient>;
  track: (client: MqttClient) => MqttClient;
} {
  const open: MqttClient[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.endAsync(true).catch(() => undefined)));
  });
  const track = (client: MqttClient) => (open.push(client), client);
  return {
    connect: async (device, options = {}) => track(await connectDevice(fx(), device, options)),
    track,
  };
}

/** A bound device's topics: requests, answers (RES) and its state. */
export interface DeviceTopics {
  device: TestDevice;
  identity: string;
  req: (endpoint: string) => string;
  res: (endpoint: string) => string;
  state: string;
}

export function deviceTopics(identity: string, device: TestDevice): DeviceTopics {
  return {
    device,
    identity,
    req: (endpoint) => `${identity}/req/${device.fingerprint}/${endpoint}`,
    res: (endpoint) => `${identity}/res/${device.fingerprint}/${endpoint}`,
    state: `devices/out/${identity}/${device.fingerprint}/state`,
  };
}

/** A device bound to a new identity named after `prefix`, with its topics. */
export async function boundTopics(fx: Fixture, prefix: string): Promise<DeviceTopics> {
  const identity = uniqueName(prefix);
  return deviceTopics(identity, (await fx.boundDevice(identity)).device);
}

/** Messages received by a client, taken in order by topic. */
export class Inbox {
  private readonly messages: Array<{ topic: string; payload: Buffer }> = [];
  private waiters: Array<() => void> = [];
  readonly closed: Promise<void>;

  constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload) => {
      this.messages.push({ topic, payload });
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.closed = new Promise((resolve) => client.once('close', () => resolve()));
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- RES payloads are arbitrary JSON
  async next(timeoutMs = 10_000): Promise<{ topic: string; json: any }> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length === 0) {
      if (Date.now() > deadline) throw new Error('no message in time');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const message = this.messages.shift()!;
    return { topic: message.topic, json: JSON.parse(message.payload.toString('utf8')) };
  }

  get pending(): number {
    return this.messages.length;
  }
}

/** Whether the client gets closed by the server (true) or is still open after `ms`. */
export async function closedWithin(client: MqttClient, ms: number): Promise<boolean> {
  if (!client.connected) return true;
  return Promise.race([
    new Promise<boolean>((resolve) => client.once('close', () => resolve(true))),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms)),
  ]);
}

export interface PemFiles {
  cafile: string;
  cert: string;
  key: string;
}

/** mosquitto_pub/sub's arguments to reach the fixture's server as the device, over mTLS. */
export function mosquittoTlsArgs(fx: Fixture, device: TestDevice): string[] {
  const files = pemFiles(fx, device);
  return [
    '-h',
    'localhost',
    '-p',
    String(mqttPortOf(fx)),
    '--cafile',
    files.cafile,
    '--cert',
    files.cert,
    '--key',
    files.key,
  ];
}

/** The device's certificate and key, and the server's CA, as files for mosquitto_pub/sub. */
export function pemFiles(fx: Fixture, device: TestDevice): PemFiles {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-mqtt-'));
  const files = {
    cafile: path.join(dir, 'ca.crt'),
    cert: path.join(dir, 'device.crt'),
    key: path.join(dir, 'device.key'),
  };
  fs.writeFileSync(files.cafile, fx.server.caPem);
  fs.writeFileSync(files.cert, device.certPem);
  fs.writeFileSync(files.key, device.keyPem, { mode: 0o600 });
  return files;
}

export function mosquitto(
  command: 'mosquitto_pub' | 'mosquitto_sub',
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

// --- raw MQTT 3.1.1 packets, for what a well-behaved client never sends ---

/** MQTT's variable-length "remaining length" field. */
export function remainingLength(length: number): Buffer {
  const bytes: number[] = [];
  do {
    let byte = length % 128;
    length = Math.floor(length / 128);
    if (length > 0) byte |= 0x80;
    bytes.push(byte);
  } while (length > 0);
  return Buffer.from(bytes);
}

function utf8(text: string): Buffer {
  const body = Buffer.from(text, 'utf8');
  const length = Buffer.alloc(2);
  length.writeUInt16BE(body.length);
  return Buffer.concat([length, body]);
}

/**
 * A CONNECT with clean session and keep-alive 60 s: MQTT 3.1.1 (protocol level 4),
 * or level 5 (MQTT 5, with an empty property list).
 */
export function connectPacket(clientId: string, protocolLevel: 4 | 5 = 4): Buffer {
  const flags = [protocolLevel, 0x02, 0, 60, ...(protocolLevel === 5 ? [0] : [])];
  const variable = Buffer.concat([utf8('MQTT'), Buffer.from(flags)]);
  const body = Buffer.concat([variable, utf8(clientId)]);
  return Buffer.concat([Buffer.from([0x10]), remainingLength(body.length), body]);
}

export function publishPacket(
  topic: string,
  payload: string,
  options: { qos: 0 | 1 | 2; messageId?: number; dup?: boolean },
): Buffer {
  const header = 0x30 | (options.dup ? 0x08 : 0) | (options.qos << 1);
  const id = Buffer.alloc(options.qos > 0 ? 2 : 0);
  if (options.qos > 0) id.writeUInt16BE(options.messageId ?? 1);
  const body = Buffer.concat([utf8(topic), id, Buffer.from(payload, 'utf8')]);
  return Buffer.concat([Buffer.from([header]), remainingLength(body.length), body]);
}

/** A raw TLS connection to the MQTT port, with every byte the server sends. */
export async function rawConnection(
  fx: Fixture,
  device: TestDevice,
): Promise<{ socket: tls.TLSSocket; received: () => Buffer; closed: Promise<void> }> {
  const socket = tls.connect({
    host: '127.0.0.1',
    port: mqttPortOf(fx),
    servername: 'localhost',
    ca: fx.server.caPem,
    cert: device.certPem,
    key: device.keyPem,
  });
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  return { socket, received: () => Buffer.concat(chunks), closed };
}

/** Waits until `received()` holds at least `bytes` bytes, or the connection closed. */
export async function waitForBytes(
  connection: { received: () => Buffer; closed: Promise<void> },
  bytes: number,
  timeoutMs = 10_000,
): Promise<Buffer> {
  const deadline = Date.now() + timeoutMs;
  let closed = false;
  void connection.closed.then(() => (closed = true));
  while (connection.received().length < bytes && !closed && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return connection.received();
}

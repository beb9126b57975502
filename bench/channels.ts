import mqtt, { type MqttClient } from 'mqtt';
import { request } from 'undici';
import type { FleetgateProcess } from '../test/support/fleetgate-process.js';
import { csvLines, multipartBody } from './support/bodies.js';
import type { BoundDevice } from './support/bench-server.js';
import { rate, seconds, type CpuMeter, type Row } from './support/measure.js';

export interface ChannelDevice extends BoundDevice {
  identity: string;
}

export interface ChannelOptions {
  /** Points per batch (one upload, one JSON array, one MQTT request). */
  batch: number;
  /** Batches each device sends one after the other. */
  batchesEach: number;
}

/**
 * Item 7: the same points through the three channels, each device sending
 * `batchesEach` batches of `batch` points one after the other, all devices at
 * once: multipart uploads, JSON messages (an array of one-field messages) and
 * MQTT `points` requests at QoS 1 (each awaits its PUBACK, sent after the
 * commit). The JSON and MQTT rates are given as ratios to multipart. Then
 * MQTT messages/s at QoS 1 with every device connected (200 in a full run).
 */
export async function benchChannels(
  server: FleetgateProcess,
  devices: readonly ChannelDevice[],
  manyDevices: readonly ChannelDevice[],
  options: ChannelOptions,
  meter: CpuMeter,
): Promise<Row[]> {
  const port = Number(/"mqttPort":(\d+)/.exec(server.output())?.[1]);
  if (!port) throw new Error('the bench server has no MQTT listener');
  const points = devices.length * options.batchesEach * options.batch;
  const base = Date.now() - 20 * 24 * 3600 * 1000;
  const startOf = (channel: number, b: number) =>
    base + channel * 5 * 24 * 3600 * 1000 + b * options.batch * 1000;

  const measure = async (work: () => Promise<void>) => {
    const cpu = await meter();
    const started = process.hrtime.bigint();
    await work();
    return { perSecond: points / seconds(started), cpu: await cpu() };
  };

  const multipart = await measure(() =>
    forAll(devices, async ({ client }) => {
      for (let b = 0; b < options.batchesEach; b++) {
        const { body, contentType } = multipartBody('ch', csvLines(startOf(0, b), options.batch));
        const res = await request(`${server.baseUrl}/device_endpoint`, {
          method: 'POST',
          body,
          headers: { 'content-type': contentType },
          dispatcher: client.agent,
        });
        const text = await res.body.text();
        if (res.statusCode !== 200) throw new Error(`upload: ${res.statusCode} ${text}`);
      }
    }),
  );
  const json = await measure(() =>
    forAll(devices, async ({ client }) => {
      for (let b = 0; b < options.batchesEach; b++) {
        const start = startOf(1, b);
        const messages = Array.from({ length: options.batch }, (_, i) => ({
          ts: start + i * 1000,
          data: { ch: (i % 2000) / 10 },
        }));
        const res = await request(`${server.baseUrl}/device_endpoint/messages`, {
          method: 'POST',
          body: JSON.stringify(messages),
          headers: { 'content-type': 'application/json' },
          dispatcher: client.agent,
        });
        const text = await res.body.text();
        if (res.statusCode !== 200) throw new Error(`messages: ${res.statusCode} ${text}`);
      }
    }),
  );
  const clients = await connectAll(server, port, devices);
  let mqttRate: { perSecond: number; cpu: string };
  try {
    mqttRate = await measure(() =>
      forAll(devices, async (device, i) => {
        for (let b = 0; b < options.batchesEach; b++) {
          const start = startOf(2, b);
          const pairs = Array.from({ length: options.batch }, (_, k) => [
            start + k * 1000,
            (k % 2000) / 10,
          ]);
          await clients[i]!.publishAsync(
            `${device.identity}/req/${device.device.fingerprint}/points`,
            JSON.stringify({ id: b, data: { series: 'ch', points: pairs } }),
            { qos: 1 },
          );
        }
      }),
    );
  } finally {
    await Promise.all(clients.map((c) => c.endAsync(true)));
  }

  const many = await connectAll(server, port, manyDevices);
  const messagesEach = options.batchesEach * 2;
  let manyRate: { perSecond: number; cpu: string };
  try {
    const cpu = await meter();
    const started = process.hrtime.bigint();
    await forAll(manyDevices, async (device, i) => {
      for (let m = 0; m < messagesEach; m++) {
        await many[i]!.publishAsync(
          `${device.identity}/req/${device.device.fingerprint}/messages`,
          JSON.stringify({ id: m, data: { ts: startOf(3, m), data: { many: m } } }),
          { qos: 1 },
        );
      }
    });
    manyRate = {
      perSecond: (manyDevices.length * messagesEach) / seconds(started),
      cpu: await cpu(),
    };
  } finally {
    await Promise.all(many.map((c) => c.endAsync(true)));
  }

  const size = `${devices.length} devices x ${options.batchesEach} x ${options.batch} pts`;
  const ratio = (r: number) => `${(r / multipart.perSecond).toFixed(2)} x multipart`;
  return [
    {
      item: '7 channels',
      measure: `multipart points/s, ${size}`,
      value: rate(multipart.perSecond),
      cpu: multipart.cpu,
    },
    {
      item: '7 channels',
      measure: `JSON messages points/s, ${size}`,
      value: rate(json.perSecond),
      ratio: ratio(json.perSecond),
      cpu: json.cpu,
    },
    {
      item: '7 channels',
      measure: `MQTT QoS 1 points/s, ${size}`,
      value: rate(mqttRate.perSecond),
      ratio: ratio(mqttRate.perSecond),
      cpu: mqttRate.cpu,
    },
    {
      item: '7 channels',
      measure: `MQTT QoS 1 messages/s, ${manyDevices.length} devices connected x ${messagesEach}`,
      value: rate(manyRate.perSecond),
      cpu: manyRate.cpu,
    },
  ];
}

async function forAll<T>(items: readonly T[], work: (item: T, i: number) => Promise<void>) {
  await Promise.all(items.map((item, i) => work(item, i)));
}

async function connectAll(
  server: FleetgateProcess,
  port: number,
  devices: readonly ChannelDevice[],
): Promise<MqttClient[]> {
  const clients: MqttClient[] = [];
  try {
    for (let i = 0; i < devices.length; i += 20) {
      clients.push(
        ...(await Promise.all(
          devices.slice(i, i + 20).map(({ device }) =>
            mqtt.connectAsync(`mqtts://localhost:${port}`, {
              ca: server.caPem,
              cert: device.certPem,
              key: device.keyPem,
              reconnectPeriod: 0,
              protocolVersion: 4,
            }),
          ),
        )),
      );
    }
    return clients;
  } catch (err) {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    throw err;
  }
}

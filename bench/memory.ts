import { request } from 'undici';
import { streamedUpload } from './support/bodies.js';
import type { BoundDevice } from './support/bench-server.js';
import {
  mb,
  peakRss,
  rate,
  seconds,
  statusField,
  type CpuMeter,
  type Row,
} from './support/measure.js';

async function streamUpload(device: BoundDevice, baseUrl: string, bytes: number, startMs: number) {
  const upload = streamedUpload('stream', bytes, startMs);
  const res = await request(`${baseUrl}/device_endpoint`, {
    method: 'POST',
    body: upload.stream,
    headers: { 'content-type': upload.contentType },
    dispatcher: device.client.agent,
  });
  const answer = (await res.body.json()) as { stored?: number; duplicates?: number };
  if (res.statusCode !== 200) throw new Error(`streamed upload: ${JSON.stringify(answer)}`);
  if (answer.stored !== upload.points()) {
    throw new Error(`streamed upload of ${upload.points()} points: ${JSON.stringify(answer)}`);
  }
  return upload.points();
}

/**
 * Item 4: peak resident memory of the server process during one upload of
 * `bigBytes`, then during `devices.length` concurrent uploads of `eachBytes`,
 * both generated while sent.
 */
export async function benchMemory(
  pid: number,
  devices: readonly BoundDevice[],
  baseUrl: string,
  options: { bigBytes: number; eachBytes: number },
  meter: CpuMeter,
): Promise<Row[]> {
  const base = Date.UTC(2025, 0, 1);
  const atRest = statusField(pid, 'VmRSS');
  let cpu = await meter();
  let started = process.hrtime.bigint();
  const [bigPoints, bigPeak] = await peakRss(pid, () =>
    streamUpload(devices[0]!, baseUrl, options.bigBytes, base),
  );
  const bigRate = bigPoints / seconds(started);
  const bigCpu = await cpu();
  cpu = await meter();
  started = process.hrtime.bigint();
  const [manyPoints, manyPeak] = await peakRss(pid, async () => {
    const counts = await Promise.all(
      // After the big upload's range (under 1e9 ms even at full size), 1e8 ms per device.
      devices.map((d, i) => streamUpload(d, baseUrl, options.eachBytes, base + 1e10 + i * 1e8)),
    );
    return counts.reduce((a, b) => a + b, 0);
  });
  const manyRate = manyPoints / seconds(started);
  const manyCpu = await cpu();
  return [
    {
      item: '4 memory',
      measure: `peak RSS, one ${mb(options.bigBytes)} upload (${rate(bigRate)} pts/s; ${mb(atRest)} at rest before)`,
      value: mb(bigPeak),
      target: '< 150 MB',
      cpu: bigCpu,
    },
    {
      item: '4 memory',
      measure: `peak RSS, ${devices.length} x ${mb(options.eachBytes)} at once (${rate(manyRate)} pts/s)`,
      value: mb(manyPeak),
      target: '< 300 MB',
      cpu: manyCpu,
    },
  ];
}

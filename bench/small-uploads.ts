import { request } from 'undici';
import { csvLines, multipartBody } from './support/bodies.js';
import type { BoundDevice } from './support/bench-server.js';
import { percentile, rate, seconds, type CpuMeter, type Row } from './support/measure.js';

/**
 * Item 2: every device sends `uploadsEach` files of 100 points one after the
 * other over its own keep-alive connection, all devices at once.
 */
export async function benchSmallUploads(
  devices: readonly BoundDevice[],
  baseUrl: string,
  uploadsEach: number,
  meter: CpuMeter,
): Promise<Row[]> {
  const latencies: number[] = [];
  const startMs = Date.now() - 10 * 24 * 3600 * 1000;
  const cpu = await meter();
  const started = process.hrtime.bigint();
  await Promise.all(
    devices.map(async ({ client }) => {
      for (let u = 0; u < uploadsEach; u++) {
        const { body, contentType } = multipartBody('small', csvLines(startMs + u * 100_000, 100));
        const sent = process.hrtime.bigint();
        const res = await request(`${baseUrl}/device_endpoint`, {
          method: 'POST',
          body,
          headers: { 'content-type': contentType },
          dispatcher: client.agent,
        });
        const text = await res.body.text();
        if (res.statusCode !== 200) throw new Error(`small upload: ${res.statusCode} ${text}`);
        latencies.push(seconds(sent) * 1000);
      }
    }),
  );
  const elapsed = seconds(started);
  const cpuSplit = await cpu();
  latencies.sort((a, b) => a - b);
  const p50 = percentile(latencies, 50);
  const p99 = percentile(latencies, 99);
  return [
    {
      item: '2 small uploads',
      measure: `uploads/s, ${devices.length} devices x ${uploadsEach} x 100 pts, keep-alive`,
      value: rate(latencies.length / elapsed),
      cpu: cpuSplit,
    },
    {
      item: '2 small uploads',
      measure: 'latency p50 / p99',
      value: `${p50.toFixed(1)} / ${p99.toFixed(1)} ms`,
      target: 'p99 < 50 ms',
    },
  ];
}

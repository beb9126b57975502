import { request } from 'undici';
import { csvLines, multipartBody } from './support/bodies.js';
import { pgbenchSmallInserts } from './pgbench-reference.js';
import type { BenchDatabase, BoundDevice } from './support/bench-server.js';
import { percentile, rate, seconds, type CpuMeter, type Row } from './support/measure.js';

/**
 * Item 2: every device sends `uploadsEach` files of 100 points one after the
 * other over its own keep-alive connection, all devices at once; then
 * `pgbench` with as many clients doing the same as transactions of plain SQL
 * (see pgbench-reference.ts), in the same database, right after.
 */
export async function benchSmallUploads(
  db: BenchDatabase,
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
  const ours = latencies.length / elapsed;
  const reference = await pgbenchSmallInserts(db, {
    clients: devices.length,
    transactionsEach: uploadsEach,
    rowsPerTransaction: 100,
    startMs,
  });
  latencies.sort((a, b) => a - b);
  const p50 = percentile(latencies, 50);
  const p99 = percentile(latencies, 99);
  return [
    {
      item: '2 small uploads',
      measure: `uploads/s, ${devices.length} devices x ${uploadsEach} x 100 pts, keep-alive`,
      value: rate(ours),
      reference: `${rate(reference.tps)} tx/s (pgbench, 100-row insert on conflict do nothing)`,
      ratio: (ours / reference.tps).toFixed(2),
      target: '>= 0.4',
      cpu: cpuSplit,
    },
    {
      item: '2 small uploads',
      measure: 'latency p50 / p99',
      value: `${p50.toFixed(1)} / ${p99.toFixed(1)} ms`,
      reference: `${reference.latencyMs.toFixed(1)} ms average (pgbench)`,
      target: 'p99 < 50 ms',
    },
  ];
}

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { multipartBody, csvLines } from './support/bodies.js';
import { withClient, type BenchDatabase, type BoundDevice } from './support/bench-server.js';
import { inParallel, rate, seconds, type CpuMeter, type Row } from './support/measure.js';

export interface BulkOptions {
  points: number;
  pointsPerFile: number;
  devices: number;
}

/**
 * Item 1: `points` in files of `pointsPerFile` from `devices` devices at once
 * over keep-alive mTLS, against `psql \copy` of the same rows, sorted by key,
 * into a table of the same shape and primary key in the same database.
 */
export async function benchBulkIngest(
  db: BenchDatabase,
  devices: readonly BoundDevice[],
  baseUrl: string,
  options: BulkOptions,
  meter: CpuMeter,
): Promise<Row[]> {
  const files = options.points / options.pointsPerFile;
  const startMs = Date.now() - 30 * 24 * 3600 * 1000;
  // File k goes to device k % devices, as its (k / devices)-th consecutive block.
  const uploads = Array.from({ length: files }, (_, k) => {
    const device = k % options.devices;
    const block = Math.floor(k / options.devices);
    const from = startMs + block * options.pointsPerFile * 1000;
    return { device, from, body: multipartBody('bulk', csvLines(from, options.pointsPerFile)) };
  });

  let stored = 0;
  const cpu = await meter();
  const started = process.hrtime.bigint();
  await inParallel(
    Array.from({ length: options.devices }, (_, d) => d),
    options.devices,
    async (d) => {
      for (const upload of uploads.filter((u) => u.device === d)) {
        const res = await request(`${baseUrl}/device_endpoint`, {
          method: 'POST',
          body: upload.body.body,
          headers: { 'content-type': upload.body.contentType },
          dispatcher: devices[d]!.client.agent,
        });
        const answer = (await res.body.json()) as { stored?: number };
        if (res.statusCode !== 200) throw new Error(`bulk upload: ${JSON.stringify(answer)}`);
        stored += answer.stored ?? 0;
      }
    },
  );
  const ours = stored / seconds(started);
  const cpuSplit = await cpu();
  if (stored !== options.points) throw new Error(`stored ${stored} of ${options.points} points`);

  const reference = await psqlCopyRate(db, uploads, options);
  return [
    {
      item: '1 bulk ingest',
      measure: `points/s, ${options.points / 1000}k pts, ${options.pointsPerFile / 1000}k/file, ${options.devices} devices`,
      value: rate(ours),
      reference: `${rate(reference)} (psql \\copy)`,
      ratio: (ours / reference).toFixed(2),
      target: '>= 0.6',
      cpu: cpuSplit,
    },
  ];
}

async function psqlCopyRate(
  db: BenchDatabase,
  uploads: ReadonlyArray<{ device: number; from: number }>,
  options: BulkOptions,
): Promise<number> {
  const file = path.join(db.workDir, 'copy.csv');
  const out = fs.openSync(file, 'w');
  const sorted = [...uploads].sort((a, b) => a.device - b.device || a.from - b.from);
  for (const upload of sorted) {
    let chunk = '';
    for (let i = 0; i < options.pointsPerFile; i++) {
      const ts = new Date(upload.from + i * 1000).toISOString();
      chunk += `${upload.device + 1},${ts},${(i % 2000) / 10}\n`;
    }
    fs.writeSync(out, chunk);
  }
  fs.closeSync(out);
  await withClient(db.url, (c) =>
    c.query(`create table copy_reference (
      series_id integer not null, ts timestamptz not null, value double precision not null,
      primary key (series_id, ts))`),
  );
  const started = process.hrtime.bigint();
  const result = spawnSync(
    'psql',
    [db.url, '-v', 'ON_ERROR_STOP=1', '-qc', `\\copy copy_reference from '${file}' (format csv)`],
    {
      encoding: 'utf8',
    },
  );
  const elapsed = seconds(started);
  if (result.status !== 0) throw new Error(`psql \\copy failed: ${result.stderr}`);
  fs.rmSync(file);
  return options.points / elapsed;
}

import { request } from 'undici';
import { csvLines, multipartBody } from './support/bodies.js';
import {
  bindDevices,
  createBenchDatabase,
  startBenchServer,
  withClient,
  type BoundDevice,
} from './support/bench-server.js';
import { inParallel, percentile, printTable, rate, seconds, type Row } from './support/measure.js';

/**
 * `npm run bench:scale [-- --steps 0,10M,100M] [--points 1000000] [--drop]`:
 * item 5, ingest rate and one-day query time of one series as the table grows.
 * Filler points go straight in with SQL (1000 series, one point every five
 * minutes each, the oldest a year ago), so 100M points span about a year of
 * monthly partitions. The database (`--db`, default `fleetgate_bench_scale`)
 * is kept between runs: a later run resumes filling where the last one
 * stopped. `--drop` removes it at the end. Each step checkpoints first (the
 * fill writes gigabytes of WAL) and ingests three times; the median counts.
 */
const FILLER_SERIES = 1000;
const FILLER_STEP_MS = 5 * 60 * 1000;
const FILL_CHUNK = 5_000_000;
const DAY_MS = 24 * 3600 * 1000;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const count = (text: string) => Number(text.replace(/M$/i, 'e6').replace(/k$/i, 'e3'));

async function main() {
  const steps = arg('steps', '0,10M,100M').split(',').map(count);
  const ingestPoints = count(arg('points', '1M'));
  const db = await createBenchDatabase(arg('db', 'fleetgate_bench_scale'));
  const server = await startBenchServer(db);
  let devices: BoundDevice[] = [];
  const rows: Row[] = [];
  try {
    devices = await bindDevices(server, 8, `scale-${Date.now()}`);
    const fillStart = await fillOrigin(db.url);
    let baseline = 0;
    for (const target of steps) {
      process.stderr.write(`${new Date().toISOString()} filling to ${target} points\n`);
      const stored = await fillTo(db.url, target, fillStart);
      const runs: number[] = [];
      for (let run = 0; run < 3; run++) {
        runs.push(await ingest(devices, server.baseUrl, ingestPoints, `${target}-${run}`));
      }
      const pointsPerSecond = runs.sort((a, b) => a - b)[1]!;
      baseline ||= pointsPerSecond;
      const [p50, max] = await oneDayQuery(db.url, stored, fillStart);
      rows.push({
        item: '5 growth',
        measure: `${stored / 1e6}M filler points stored: ingest pts/s | one-day query p50 / max`,
        value: `${rate(pointsPerSecond)} | ${p50} / ${max}`,
        ratio: (pointsPerSecond / baseline).toFixed(2),
        target: 'ratio >= 0.8, query < 50 ms',
      });
    }
    printTable(`fleetgate growth benchmark: ${ingestPoints} points ingested per step`, rows);
  } finally {
    await Promise.all(devices.map((d) => d.client.close()));
    await server.stop();
    if (process.argv.includes('--drop')) await db.drop();
  }
}

/** Filler state lives in the database, so an interrupted run resumes. */
async function fillOrigin(url: string): Promise<number> {
  return withClient(url, async (c) => {
    await c.query(
      `create table if not exists bench_fill (origin_ms bigint not null, filled bigint not null)`,
    );
    const found = await c.query<{ origin_ms: string }>('select origin_ms from bench_fill');
    if (found.rows[0]) return Number(found.rows[0].origin_ms);
    const origin = Date.now() - 365 * DAY_MS;
    await c.query('insert into bench_fill values ($1, 0)', [origin]);
    return origin;
  });
}

async function fillTo(url: string, target: number, origin: number): Promise<number> {
  return withClient(url, async (c) => {
    let filled = Number(
      (await c.query<{ filled: string }>('select filled from bench_fill')).rows[0]!.filled,
    );
    const endMs = origin + Math.ceil(target / FILLER_SERIES) * FILLER_STEP_MS;
    for (let month = origin; month <= endMs + 31 * DAY_MS; month += 28 * DAY_MS) {
      await c.query('select points_ensure_partition($1::date)', [
        new Date(month).toISOString().slice(0, 10),
      ]);
    }
    while (filled < target) {
      const to = Math.min(target, filled + FILL_CHUNK);
      const started = process.hrtime.bigint();
      await c.query('begin');
      await c.query(
        `insert into points (series_id, ts, value)
         select 1000000 + i % ${FILLER_SERIES},
                timestamptz 'epoch' + ($1::bigint + (i / ${FILLER_SERIES}) * ${FILLER_STEP_MS}) * interval '1 millisecond',
                (i % 997)::float8
         from generate_series($2::bigint, $3::bigint - 1) as i`,
        [origin, filled, to],
      );
      await c.query('update bench_fill set filled = $1', [to]);
      await c.query('commit');
      process.stderr.write(`  filled ${to} (${rate((to - filled) / seconds(started))} rows/s)\n`);
      filled = to;
    }
    await c.query('analyze points');
    await c.query('checkpoint');
    return filled;
  });
}

/** `points` in files of 100k from the 8 devices at once, into a series new to this step. */
async function ingest(devices: BoundDevice[], baseUrl: string, points: number, step: string) {
  const perFile = Math.min(100_000, points / devices.length);
  const files = Array.from({ length: points / perFile }, (_, k) => k);
  const startMs = Date.now() - 2 * DAY_MS;
  let stored = 0;
  const started = process.hrtime.bigint();
  await inParallel(files, devices.length, async (k) => {
    const device = devices[k % devices.length]!;
    const from = startMs + Math.floor(k / devices.length) * perFile * 100;
    const { body, contentType } = multipartBody(`scale-${step}`, csvLines(from, perFile, 100));
    const res = await request(`${baseUrl}/device_endpoint`, {
      method: 'POST',
      body,
      headers: { 'content-type': contentType },
      dispatcher: device.client.agent,
    });
    const answer = (await res.body.json()) as { stored?: number };
    if (res.statusCode !== 200) throw new Error(JSON.stringify(answer));
    stored += answer.stored ?? 0;
  });
  return stored / seconds(started);
}

/** 20 one-day reads of one filler series (about 288 points each), in ms. */
async function oneDayQuery(url: string, filled: number, origin: number): Promise<[string, string]> {
  const days = Math.floor((Math.ceil(filled / FILLER_SERIES) * FILLER_STEP_MS) / DAY_MS);
  if (days < 1) return ['-', '-'];
  return withClient(url, async (c) => {
    const times: number[] = [];
    for (let q = 0; q < 20; q++) {
      const day = origin + ((q * 7919) % days) * DAY_MS;
      const started = process.hrtime.bigint();
      const result = await c.query(
        `select ts, value from points
         where series_id = $1 and ts >= to_timestamp($2 / 1000.0) and ts < to_timestamp($2 / 1000.0) + interval '1 day'
         order by ts`,
        [1000000 + (q % FILLER_SERIES), day],
      );
      times.push(seconds(started) * 1000);
      if (result.rowCount === 0) throw new Error('one-day query found nothing');
    }
    times.sort((a, b) => a - b);
    return [`${percentile(times, 50).toFixed(1)} ms`, `${times[times.length - 1]!.toFixed(1)} ms`];
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`benchmark failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});

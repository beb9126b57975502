import { Readable } from 'node:stream';
import { parse } from 'csv-parse';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { PinnedClient } from '../src/db/pinned-client.js';
import { migrateToLatest } from '../src/db/migrate.js';
import type { Database } from '../src/db/schema.js';
import { copyIngest } from '../src/ingest/copy-upload.js';
import { PointPartitions } from '../src/ingest/partition-months.js';
import { parsePointRecord } from '../src/ingest/point-line.js';
import { PointScanner } from '../src/ingest/point-scanner.js';
import { insertPointBatch } from '../src/ingest/points.repository.js';
import { csvLines } from './support/bodies.js';
import { createBenchDatabase } from './support/bench-server.js';
import { printTable, rate, seconds, type Row } from './support/measure.js';

/**
 * `npm run bench:write-path`: the candidates for getting parsed points into
 * Postgres, measured without HTTP on one connection, one transaction each,
 * plus the two line parsers alone. This is how the write path was chosen.
 */
const POINTS = process.argv.includes('--quick') ? 200_000 : 1_000_000;
const RANGE = { minEpochMs: 0, maxEpochMs: 4e12 };

async function main() {
  const db = await createBenchDatabase();
  const pool = new pg.Pool({ connectionString: db.url, max: 2 });
  const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const rows: Row[] = [];
  try {
    await migrateToLatest(kysely as never);
    const csv = Buffer.from(csvLines(Date.UTC(2025, 0, 1), POINTS));
    const chunks = Array.from({ length: Math.ceil(csv.length / 65536) }, (_, i) =>
      csv.subarray(i * 65536, (i + 1) * 65536),
    );
    const parsed = await timeParsers(chunks, rows);
    const partitions = new PointPartitions();
    let series = 0;
    for (const batch of [5_000, 50_000]) {
      rows.push(await timeUnnest(pool, ++series, parsed, batch, partitions, kysely));
    }
    const backend = copyIngest(pool, partitions);
    const started = process.hrtime.bigint();
    const trx = await backend.begin(0);
    const writer = trx.seriesWriter(++series);
    for (let i = 0; i < parsed.epochMs.length; i++) {
      writer.add(parsed.epochMs[i]!, parsed.values[i]!);
      if (i % 3000 === 0) await writer.flushIfFull();
    }
    await writer.finish();
    await trx.commit();
    rows.push({
      item: 'write',
      measure:
        'COPY binary into temp staging + INSERT ... SELECT (ON CONFLICT only on a violation)',
      value: `${rate(POINTS / seconds(started))} pts/s`,
    });
    printTable(`write path candidates, ${POINTS} points, one series, one transaction`, rows);
  } finally {
    await kysely.destroy();
    await db.drop();
  }
}

async function timeParsers(chunks: Buffer[], rows: Row[]) {
  const epochMs: number[] = [];
  const values: number[] = [];
  let started = process.hrtime.bigint();
  const scanner = new PointScanner('p', { maxLineBytes: 1024, timestampRange: RANGE }, (t, v) => {
    epochMs.push(t);
    values.push(v);
  });
  for (const chunk of chunks) scanner.push(chunk);
  scanner.end();
  rows.push({
    item: 'parse',
    measure: 'PointScanner (bytes, fast path)',
    value: `${rate(POINTS / seconds(started))} lines/s`,
  });
  started = process.hrtime.bigint();
  const parser = Readable.from(chunks).pipe(
    parse({ bom: true, trim: true, skip_empty_lines: true, relax_column_count: true, info: true }),
  );
  let count = 0;
  for await (const { record } of parser as AsyncIterable<{ record: string[] }>) {
    if (typeof parsePointRecord(record, RANGE) !== 'string') count++;
  }
  if (count !== POINTS) throw new Error('csv-parse lost lines');
  rows.push({
    item: 'parse',
    measure: 'csv-parse + point-line.ts (the old reader)',
    value: `${rate(POINTS / seconds(started))} lines/s`,
  });
  return { epochMs, values };
}

async function timeUnnest(
  pool: pg.Pool,
  seriesId: number,
  points: { epochMs: number[]; values: number[] },
  batch: number,
  partitions: PointPartitions,
  ddl: Kysely<Database>,
): Promise<Row> {
  await partitions.createAhead(ddl, Date.UTC(2025, 0, 1), 1);
  const pinned = new PinnedClient(await pool.connect());
  const started = process.hrtime.bigint();
  await pinned.begin();
  for (let i = 0; i < points.epochMs.length; i += batch) {
    await insertPointBatch(
      pinned.db,
      0, // device_id: this bench writes series of no device (points has no foreign key)
      seriesId,
      points.epochMs.slice(i, i + batch),
      points.values.slice(i, i + batch),
    );
  }
  await pinned.commit();
  return {
    item: 'write',
    measure: `INSERT ... SELECT FROM unnest(bigint[], float8[]) ON CONFLICT, batches of ${batch}`,
    value: `${rate(points.epochMs.length / seconds(started))} pts/s`,
  };
}

main().catch((err: unknown) => {
  process.stderr.write(`benchmark failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});

import { request } from 'undici';
import {
  bindDevices,
  createBenchDatabase,
  startBenchServer,
  withClient,
} from './support/bench-server.js';
import { printTable, type Row } from './support/measure.js';

/**
 * `npm run build && DATABASE_URL=... node dist/bench/series-list.js [--series N] [--months M]`:
 * how long the admin API takes to list the series of one device with many
 * series (default 3,000 of 100 points each) spread over many month
 * partitions (default 120 months, 2016 to 2025), the worst case an accepted
 * upload can build. Rows are written with SQL, not uploads, so that only the
 * listing is measured. Prints the median of 5 requests for the first page (the
 * default page size) and for walking every page.
 */
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const SERIES = arg('--series', 3000);
const MONTHS = arg('--months', 120);
const POINTS = 100;

async function main() {
  const db = await createBenchDatabase();
  const server = await startBenchServer(db);
  try {
    const [bound] = await bindDevices(server, 1);
    const fingerprint = bound!.device.fingerprint;
    await withClient(db.url, async (c) => {
      await c.query(
        `select points_ensure_partition((date '2016-01-01' + n * interval '1 month')::date)
         from generate_series(0, $1 - 1) n`,
        [MONTHS],
      );
      const device = await c.query<{ device_id: number }>(
        'select device_id from device_certificates where fingerprint = $1',
        [fingerprint],
      );
      const deviceId = device.rows[0]!.device_id;
      await c.query(
        `insert into series (device_id, name)
         select $1, 'sensor_' || lpad(n::text, 5, '0') from generate_series(1, $2) n`,
        [deviceId, SERIES],
      );
      // Each series' points spread over all months: first and last are in different partitions.
      await c.query(
        `insert into points (series_id, ts, value)
         select s.id, timestamptz '2016-01-01' + (i * $3 / $2) * interval '1 month' + i * interval '1 second', i
         from series s cross join generate_series(0, $2 - 1) i
         where s.device_id = $1`,
        [deviceId, POINTS, MONTHS],
      );
      await c.query('analyze');
    });
    const base = `${server.adminUrl}/v1/devices/${fingerprint}/series`;
    const get = async (url: string) => {
      const res = await request(url, { headers: { authorization: `Bearer ${server.adminToken}` } });
      const body = (await res.body.json()) as { series: unknown[]; nextCursor?: string | null };
      if (res.statusCode !== 200) throw new Error(`${res.statusCode} ${JSON.stringify(body)}`);
      return body;
    };
    const timed = async (work: () => Promise<number>) => {
      const runs: Array<[number, number]> = [];
      for (let i = 0; i < 5; i++) {
        const started = performance.now();
        const count = await work();
        runs.push([performance.now() - started, count]);
      }
      runs.sort((a, b) => a[0] - b[0]);
      return runs[2]!;
    };
    const [firstMs, firstCount] = await timed(async () => (await get(base)).series.length);
    const [allMs, allCount] = await timed(async () => {
      let count = 0;
      let cursor: string | null | undefined = null;
      do {
        const page = await get(cursor ? `${base}?cursor=${encodeURIComponent(cursor)}` : base);
        count += page.series.length;
        cursor = page.nextCursor;
      } while (cursor);
      return count;
    });
    const rows: Row[] = [
      {
        item: 'GET /series',
        measure: `first page (${firstCount} series)`,
        value: `${firstMs.toFixed(1)} ms`,
      },
      {
        item: 'GET /series',
        measure: `every page (${allCount} series)`,
        value: `${allMs.toFixed(1)} ms`,
      },
    ];
    printTable(
      `series list, one device, ${SERIES} series x ${POINTS} points over ${MONTHS} month partitions (median of 5)`,
      rows,
    );
  } finally {
    await server.stop();
    await db.drop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

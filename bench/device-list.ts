import fs from 'node:fs';
import { request } from 'undici';
import type { FleetgateProcess } from '../test/support/fleetgate-process.js';
import { launchChromium, signIn } from '../test/support/chromium.js';
import { withClient, type BenchDatabase } from './support/bench-server.js';
import type { Row } from './support/measure.js';

export interface DeviceListOptions {
  /** Devices inserted with SQL (100,000 in a full run). */
  devices: number;
  /** Repetitions of each measurement; the median counts. */
  runs: number;
}

/** The two identities the devices are spread over: one device in 1,000 is the small one's. */
const BIG = 'bench-fleet-big';
const SMALL = 'bench-fleet-small';

/**
 * Item 8 (issue 14): the admin API's device pages and the dashboard's Devices
 * page with a large fleet. The devices are inserted with one SQL statement per
 * table (identities, a PSK, devices, certificates, states): binding 100,000
 * real certificates would take an hour and measure something else. One device
 * in 10 is revoked, one in 2 has a last state. Then, median of `runs`:
 * the first page and a deep keyset page (near the end) of every device, of
 * the revoked ones, and of one identity's; one device; the dashboard's Devices
 * page loaded in headless chromium until its 50 rows are drawn. The query
 * plans (EXPLAIN ANALYZE) of the deep pages are printed after the table.
 */
export async function benchDeviceList(
  db: BenchDatabase,
  server: FleetgateProcess,
  options: DeviceListOptions,
): Promise<{ rows: Row[]; plans: string }> {
  const inserted = await insertDevices(db, options.devices);
  const get = async (path: string) => {
    const res = await request(`${server.adminUrl}${path}`, {
      headers: { authorization: `Bearer ${server.adminToken}` },
    });
    const body = (await res.body.json()) as { devices?: unknown[]; nextCursor?: string | null };
    if (res.statusCode !== 200)
      throw new Error(`${path}: ${res.statusCode} ${JSON.stringify(body)}`);
    return body;
  };
  const median = async (work: () => Promise<number>) => {
    const runs: Array<[number, number]> = [];
    for (let i = 0; i < options.runs; i++) {
      const started = performance.now();
      const count = await work();
      runs.push([performance.now() - started, count]);
    }
    runs.sort((a, b) => a[0] - b[0]);
    return runs[Math.floor(runs.length / 2)]!;
  };
  const page = (path: string) => async () => (await get(path)).devices!.length;
  const deep = inserted.deepCursor;
  const measured: Array<[string, string]> = [
    ['all devices, first page', '/v1/devices?limit=50'],
    ['all devices, deep page (cursor near the end)', `/v1/devices?limit=50&cursor=${deep}`],
    ['revoked devices, first page', '/v1/devices?limit=50&status=revoked'],
    ['revoked devices, deep page', `/v1/devices?limit=50&status=revoked&cursor=${deep}`],
    [`one identity (999 devices in 1,000), first page`, `/v1/identities/${BIG}/devices?limit=50`],
    [
      `one identity (999 devices in 1,000), deep page`,
      `/v1/identities/${BIG}/devices?limit=50&cursor=${deep}`,
    ],
    [`one identity (1 device in 1,000), first page`, `/v1/identities/${SMALL}/devices?limit=50`],
    [
      `one identity (1 device in 1,000), deep page`,
      `/v1/identities/${SMALL}/devices?limit=50&cursor=${deep}`,
    ],
    ['one device (GET /v1/devices/{fingerprint})', `/v1/devices/${inserted.deepFingerprint}`],
  ];
  const label = `${options.devices.toLocaleString('en-US')} devices`;
  const rows: Row[] = [];
  for (const [what, path] of measured) {
    const one = path.startsWith('/v1/devices/');
    const [ms, count] = await median(one ? async () => (await get(path), 1) : page(path));
    rows.push({
      item: '8 device list',
      measure: `${label}: ${what}${one ? '' : `, ${count} rows`}`,
      value: `${ms.toFixed(1)} ms`,
    });
  }
  rows.push(...(await dashboardLoads(server, inserted.deepFingerprint, label, options.runs)));
  const plans = await explainPages(db, deep, inserted.smallIdentityId, inserted.bigIdentityId);
  return { rows, plans };
}

interface Inserted {
  /** A device id near the end of the fleet, as a page cursor. */
  deepCursor: number;
  deepFingerprint: string;
  smallIdentityId: number;
  bigIdentityId: number;
}

async function insertDevices(db: BenchDatabase, count: number): Promise<Inserted> {
  return withClient(db.url, async (c) => {
    await c.query('begin');
    const identities = await c.query<{ id: number; name: string }>(
      `insert into identities (name) values ($1), ($2) returning id, name`,
      [BIG, SMALL],
    );
    const idOf = (name: string) => identities.rows.find((r) => r.name === name)!.id;
    const psks = await c.query<{ id: number; identity_id: number }>(
      `insert into psks (identity_id, secret_hash, prefix)
       select id, sha256(convert_to(name || '-bench-psk', 'UTF8')), 'fgpsk_bench' from identities
       where id = any($1) returning id, identity_id`,
      [[idOf(BIG), idOf(SMALL)]],
    );
    const pskOf = (identityId: number) => psks.rows.find((r) => r.identity_id === identityId)!.id;
    const first = await c.query<{ id: number }>(
      `insert into devices (identity_id, psk_id, bound_at, bound_from, last_seen_at, revoked_at, revoked_reason)
       select case when n % 1000 = 0 then $2::int else $1::int end,
              case when n % 1000 = 0 then $4::int else $3::int end,
              now() - interval '30 days' + n * interval '1 second', '10.0.0.1',
              now() - (n % 3600) * interval '1 second',
              case when n % 10 = 3 then now() end,
              case when n % 10 = 3 then 'bench' end
       from generate_series(1, $5) n
       returning id`,
      [idOf(BIG), idOf(SMALL), pskOf(idOf(BIG)), pskOf(idOf(SMALL)), count],
    );
    const lowest = first.rows.reduce((min, r) => Math.min(min, r.id), Infinity);
    await c.query(
      `insert into device_certificates
         (fingerprint, device_id, subject, issuer, serial_number, not_before, not_after, activated_at)
       select encode(sha256(convert_to('bench-device-' || d.id, 'UTF8')), 'hex'), d.id,
              'CN=bench-device-' || d.id, 'CN=bench-device-' || d.id, to_hex(d.id),
              now() - interval '1 day', now() + interval '3650 days', d.bound_at
       from devices d where d.id >= $1`,
      [lowest],
    );
    await c.query(
      `insert into device_states (device_id, status, state, reported_at)
       select d.id, 'online', jsonb_build_object('status', 'online', 'rssi', -40 - d.id % 50, 'fw', '1.2.3'),
              now() - (d.id % 600) * interval '1 second'
       from devices d where d.id >= $1 and d.id % 2 = 0`,
      [lowest],
    );
    await c.query('commit');
    await c.query('analyze');
    const deepCursor = lowest + Math.floor(count * 0.99);
    const fp = await c.query<{ fingerprint: string }>(
      `select fingerprint from device_certificates where device_id = $1`,
      [deepCursor + 2],
    );
    return {
      deepCursor,
      deepFingerprint: fp.rows[0]!.fingerprint,
      smallIdentityId: idOf(SMALL),
      bigIdentityId: idOf(BIG),
    };
  });
}

/** The dashboard in headless chromium: a full load (assets, session, API) until the rows are drawn. */
async function dashboardLoads(
  server: FleetgateProcess,
  fingerprint: string,
  label: string,
  runs: number,
): Promise<Row[]> {
  const { context, dir } = await launchChromium();
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    await signIn(page, server.adminUrl, server.adminToken);
    const load = async (hash: string, ready: string) => {
      const times: number[] = [];
      for (let i = 0; i < runs; i++) {
        await page.goto('about:blank');
        const started = performance.now();
        await page.goto(`${server.adminUrl}/${hash}`);
        await page.waitForSelector(ready);
        times.push(performance.now() - started);
      }
      times.sort((a, b) => a - b);
      return times[Math.floor(times.length / 2)]!;
    };
    const list = await load('#/devices', 'table tbody tr:nth-child(50) a.device');
    const rowsShown = await page.locator('a.device').count();
    const deep = await load(`#/devices/${fingerprint}`, '#device-state');
    return [
      {
        item: '8 device list',
        measure: `${label}: dashboard Devices page in chromium, load to ${rowsShown} rows drawn`,
        value: `${list.toFixed(0)} ms`,
      },
      {
        item: '8 device list',
        measure: `${label}: dashboard device page in chromium, load to its last state drawn`,
        value: `${deep.toFixed(0)} ms`,
      },
    ];
  } finally {
    await context.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** EXPLAIN ANALYZE of the repository's page queries (device.repository.ts) at the deep cursor. */
async function explainPages(
  db: BenchDatabase,
  cursor: number,
  identityId: number,
  bigIdentityId: number,
) {
  const queries: Array<[string, string, unknown[]]> = [
    [
      'all devices, deep page',
      'select * from devices where id > $1 order by id limit 51',
      [cursor],
    ],
    [
      'revoked devices, deep page',
      'select * from devices where id > $1 and revoked_at is not null order by id limit 51',
      [cursor],
    ],
    [
      'big identity (999 in 1,000), deep page',
      'select * from devices where identity_id = $1 and id > $2 order by id limit 51',
      [bigIdentityId, cursor],
    ],
    [
      'small identity (1 in 1,000), deep page',
      'select * from devices where identity_id = $1 and id > $2 order by id limit 51',
      [identityId, cursor],
    ],
    [
      'small identity (1 in 1,000), first page',
      'select * from devices where identity_id = $1 and id > $2 order by id limit 51',
      [identityId, 0],
    ],
  ];
  return withClient(db.url, async (c) => {
    const out: string[] = [];
    for (const [what, query, params] of queries) {
      const plan = await c.query<{ 'QUERY PLAN': string }>(
        `explain (analyze, costs off, timing off) ${query}`,
        params,
      );
      out.push(`-- ${what}: ${query}`, ...plan.rows.map((r) => r['QUERY PLAN']), '');
    }
    return out.join('\n');
  });
}

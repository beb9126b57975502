import { expect } from 'chai';
import { DeviceClient, newDevice, type Answer, type TestDevice } from './device-client.js';
import { startFleetgate, type FleetgateProcess } from './fleetgate-process.js';
import { createTestDatabase, queryTestDatabase, type TestDatabase } from './test-database.js';

/**
 * What is stored, read the way an operator would: straight from Postgres when
 * the test runs on one, otherwise through `fleetgate export` (which talks to
 * the running server over its control socket on the embedded database).
 */
export async function storedPoints(
  db: TestDatabase,
  server: FleetgateProcess,
  device: TestDevice,
  series: string,
): Promise<Array<[number, number]>> {
  if (db.url) {
    const rows = await queryTestDatabase<{ ms: string; value: number }>(
      db,
      `select (extract(epoch from p.ts) * 1000)::bigint::text as ms, p.value
       from points p join series s on s.id = p.series_id
       join device_certificates c on c.device_id = s.device_id
       where c.fingerprint = $1 and s.name = $2 order by p.ts`,
      [device.fingerprint, series],
    );
    return rows.map((r) => [Number(r.ms), r.value]);
  }
  const result = await server.cli(['export', device.fingerprint, series]);
  if (result.code !== 0) {
    if (/no device|no series/.test(result.stderr)) return [];
    throw new Error(`export failed: ${result.stderr}`);
  }
  return result.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(',').map(Number) as [number, number]);
}

/** Points stored for a device over the given series names. */
export async function countStoredPoints(
  db: TestDatabase,
  server: FleetgateProcess,
  device: TestDevice,
  series: readonly string[],
): Promise<number> {
  let total = 0;
  for (const name of series) total += (await storedPoints(db, server, device, name)).length;
  return total;
}

/** On Postgres, also proves no stray series row was left by a rolled-back upload. */
export async function countAllRows(
  db: TestDatabase,
): Promise<{ points: number; series: number } | null> {
  if (!db.url) return null;
  const [row] = await queryTestDatabase<{ points: string; series: string }>(
    db,
    'select (select count(*) from points) as points, (select count(*) from series) as series',
  );
  return { points: Number(row!.points), series: Number(row!.series) };
}

export function expectJsonError(answer: Answer, status: number, code: string | string[]) {
  const codes = Array.isArray(code) ? code : [code];
  expect(answer.status, answer.text).to.equal(status);
  expect(answer.headers['content-type'] ?? '').to.match(/application\/json/);
  expect(answer.json, answer.text).to.be.an('object');
  expect(codes, answer.text).to.include(answer.json.code);
  expect(answer.json.error).to.be.a('string').and.not.equal('');
}

/** The server still answers a valid upload. */
export async function expectServerUp(server: FleetgateProcess, client: DeviceClient) {
  expect(server.child.exitCode, server.output()).to.equal(null);
  const answer = await client.upload([{ name: 'alive', content: `${Date.now()},1\n` }]);
  expect(answer.status, answer.text).to.equal(200);
}

/** Creates an identity and a PSK through the CLI and binds the device with it. */
export async function bindDevice(
  server: FleetgateProcess,
  client: DeviceClient,
  identity = `acme${Math.floor(Math.random() * 1e9)}`,
): Promise<string> {
  const created = await server.cli(['identity', 'create', identity]);
  if (created.code !== 0 && !/exists/.test(created.stderr)) throw new Error(created.stderr);
  const issued = await server.cli(['psk', 'issue', identity]);
  if (issued.code !== 0) throw new Error(issued.stderr);
  const psk = issued.stdout.trim();
  const bound = await client.bind(psk);
  expect(bound.status, bound.text).to.equal(200);
  return psk;
}

export interface BoundDeviceSetup {
  db: TestDatabase;
  server: FleetgateProcess;
  device: TestDevice;
  client: DeviceClient;
}

/** A fresh database, a running server and one bound device with its client. */
export async function startWithBoundDevice(env: Record<string, string>): Promise<BoundDeviceSetup> {
  const db = await createTestDatabase({ migrated: true });
  const server = await startFleetgate(db, env);
  const device = newDevice();
  const client = new DeviceClient(server, device);
  await bindDevice(server, client);
  return { db, server, device, client };
}

export async function stopBoundDevice(setup: Partial<BoundDeviceSetup>): Promise<void> {
  await setup.client?.close();
  await setup.server?.stop();
  await setup.db?.drop();
}

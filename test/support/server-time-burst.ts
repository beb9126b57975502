import { expect } from 'chai';
import type { Answer, DeviceClient } from './device-client.js';
import { queryTestDatabase, type TestDatabase } from './test-database.js';

const T0 = 1_764_500_000_000;

/** What a burst of messages without `ts` got: every answer, and the readings answered 200. */
export interface BurstWithoutTs {
  answers: Answer[];
  acknowledged: number[];
}

/**
 * Messages without `ts` of one device, `{"data": {"burst": v}}` with a
 * different `v` each, sent in rounds of `perRound` at once and spread over
 * `clients` (one per node, each with its connections already open after the
 * warm-up), so that requests of one millisecond reach several nodes.
 */
export async function burstWithoutTs(
  clients: DeviceClient[],
  rounds = 3,
  perRound = 64,
): Promise<BurstWithoutTs> {
  const sent = (i: number, body: unknown): Promise<Answer> =>
    clients[i % clients.length]!.send(
      'POST',
      JSON.stringify(body),
      { 'content-type': 'application/json' },
      '/device_endpoint/messages',
    );
  // Opens the connections first, so that a round's requests arrive together.
  await Promise.all(
    Array.from({ length: 16 * clients.length }, (_, i) =>
      sent(i, { ts: T0 + i, data: { warm: i } }),
    ),
  );
  const burst: BurstWithoutTs = { answers: [], acknowledged: [] };
  for (let round = 0; round < rounds; round += 1) {
    const values = Array.from({ length: perRound }, (_, i) => round * perRound + i);
    const answers = await Promise.all(values.map((v) => sent(v, { data: { burst: v } })));
    answers.forEach((answer, i) => {
      burst.answers.push(answer);
      if (answer.status === 200) burst.acknowledged.push(values[i]!);
    });
  }
  return burst;
}

/**
 * Every reading of the burst answered 200 is stored exactly once (read on the
 * database, by the device's id so that Citus routes it to one shard), and
 * every answer was 200 {"stored":1,"duplicates":0}.
 */
export async function expectBurstStoredOnce(
  db: TestDatabase,
  fingerprint: string,
  burst: BurstWithoutTs,
): Promise<void> {
  const [device] = await queryTestDatabase<{ id: number }>(
    db,
    'select device_id as id from device_certificates where fingerprint = $1',
    [fingerprint],
  );
  const rows = await queryTestDatabase<{ value: number }>(
    db,
    `select p.value from points p join series s on s.id = p.series_id and s.device_id = p.device_id
     where p.device_id = $1 and s.device_id = $1 and s.name = 'burst' order by p.value`,
    [device!.id],
  );
  expect(
    rows.map((r) => r.value),
    'every acknowledged reading stored once',
  ).to.deep.equal([...burst.acknowledged].sort((x, y) => x - y));
  for (const answer of burst.answers) {
    expect(answer.status, answer.text).to.equal(200);
    expect(answer.json, answer.text).to.include({ stored: 1, duplicates: 0 });
  }
}

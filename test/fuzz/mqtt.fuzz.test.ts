import { expect } from 'chai';
import fc from 'fast-check';
import type { MqttClient } from 'mqtt';
import { useFixture, uniqueName } from '../support/fixture.js';
import { storedPoints } from '../support/stored-points.js';
import {
  connectDevice,
  connectPacket,
  deviceTopics,
  Inbox,
  rawConnection,
  waitForBytes,
} from '../support/mqtt-client.js';

/** Bounded so the suite stays fast; FLEETGATE_FUZZ_RUNS raises it, FLEETGATE_FUZZ_SEED replays. */
const RUNS = Number(process.env.FLEETGATE_FUZZ_RUNS ?? 15);
const SEED = Number(process.env.FLEETGATE_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const T0 = Date.now() - 86_400_000;
const SERIES = ['a', 'b', '__proto__'];
/** The 4xx codes a refused request may carry; anything else (5xx) fails. */
const REFUSALS = new Set([
  'invalid_json',
  'invalid_request',
  'invalid_message',
  'invalid_value',
  'invalid_timestamp',
  'invalid_series_name',
  'invalid_point',
  'invalid_key',
  'empty_batch',
  'unknown_endpoint',
]);

interface Request {
  endpoint: string;
  payload: string;
  /** The points a stored request adds, or null when it must be refused. */
  points: { series: string; ts: number; value: number }[] | null;
}

const validRequest: fc.Arbitrary<Request> = fc
  .tuple(
    fc.constantFrom(...SERIES),
    fc.array(
      fc.tuple(
        fc.integer({ min: 0, max: 9 }).map((i) => T0 + i * 1000),
        fc.integer({ min: -1000, max: 1000 }),
      ),
      { minLength: 1, maxLength: 5 },
    ),
    fc.boolean(),
  )
  .map(([series, pairs, asCsv]) => ({
    endpoint: 'points',
    payload: JSON.stringify({
      id: 'v',
      data: {
        series,
        points: asCsv ? pairs.map(([ts, v]) => `${ts},${v}\n`).join('') : pairs,
      },
    }),
    points: pairs.map(([ts, value]) => ({ series, ts, value })),
  }));

const badRequest: fc.Arbitrary<Request> = fc.oneof(
  fc.string().map((text) => ({ endpoint: 'points', payload: `{${text}`, points: null })),
  fc.string().map((text) => ({
    endpoint: 'messages',
    payload: text.length ? `[${text}` : '',
    points: null,
  })),
  fc.jsonValue().map((value) => ({
    endpoint: 'points',
    payload: JSON.stringify({ id: 'b', data: value }),
    points: null,
  })),
  fc.constantFrom<Request>(
    {
      endpoint: 'points',
      payload: '{"id":"x","data":{"series":"a","points":[[1,1]]}}',
      points: null,
    },
    {
      endpoint: 'points',
      payload: `{"id":"x","data":{"series":"a","points":[[${T0},1],[${T0},"2"]]}}`,
      points: null,
    },
    { endpoint: 'nope', payload: '{"id":"x"}', points: null },
    { endpoint: 'time', payload: '{"id":"x","key":"abc"}', points: null },
  ),
);

/** Random requests on one connection: every one answered, only 4xx refusals, stored = model. */
describe('fuzz: MQTT requests', function () {
  this.timeout(300_000);
  const fx = useFixture({ FLEETGATE_MQTT_PORT: '0', FLEETGATE_MQTT_MESSAGES_PER_MINUTE: '0' });

  it('answers every request, refuses only with known 4xx, and stores exactly the model', async () => {
    const identity = uniqueName('fuzz');
    const { device } = await fx().boundDevice(identity);
    const model = new Map<string, number>();
    let client: MqttClient | undefined;
    try {
      client = await connectDevice(fx(), device);
      const topics = deviceTopics(identity, device);
      const inbox = new Inbox(client);
      await client.subscribeAsync(topics.res('+'), { qos: 1 });
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.oneof(validRequest, badRequest), { minLength: 1, maxLength: 5 }),
          async (requests) => {
            for (const request of requests) {
              await client!.publishAsync(topics.req(request.endpoint), request.payload, { qos: 1 });
              // The PUBACK came: the answer was published before it.
              const { json } = await inbox.next();
              if (request.points) {
                expect(json, request.payload).to.deep.include({ status: 1, code: 200 });
                for (const p of request.points) {
                  const key = `${p.series}\u0000${p.ts}`;
                  if (!model.has(key)) model.set(key, p.value);
                }
              } else if (json.status === 0) {
                expect(json.code, request.payload).to.be.within(400, 499);
                expect(REFUSALS.has(json.data.code), json.data.code).to.equal(true);
              } else {
                // A generated "bad" request that is in fact valid (fc.jsonValue can build one):
                // it may only be one the model knows nothing to store for.
                expect(request.endpoint, request.payload).to.not.equal('points');
              }
            }
          },
        ),
        { numRuns: RUNS, seed: SEED },
      );
      expect(client.connected).to.equal(true);
    } finally {
      await client?.endAsync(true).catch(() => undefined);
    }
    for (const series of SERIES) {
      const expected = [...model]
        .filter(([key]) => key.startsWith(`${series}\u0000`))
        .map(([key, value]) => [Number(key.split('\u0000')[1]), value])
        .sort((x, y) => x[0]! - y[0]!);
      expect(await storedPoints(fx().db, fx().server, device, series), series).to.deep.equal(
        expected,
      );
    }
  });

  it('survives random bytes after CONNECT and keeps serving', async () => {
    const { device } = await fx().boundDevice(uniqueName('fuzz-raw'));
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 64 }), async (bytes) => {
        const conn = await rawConnection(fx(), device);
        conn.socket.write(connectPacket('raw'));
        await waitForBytes(conn, 4);
        conn.socket.write(Buffer.from(bytes));
        // The server closes, answers, or waits; the connection is ended by the test.
        await new Promise((resolve) => setTimeout(resolve, 20));
        conn.socket.destroy();
      }),
      { numRuns: RUNS * 2, seed: SEED },
    );
    const client = await connectDevice(fx(), device);
    expect(client.connected).to.equal(true);
    await client.endAsync(true);
  });
});

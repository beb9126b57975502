import { expect } from 'chai';
import fc from 'fast-check';
import WebSocket from 'ws';
import {
  startWithBoundDevice,
  stopBoundDevice,
  storedPoints,
  type BoundDeviceSetup,
} from '../support/stored-points.js';

/** Bounded so the suite stays fast; FLEETGATE_FUZZ_RUNS raises it, FLEETGATE_FUZZ_SEED replays. */
const RUNS = Number(process.env.FLEETGATE_FUZZ_RUNS ?? 25);
const SEED = Number(process.env.FLEETGATE_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const PATH = process.env.FLEETGATE_FUZZ_PATH;
const T0 = Date.now() - 86_400_000;
const SERIES = ['a', 'b', '__proto__', 'constructor'];
/** The 4xx codes a refused frame may carry; anything else (internal_error, 5xx) fails. */
const REFUSALS = new Set([
  'invalid_json',
  'invalid_message',
  'invalid_value',
  'invalid_timestamp',
  'invalid_series_name',
  'too_many_fields',
]);

/** A frame and what the model expects: the points it stores, or a refusal. */
interface Frame {
  text: string | Buffer;
  id: string | number | null;
  points: { series: string; ts: number; value: number }[] | null;
}

const point = fc.record({
  series: fc.constantFrom(...SERIES),
  ts: fc.integer({ min: 0, max: 15 }).map((i) => T0 + i * 1000),
  value: fc.integer({ min: -1000, max: 1000 }),
});

const validFrame: fc.Arbitrary<Frame> = fc
  .tuple(
    fc.oneof(fc.string({ minLength: 1, maxLength: 8 }), fc.integer()),
    fc.uniqueArray(point, { minLength: 1, maxLength: 3, selector: (p) => p.series }),
    fc.integer({ min: 0, max: 15 }).map((i) => T0 + i * 1000),
  )
  .map(([id, points, ts]) => {
    const data = points.map((p) => `${JSON.stringify(p.series)}: ${p.value}`).join(', ');
    return {
      text: `{"type": "message", "id": ${JSON.stringify(id)}, "ts": ${ts}, "data": {${data}}}`,
      id,
      points: points.map((p) => ({ ...p, ts })),
    };
  });

/** Frames the rules refuse: the id is echoed when it could be read. */
const badFrame: fc.Arbitrary<Frame> = fc.oneof(
  fc.string().map((text) => ({ text: `{${text}`, id: null, points: null })),
  fc.constantFrom<Frame>(
    { text: '{"type": "message", "id": "d", "data": {"a": 1, "a": 2}}', id: 'd', points: null },
    { text: '{"type": "message", "id": "v", "data": {"a": "1"}}', id: 'v', points: null },
    { text: '{"type": "message", "id": "n", "data": {"a": 1e999}}', id: 'n', points: null },
    {
      text: '{"type": "message", "id": "s", "ts": 1764500000, "data": {"a": 1}}',
      id: 's',
      points: null,
    },
    { text: '{"type": "message", "id": "e", "data": {}}', id: 'e', points: null },
    { text: '{"type": "message", "id": "q", "data": {"-x": 1}}', id: 'q', points: null },
    { text: '{"type": "message", "id": "u", "data": {"a": 1}, "extra": 1}', id: 'u', points: null },
    { text: '{"type": "ack", "id": "t", "data": {"a": 1}}', id: 't', points: null },
    { text: '{"type": "message", "data": {"a": 1}}', id: null, points: null },
    { text: '[{"type": "message", "id": "r", "data": {"a": 1}}]', id: null, points: null },
    {
      text: Buffer.from('{"type": "message", "id": "b", "data": {"a": 1}}'),
      id: null,
      points: null,
    },
  ),
);

/** Issue 13's promise on the WebSocket, under generated frames: never a 5xx, one answer per frame, acks only for what is stored. */
describe('fuzz: WebSocket frames against the model', function () {
  this.timeout(600_000);
  let setup: BoundDeviceSetup | undefined;
  before(async function () {
    this.timeout(120_000);
    setup = await startWithBoundDevice({ FLEETGATE_UPLOADS_PER_DEVICE: '0' });
  });
  after(async function () {
    this.timeout(60_000);
    await stopBoundDevice(setup ?? {});
  });

  it('answers every frame once, in order, acks exactly the new points and refuses the rest with a 4xx code', async () => {
    const { server, device, db } = setup!;
    /** The model: the first value stored for each (series, ts). */
    const stored = new Map<string, number>();
    console.log(`    FLEETGATE_FUZZ_SEED=${SEED} FLEETGATE_FUZZ_RUNS=${RUNS}`);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof({ weight: 3, arbitrary: validFrame }, badFrame), {
          minLength: 1,
          maxLength: 10,
        }),
        async (frames) => {
          const ws = new WebSocket(
            `${server.baseUrl.replace(/^https/, 'wss')}/device_endpoint/ws`,
            {
              ca: server.caPem,
              cert: device.certPem,
              key: device.keyPem,
            },
          );
          const answers: Record<string, unknown>[] = [];
          let closed = false;
          ws.on('message', (data) => answers.push(JSON.parse(String(data))));
          ws.on('close', () => (closed = true));
          await new Promise((resolve, reject) => {
            ws.once('open', resolve);
            ws.once('error', reject);
          });
          try {
            for (const frame of frames)
              ws.send(frame.text, { binary: Buffer.isBuffer(frame.text) });
            for (
              let waited = 0;
              answers.length < frames.length && !closed && waited < 30_000;
              waited += 20
            ) {
              await new Promise((resolve) => setTimeout(resolve, 20));
            }
            expect(closed, 'the server closed the socket').to.equal(false);
            expect(answers).to.have.length(frames.length);
            frames.forEach((frame, i) => {
              const answer = answers[i]!;
              expect(answer.id, `answer ${i} to ${String(frame.text)}`).to.deep.equal(frame.id);
              if (!frame.points) {
                expect(answer.type, String(frame.text)).to.equal('error');
                expect(REFUSALS, `code ${String(answer.code)}`).to.include(answer.code);
                return;
              }
              let fresh = 0;
              for (const p of frame.points) {
                const key = `${p.series}@${p.ts}`;
                if (!stored.has(key)) {
                  stored.set(key, p.value);
                  fresh += 1;
                }
              }
              expect(answer, String(frame.text)).to.deep.equal({
                type: 'ack',
                id: frame.id,
                stored: fresh,
                duplicates: frame.points.length - fresh,
              });
            });
          } finally {
            ws.terminate();
          }
        },
      ),
      { numRuns: RUNS, seed: SEED, ...(PATH ? { path: PATH } : {}), endOnFailure: true },
    );
    // The database holds exactly the model: nothing refused was stored, nothing acked lost.
    for (const series of SERIES) {
      const expected = [...stored]
        .filter(([key]) => key.startsWith(`${series}@`))
        .map(([key, value]) => [Number(key.slice(series.length + 1)), value])
        .sort((x, y) => x[0]! - y[0]!);
      expect(await storedPoints(db, server, device, series), series).to.deep.equal(expected);
    }
  });
});

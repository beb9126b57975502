import { expect } from 'chai';
import fc from 'fast-check';
import type { DeviceClient, TestDevice } from '../support/device-client.js';
import type { FleetgateProcess } from '../support/fleetgate-process.js';
import { startWithBoundDevice, stopBoundDevice, storedPoints } from '../support/stored-points.js';
import type { TestDatabase } from '../support/test-database.js';

/** Bounded so the suite stays fast; FLEETGATE_FUZZ_RUNS raises it, FLEETGATE_FUZZ_SEED replays. */
const RUNS = Number(process.env.FLEETGATE_FUZZ_RUNS ?? 40);
const SEED = Number(process.env.FLEETGATE_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const PATH = process.env.FLEETGATE_FUZZ_PATH;
const NOW = Date.now();

const SERIES = ['a', 'temp', 'h.1', 'x:y/z', '_q'];
const MAX_FIELDS = 4;

/** A piece of a message body: its JSON text and whether the rules accept it. */
interface Piece<T> {
  text: string;
  ok: boolean;
  value?: T;
}

const good = <T>(text: string, value: T): Piece<T> => ({ text, ok: true, value });
const bad = (text: string): Piece<never> => ({ text, ok: false });

// A small range of timestamps, so that batches and runs repeat them (duplicates).
const tsPiece: fc.Arbitrary<Piece<number>> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .integer({ min: 0, max: 20 })
      .map((i) => good(String(NOW - 86_400_000 + i * 1000), NOW - 86_400_000 + i * 1000)),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        '1764500000',
        '1764500000000.5',
        '"1764500000000"',
        '-5',
        'null',
        String(NOW + 10 * 86_400_000),
        '1e999',
        '99999999999999999',
      )
      .map(bad),
  },
);

const valuePiece: fc.Arbitrary<Piece<number>> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .double({ noNaN: true, noDefaultInfinity: true })
      .map((v) => good(JSON.stringify(v), Object.is(v, -0) ? 0 : v)),
  },
  { weight: 2, arbitrary: fc.integer({ min: -1000, max: 1000 }).map((v) => good(String(v), v)) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom('"1"', 'null', 'true', '[]', '{}', '1e999', '-1e400', '1e-400', '"NaN"')
      .map(bad),
  },
);

const namePiece: fc.Arbitrary<Piece<string>> = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...SERIES).map((n) => good(JSON.stringify(n), n)) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom('', 'bad name', '-x', 'é', 'a'.repeat(129), 'a\n')
      .map((n) => bad(JSON.stringify(n))),
  },
);

interface Message {
  ts: number;
  points: Array<[string, number]>;
}

const messagePiece: fc.Arbitrary<Piece<Message>> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc
      .tuple(
        tsPiece,
        fc.uniqueArray(fc.tuple(namePiece, valuePiece), {
          minLength: 1,
          maxLength: MAX_FIELDS + 1,
          selector: ([n]) => n.text,
        }),
      )
      .map(([ts, fields]) => {
        const text = `{"ts": ${ts.text}, "data": {${fields.map(([n, v]) => `${n.text}: ${v.text}`).join(', ')}}}`;
        const ok = ts.ok && fields.length <= MAX_FIELDS && fields.every(([n, v]) => n.ok && v.ok);
        return ok
          ? good(text, {
              ts: ts.value!,
              points: fields.map(([n, v]) => [n.value!, v.value!] as [string, number]),
            })
          : bad(text);
      }),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        '42',
        '"m"',
        'null',
        '[]',
        '{"data": {"a": 1}, "x": 1}',
        `{"ts": ${NOW}}`,
        `{"ts": ${NOW}, "data": {}}`,
      )
      .map(bad),
  },
);

const body: fc.Arbitrary<Piece<Message[]>> = fc.oneof(
  {
    weight: 3,
    arbitrary: messagePiece.map((m) => (m.ok ? good(m.text, [m.value!]) : bad(m.text))),
  },
  {
    weight: 6,
    arbitrary: fc.array(messagePiece, { minLength: 0, maxLength: 6 }).map((ms) => {
      const text = `[${ms.map((m) => m.text).join(', ')}]`;
      return ms.length > 0 && ms.every((m) => m.ok)
        ? good(
            text,
            ms.map((m) => m.value!),
          )
        : bad(text);
    }),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom('', '{', '[{"ts": 1,', 'nul', '{"data": {"a": 1}}}').map(bad),
  },
);

/** Issue 13: a fuzz of POST /device_endpoint/messages against a model of what is stored. */
describe('fuzz: JSON messages', () => {
  let db: TestDatabase;
  let server: FleetgateProcess;
  let device: TestDevice;
  let client: DeviceClient;

  before(async function () {
    this.timeout(120_000);
    ({ db, server, device, client } = await startWithBoundDevice({
      FLEETGATE_MAX_MESSAGE_FIELDS: String(MAX_FIELDS),
      FLEETGATE_UPLOADS_PER_DEVICE: '0',
    }));
  });
  after(async function () {
    this.timeout(60_000);
    await stopBoundDevice({ db, server, device, client });
  });

  it('never answers 5xx; 200 exactly for valid batches, which are stored whole; nothing else is stored', async function () {
    this.timeout(600_000);
    // The model: series -> timestamp -> the first value stored.
    const model = new Map<string, Map<number, number>>(SERIES.map((s) => [s, new Map()]));
    const property = fc.asyncProperty(body, async (piece) => {
      const answer = await client.send(
        'POST',
        piece.text,
        { 'content-type': 'application/json' },
        '/device_endpoint/messages',
      );
      expect(answer.status, answer.text).to.be.below(500);
      expect(answer.status === 200, `${answer.status} ${answer.text} for ${piece.text}`).to.equal(
        piece.ok,
      );
      if (!piece.ok) {
        expect(answer.json?.code, answer.text).to.be.a('string');
        return;
      }
      let stored = 0;
      let total = 0;
      for (const message of piece.value!) {
        for (const [name, value] of message.points) {
          total++;
          const series = model.get(name)!;
          if (!series.has(message.ts)) {
            series.set(message.ts, value);
            stored++;
          }
        }
      }
      expect(answer.json.stored, piece.text).to.equal(stored);
      expect(answer.json.stored + answer.json.duplicates).to.equal(total);
    });
    const params: fc.Parameters<[Piece<Message[]>]> = {
      numRuns: RUNS,
      seed: SEED,
      ...(PATH ? { path: PATH } : {}),
    };
    try {
      await fc.assert(property, params);
    } catch (err) {
      console.error(`fuzz "messages" failed: replay with FLEETGATE_FUZZ_SEED=${SEED}`);
      throw err;
    }
    // What is stored is exactly the model: no refused batch left anything behind.
    for (const [name, series] of model) {
      const expected = [...series].sort((x, y) => x[0] - y[0]);
      expect(await storedPoints(db, server, device, name), name).to.deep.equal(expected);
    }
  });
});

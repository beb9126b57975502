import { expect } from 'chai';
import fc from 'fast-check';
import { buildMultipart, DeviceClient, type TestDevice } from '../support/device-client.js';
import type { FleetgateProcess } from '../support/fleetgate-process.js';
import {
  startWithBoundDevice,
  stopBoundDevice,
  countAllRows,
  storedPoints,
} from '../support/stored-points.js';
import type { TestDatabase } from '../support/test-database.js';

/** Bounded so the suite stays fast; FLEETGATE_FUZZ_RUNS raises it for a longer hunt. */
const RUNS = Number(process.env.FLEETGATE_FUZZ_RUNS ?? 25);
const NOW = Date.now();

interface Line {
  text: string;
  point?: [number, number];
}

const validLine: fc.Arbitrary<Line> = fc
  .tuple(
    // The oldest accepted timestamp is 2000-01-01 (FLEETGATE_MIN_TIMESTAMP_MS).
    fc.integer({ min: Date.UTC(2000, 0, 1), max: NOW }),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
  )
  .map(([ts, value]) => ({
    text: `${ts},${value}`,
    point: [ts, Object.is(value, -0) ? 0 : value],
  }));

const invalidLine: fc.Arbitrary<Line> = fc
  .oneof(
    fc.constantFrom('NaN', 'Infinity', '-Infinity', '1e999', '', 'abc', '0x10', '1,2,3'),
    fc
      .string({ minLength: 1, maxLength: 30 })
      .filter(
        (s) =>
          !/^\s*\d+\s*,\s*[-+.\deE]+\s*$/.test(s) &&
          s.trim() !== '' &&
          !s.includes('\n') &&
          !s.includes('\r'),
      ),
  )
  .chain((bad) =>
    fc.constantFrom(
      `${NOW - 1},${bad}`,
      `${bad},1`,
      `-${NOW},1`,
      `${NOW + 10 * 86_400_000},1`,
      `"${NOW},1`,
    ),
  )
  .map((text) => ({ text }));

describe('fuzzing uploads through the real endpoint', function () {
  this.timeout(600_000);
  let db: TestDatabase;
  let server: FleetgateProcess;
  let device: TestDevice;
  let client: DeviceClient;
  let run = 0;

  before(
    async () =>
      ({ db, server, device, client } = await startWithBoundDevice({
        FLEETGATE_UPLOADS_PER_DEVICE: '0',
        // Every run uploads new series to one device; FLEETGATE_FUZZ_RUNS=400 would pass 1000.
        FLEETGATE_MAX_SERIES_PER_DEVICE: '1000000',
      })),
  );
  after(() => stopBoundDevice({ db, server, client }));

  it('stores exactly the valid CSV files, first point per timestamp, and nothing of the others', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof({ weight: 4, arbitrary: validLine }, { weight: 1, arbitrary: invalidLine }),
          { minLength: 1, maxLength: 40 },
        ),
        fc.constantFrom('\n', '\r\n'),
        async (lines, eol) => {
          const series = `csv${run++}`;
          const answer = await client.upload([
            { name: series, content: lines.map((l) => l.text).join(eol) + eol },
          ]);
          expect(answer.status, answer.text).to.be.below(500);
          const stored = await storedPoints(db, server, device, series);
          if (lines.every((l) => l.point)) {
            expect(answer.status, answer.text).to.equal(200);
            const firstPerTs = new Map<number, number>();
            for (const { point } of lines)
              if (!firstPerTs.has(point![0])) firstPerTs.set(point![0], point![1]);
            const expected = [...firstPerTs].sort((a, b) => a[0] - b[0]);
            expect(stored).to.deep.equal(expected);
            expect(answer.json.stored).to.equal(expected.length);
          } else {
            expect(answer.status, answer.text).to.be.within(400, 499);
            expect(answer.json.code).to.be.a('string');
            expect(stored).to.deep.equal([]);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('never answers 5xx to mutated multipart bodies and stores only what it acknowledged', async () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({
        kind: fc.constant('flip' as const),
        at: fc.nat(),
        byte: fc.integer({ min: 0, max: 255 }),
      }),
      fc.record({
        kind: fc.constant('insert' as const),
        at: fc.nat(),
        text: fc.constantFrom(
          '\r\n',
          '--',
          '\r\n\r\n',
          '"',
          ';',
          '\0',
          'Content-Disposition: form-data; name="x"\r\n',
        ),
      }),
      fc.record({
        kind: fc.constant('delete' as const),
        at: fc.nat(),
        length: fc.integer({ min: 1, max: 20 }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), async (mutations) => {
        const series = `mp${run++}`;
        const ts = NOW - 100_000 - run * 100;
        const { body, contentType } = buildMultipart([
          { name: series, content: `${ts},1\n${ts + 1},2\n${ts + 2},3\n` },
          { name: `${series}b`, content: `${ts},4\n` },
        ]);
        let bytes = Buffer.from(body);
        for (const m of mutations) {
          const at = m.at % (bytes.length + 1);
          if (m.kind === 'truncate') bytes = bytes.subarray(0, at);
          if (m.kind === 'flip' && at < bytes.length) bytes[at] = m.byte;
          if (m.kind === 'insert')
            bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(m.text), bytes.subarray(at)]);
          if (m.kind === 'delete')
            bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + m.length)]);
        }
        const before = await countAllRows(db);
        const answer = await client.send('POST', bytes, { 'content-type': contentType });
        expect(answer.status, answer.text).to.be.below(500);
        if (answer.status !== 200) {
          expect(answer.json?.code, answer.text).to.be.a('string');
          if (before) expect(await countAllRows(db)).to.deep.equal(before);
          else expect(await storedPoints(db, server, device, series)).to.deep.equal([]);
          return;
        }
        if (before)
          expect((await countAllRows(db))!.points - before.points).to.equal(answer.json.stored);
        for (const [name, counts] of Object.entries(
          answer.json.series as Record<string, { stored: number }>,
        )) {
          expect(await storedPoints(db, server, device, name)).to.have.length(counts.stored);
        }
      }),
      { numRuns: RUNS },
    );
  });
});

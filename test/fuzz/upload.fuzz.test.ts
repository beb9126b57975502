import { expect } from 'chai';
import fc from 'fast-check';
import { DeviceClient, type Answer, type TestDevice } from '../support/device-client.js';
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
/**
 * Every run has a seed, printed when it fails; FLEETGATE_FUZZ_SEED (and
 * FLEETGATE_FUZZ_PATH, from fast-check's report) replay it.
 */
const SEED = Number(process.env.FLEETGATE_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const PATH = process.env.FLEETGATE_FUZZ_PATH;
const NOW = Date.now();
/** Valid timestamps stay clear of both ends of the accepted range. */
const MIN_TS = Date.UTC(2000, 0, 1);
/** Refused by any server clock: the skew allowed is 24 h; this is at least 10 days ahead. */
const FUTURE = NOW + 10 * 86_400_000;

async function assertProperty<T>(name: string, property: fc.IAsyncPropertyWithHooks<T>) {
  const params: fc.Parameters<T> = { numRuns: RUNS, seed: SEED, ...(PATH ? { path: PATH } : {}) };
  try {
    await fc.assert(property, params);
  } catch (err) {
    // fast-check's report has the seed and path too; this line is the replay command.
    console.error(
      `fuzz "${name}" failed: replay with FLEETGATE_FUZZ_SEED=${SEED} (and FLEETGATE_FUZZ_PATH from the report below)`,
    );
    throw err;
  }
}

interface Line {
  text: string;
  point?: [number, number];
}

const timestamp = fc.integer({ min: MIN_TS, max: NOW });
const value = fc.double({ noNaN: true, noDefaultInfinity: true });
const point = (ts: number, v: number): Line => ({
  text: `${ts},${v}`,
  point: [ts, Object.is(v, -0) ? 0 : v],
});
const validLine: fc.Arbitrary<Line> = fc.tuple(timestamp, value).map(([ts, v]) => point(ts, v));

/** Characters that make a field not a number, whatever surrounds them. */
const junk = fc.string({ minLength: 1, maxLength: 20 }).map((s) => `x${s.replace(/[\r\n]/g, '')}`);

/** Invalid by construction: each shape is refused by the rules, not by chance. */
const invalidLine: fc.Arbitrary<Line> = fc
  .oneof(
    fc
      .constantFrom('NaN', 'Infinity', '-Infinity', '1e999', '1e-400', 'abc', '0x10', '')
      .chain((bad) => timestamp.map((ts) => `${ts},${bad}`)),
    fc.tuple(timestamp, junk).map(([ts, bad]) => `${ts},${bad}`),
    junk.map((bad) => `${bad},1`),
    fc.integer({ min: 1, max: NOW }).map((ts) => `-${ts},1`),
    // Below the timestamp floor (FLEETGATE_MIN_TIMESTAMP_MS, 2000-01-01 by default).
    fc.integer({ min: 0, max: MIN_TS - 1 }).map((ts) => `${ts},1`),
    fc.integer({ min: FUTURE, max: FUTURE + 1e12 }).map((ts) => `${ts},1`),
    timestamp.map((ts) => `${ts}.5,1`),
    timestamp.map((ts) => `${ts}`),
    timestamp.map((ts) => `${ts},1,2`),
    timestamp.map((ts) => `"${ts},1`),
  )
  .map((text) => ({ text }));

/** Repeated timestamps get their own arbitrary: drawn from a pool of two or three. */
const repeatedTimestamps: fc.Arbitrary<Line[]> = fc
  .uniqueArray(timestamp, { minLength: 1, maxLength: 3 })
  .chain((pool) =>
    fc.array(
      fc.tuple(fc.constantFrom(...pool), value).map(([ts, v]) => point(ts, v)),
      { minLength: 2, maxLength: 20 },
    ),
  );

const validLines: fc.Arbitrary<Line[]> = fc.oneof(
  { weight: 3, arbitrary: fc.array(validLine, { minLength: 1, maxLength: 30 }) },
  { weight: 1, arbitrary: repeatedTimestamps },
);

const anyLines: fc.Arbitrary<Line[]> = fc.oneof(
  { weight: 2, arbitrary: validLines },
  {
    weight: 1,
    arbitrary: fc.tuple(validLines, invalidLine, fc.nat()).map(([lines, bad, at]) => {
      const copy = [...lines];
      copy.splice(at % (copy.length + 1), 0, bad);
      return copy;
    }),
  },
);

/** What a series must hold after its lines were accepted: the first value per timestamp. */
function expectedPoints(lines: Line[]): Array<[number, number]> {
  const first = new Map<number, number>();
  for (const { point: p } of lines) if (p && !first.has(p[0])) first.set(p[0], p[1]);
  return [...first].sort((a, b) => a[0] - b[0]);
}

// ---- the multipart model: a structure, serialised with random but valid variations ----

const BCHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=?";

interface Style {
  boundary: string;
  quoteBoundary: boolean;
  contentType: 'plain' | 'quoted' | 'extra-params';
  nl: '\r\n' | '\n';
  dataEol: '\r\n' | '\n';
  padding: string;
  leadingNewline: boolean;
  closeNewline: boolean;
  epilogue: string;
  headerCase: 'canonical' | 'lower' | 'upper';
  dispositionType: 'form-data' | 'Form-Data';
  nameQuoted: boolean;
  filename: 'quoted' | 'empty' | 'unquoted-space' | 'backslashes' | 'extended';
  filenameFirst: boolean;
  partContentType: 'none' | 'text/csv' | 'octet-with-identity-encoding';
  folded: boolean;
}

const style: fc.Arbitrary<Style> = fc.record({
  boundary: fc
    .array(fc.constantFrom(...BCHARS), { minLength: 1, maxLength: 70 })
    .map((chars) => chars.join('')),
  quoteBoundary: fc.boolean(),
  contentType: fc.constantFrom('plain', 'quoted', 'extra-params'),
  nl: fc.constantFrom('\r\n', '\n'),
  dataEol: fc.constantFrom('\r\n', '\n'),
  padding: fc.constantFrom('', '', ' ', '\t  '),
  leadingNewline: fc.boolean(),
  closeNewline: fc.boolean(),
  epilogue: fc.constantFrom('', '', '\r\n', '\n\n  \r\n'),
  headerCase: fc.constantFrom('canonical', 'lower', 'upper'),
  dispositionType: fc.constantFrom('form-data', 'Form-Data'),
  nameQuoted: fc.boolean(),
  filename: fc.constantFrom('quoted', 'empty', 'unquoted-space', 'backslashes', 'extended'),
  filenameFirst: fc.boolean(),
  partContentType: fc.constantFrom('none', 'text/csv', 'octet-with-identity-encoding'),
  folded: fc.boolean(),
});

interface Serialised {
  body: Buffer;
  contentType: string;
  /** Byte range of each part: from the newline before its boundary line to the end of its data. */
  ranges: Array<[number, number]>;
}

function serialise(parts: Array<{ name: string; lines: Line[] }>, s: Style): Serialised {
  const header = (name: string) =>
    s.headerCase === 'lower'
      ? name.toLowerCase()
      : s.headerCase === 'upper'
        ? name.toUpperCase()
        : name;
  const filename = {
    quoted: 'filename="f.csv"',
    empty: 'filename=""',
    'unquoted-space': 'filename=my file.csv',
    backslashes: 'filename="C:\\data\\f.csv"',
    extended: "filename*=UTF-8''na%C3%AFve%20f.csv",
  }[s.filename];
  let text = s.leadingNewline ? s.nl : '';
  const ranges: Array<[number, number]> = [];
  for (const part of parts) {
    const start = Math.max(0, Buffer.byteLength(text) - s.nl.length);
    const name = s.nameQuoted ? `name="${part.name}"` : `name=${part.name}`;
    const params = s.filenameFirst ? `${filename}; ${name}` : `${name}; ${filename}`;
    text += `--${s.boundary}${s.padding}${s.nl}`;
    text += `${header('Content-Disposition')}: ${s.dispositionType};${s.folded ? `${s.nl}\t` : ' '}${params}${s.nl}`;
    if (s.partContentType === 'text/csv') text += `${header('Content-Type')}: text/csv${s.nl}`;
    if (s.partContentType === 'octet-with-identity-encoding') {
      text += `Content-Type: application/octet-stream${s.nl}Content-Transfer-Encoding: binary${s.nl}`;
    }
    text += s.nl;
    text += part.lines.map((l) => l.text).join(s.dataEol) + s.dataEol;
    ranges.push([start, Buffer.byteLength(text)]);
    text += s.nl;
  }
  text += `--${s.boundary}--${s.padding}${s.closeNewline ? s.nl : ''}${s.closeNewline ? s.epilogue : ''}`;
  const needsQuotes = s.quoteBoundary || /[ ]/.test(s.boundary);
  const param = needsQuotes ? `boundary="${s.boundary}"` : `boundary=${s.boundary}`;
  const contentType = {
    plain: `multipart/form-data; ${param}`,
    quoted: `multipart/form-data; boundary="${s.boundary}"`,
    'extra-params': `Multipart/Form-Data; charset=utf-8;${param}`,
  }[s.contentType];
  return { body: Buffer.from(text, 'utf8'), contentType, ranges };
}

type Mutation =
  | { kind: 'truncate'; at: number }
  | { kind: 'flip'; at: number; byte: number }
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'delete'; at: number; length: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
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
      '\n',
      '--',
      ' ',
      '\r\n\r\n',
      '"',
      ';',
      '\0',
      'Content-Disposition: form-data; name="x"\r\n',
      'Content-Transfer-Encoding: base64\r\n',
    ),
  }),
  fc.record({
    kind: fc.constant('delete' as const),
    at: fc.nat(),
    length: fc.integer({ min: 1, max: 20 }),
  }),
);

/** Applies mutations; returns the body and the parts whose bytes stayed untouched. */
function mutate(
  { body, ranges }: Serialised,
  mutations: Mutation[],
): { bytes: Buffer; untouched: boolean[] } {
  let bytes = Buffer.from(body);
  // Where each original part now sits; a mutation touching it (or before its end,
  // for a truncation) marks it touched.
  const spans = ranges.map(([a, b]) => ({ a, b, touched: false }));
  for (const m of mutations) {
    const at = m.at % (bytes.length + 1);
    const touch = (from: number, to: number) => {
      for (const span of spans) if (from <= span.b && to >= span.a) span.touched = true;
    };
    const shift = (from: number, delta: number) => {
      for (const span of spans) {
        if (span.a >= from) span.a += delta;
        if (span.b >= from) span.b += delta;
      }
    };
    if (m.kind === 'truncate') {
      touch(at, Number.MAX_SAFE_INTEGER);
      bytes = bytes.subarray(0, at);
    } else if (m.kind === 'flip') {
      if (at < bytes.length && bytes[at] !== m.byte) {
        touch(at, at);
        bytes[at] = m.byte;
      }
    } else if (m.kind === 'insert') {
      touch(at, at);
      bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(m.text), bytes.subarray(at)]);
      shift(at, m.text.length);
    } else {
      const end = Math.min(bytes.length, at + m.length);
      if (end > at) {
        touch(at, end);
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(end)]);
        shift(end, at - end);
      }
    }
  }
  return { bytes, untouched: spans.map((s) => !s.touched) };
}

/** Content-Type changes the server must refuse: the body's boundary is not the one declared. */
const badContentTypes = (boundary: string) => [
  'multipart/form-data',
  'multipart/form-data; boundary=',
  `multipart/form-data; boundary="${boundary}x"`,
  `multipart/form-data; boundary="x${boundary}"`,
  `multipart/form-data; boundary="${boundary}"; boundary="${boundary}"`,
  `multipart/mixed; boundary="${boundary}"`,
  `multipart/form-data; boundary=${'b'.repeat(71)}`,
];

describe('fuzzing uploads through the real endpoint', function () {
  this.timeout(900_000);
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

  /** A refusal: a JSON 4xx, and nothing of any of these series, nor any other row, stored. */
  async function expectNothingStored(
    answer: Answer,
    series: string[],
    before: Awaited<ReturnType<typeof countAllRows>>,
  ) {
    expect(answer.status, answer.text).to.be.within(400, 499);
    expect(answer.json?.code, answer.text).to.be.a('string');
    for (const name of series) {
      expect(await storedPoints(db, server, device, name), name).to.deep.equal([]);
    }
    if (before) expect(await countAllRows(db)).to.deep.equal(before);
  }

  it('stores exactly the valid CSV files, first point per timestamp, and nothing of the others', async () => {
    await assertProperty(
      'csv files',
      fc.asyncProperty(
        fc.array(anyLines, { minLength: 1, maxLength: 3 }),
        fc.constantFrom('\n', '\r\n'),
        async (files, eol) => {
          const prefix = `csv${run++}`;
          const parts = files.map((lines, i) => ({
            name: `${prefix}p${i}`,
            content: lines.map((l) => l.text).join(eol) + eol,
          }));
          const before = await countAllRows(db);
          const answer = await client.upload(parts);
          expect(answer.status, answer.text).to.be.below(500);
          if (files.every((lines) => lines.every((l) => l.point))) {
            expect(answer.status, answer.text).to.equal(200);
            for (const [i, lines] of files.entries()) {
              const expected = expectedPoints(lines);
              expect(await storedPoints(db, server, device, parts[i]!.name)).to.deep.equal(
                expected,
              );
              expect(answer.json.series[parts[i]!.name].stored).to.equal(expected.length);
            }
          } else {
            await expectNothingStored(
              answer,
              parts.map((p) => p.name),
              before,
            );
          }
        },
      ),
    );
  });

  it('multipart bodies: 200 exactly when every part was stored whole, else a 4xx that stores nothing', async () => {
    await assertProperty(
      'multipart model',
      fc.asyncProperty(
        fc.array(validLines, { minLength: 1, maxLength: 3 }),
        style,
        fc.oneof(
          { weight: 1, arbitrary: fc.constant([] as Mutation[]) },
          { weight: 3, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }) },
        ),
        fc.option(fc.nat(), { freq: 5 }),
        async (files, s, mutations, headerMutation) => {
          const prefix = `mp${run++}`;
          const parts = files.map((lines, i) => ({ name: `${prefix}p${i}q${i}`, lines }));
          const serialised = serialise(parts, s);
          const { bytes, untouched } = mutate(serialised, mutations);
          let contentType = serialised.contentType;
          if (headerMutation !== null) {
            const choices = badContentTypes(s.boundary);
            contentType = choices[headerMutation % choices.length]!;
          }
          const before = await countAllRows(db);
          const answer = await client.send('POST', bytes, { 'content-type': contentType });
          expect(answer.status, answer.text).to.be.below(500);
          const names = parts.map((p) => p.name);

          if (headerMutation !== null) return expectNothingStored(answer, names, before);
          if (mutations.length === 0 || bytes.equals(serialised.body)) {
            // A valid body, however it was written: every part stored, exactly.
            expect(answer.status, answer.text).to.equal(200);
            for (const part of parts) {
              const expected = expectedPoints(part.lines);
              expect(await storedPoints(db, server, device, part.name), part.name).to.deep.equal(
                expected,
              );
              expect(answer.json.series[part.name], answer.text).to.deep.equal({
                stored: expected.length,
                duplicates: part.lines.length - expected.length,
              });
            }
            expect(Object.keys(answer.json.series)).to.have.length(parts.length);
            return;
          }
          if (answer.status !== 200) return expectNothingStored(answer, names, before);
          // A mutated body that was accepted: what it says was stored is stored, and no
          // part whose bytes were left alone went missing or changed.
          if (before) {
            expect((await countAllRows(db))!.points - before.points).to.equal(answer.json.stored);
          }
          const reported = answer.json.series as Record<string, { stored: number }>;
          for (const [name, counts] of Object.entries(reported)) {
            expect(await storedPoints(db, server, device, name), name).to.have.length(
              counts.stored,
            );
          }
          for (const [i, part] of parts.entries()) {
            if (!untouched[i]) continue;
            expect(reported, `untouched part ${part.name} in ${answer.text}`).to.have.property(
              part.name,
            );
            expect(await storedPoints(db, server, device, part.name), part.name).to.deep.equal(
              expectedPoints(part.lines),
            );
          }
        },
      ),
    );
  });
});

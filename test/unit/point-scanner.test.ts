import { Readable } from 'node:stream';
import { expect } from 'chai';
import { parse } from 'csv-parse';
import fc from 'fast-check';
import { AppError } from '../../src/http/app-error.js';
import { parsePointRecord } from '../../src/ingest/point-line.js';
import { PointScanner } from '../../src/ingest/point-scanner.js';

const RANGE = { minEpochMs: 0, maxEpochMs: 2_000_000_000_000 };

type Outcome = { points: Array<[number, number]> } | { line: number; status: number };

/** The reader the scanner replaced: csv-parse with the options the service used. */
async function reference(text: string): Promise<Outcome> {
  const parser = Readable.from([Buffer.from(text)]).pipe(
    parse({ bom: true, trim: true, skip_empty_lines: true, relax_column_count: true, info: true }),
  );
  const points: Array<[number, number]> = [];
  try {
    for await (const { record, info } of parser as AsyncIterable<{
      record: string[];
      info: { lines: number };
    }>) {
      const point = parsePointRecord(record, RANGE);
      if (typeof point === 'string') return { line: info.lines, status: 400 };
      points.push([point.epochMs, point.value]);
    }
  } catch (err) {
    return { line: Number((err as { lines?: number }).lines ?? 0), status: 400 };
  }
  return { points };
}

function scan(text: string, cuts: number[], maxLineBytes = 1_000_000): Outcome {
  const bytes = Buffer.from(text);
  const points: Array<[number, number]> = [];
  const scanner = new PointScanner('s', { maxLineBytes, timestampRange: RANGE }, (t, v) =>
    points.push([t, v]),
  );
  try {
    let from = 0;
    for (const cut of [...cuts.map((c) => c % (bytes.length + 1))].sort((a, b) => a - b)) {
      scanner.push(bytes.subarray(from, cut));
      from = cut;
    }
    scanner.push(bytes.subarray(from));
    scanner.end();
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    return { line: Number(err.details?.line), status: err.status };
  }
  return { points };
}

const token = fc.constantFrom(
  '1700000000000',
  '0',
  '42',
  '99999999999999999',
  '-5',
  '1.5',
  '-2e3',
  '.5',
  '1e999',
  'NaN',
  'x',
  '',
  ' ',
  '\t',
  ',',
  '"',
  '"7"',
  'é',
);
const line = fc.oneof(
  fc
    .tuple(fc.integer({ min: 0, max: 2e12 }), fc.double({ noNaN: true, noDefaultInfinity: true }))
    .map(([t, v]) => `${t},${v}`),
  fc.array(token, { maxLength: 6 }).map((parts) => parts.join('')),
);
// One line ending per file: the CSV reader locked onto the first one it saw
// and then failed on the other, where the scanner takes LF and CRLF anywhere.
const file = fc
  .tuple(
    fc.boolean(),
    fc.array(line, { maxLength: 30 }),
    fc.constantFrom('\n', '\r\n'),
    fc.boolean(),
  )
  .map(([bom, lines, end, lastNewline]) => {
    const body = lines.map((l) => l + end).join('');
    return (bom ? '\ufeff' : '') + (lastNewline ? body : body.replace(/\r?\n$/, ''));
  });

describe('point scanner', () => {
  it('accepts and rejects exactly what the CSV reader did, cut anywhere', async () => {
    await fc.assert(
      fc.asyncProperty(file, fc.array(fc.nat(), { maxLength: 5 }), async (text, cuts) => {
        const expected = await reference(text);
        const actual = scan(text, cuts);
        if ('points' in expected) {
          expect(actual).to.deep.equal(expected);
        } else {
          expect(actual).to.have.property('status', 400);
          // A quote left open makes the CSV reader run on into the next line; the
          // scanner blames the line that opened it.
          if (!text.includes('"')) expect(actual).to.have.property('line', expected.line);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('gives the reasons of point-line.ts with the line number', () => {
    expect(() => scan('1,1\n\n2,x\n', [])).not.to.throw();
    expect(scan('1,1\n\n2,x\n', [])).to.deep.equal({ line: 3, status: 400 });
    try {
      new PointScanner('temp', { maxLineBytes: 100, timestampRange: RANGE }, () => undefined).push(
        Buffer.from('1,1\n2,3,4\n'),
      );
      expect.fail('no error');
    } catch (err) {
      expect((err as AppError).message).to.equal(
        'part "temp" line 2: expected 2 fields (epoch_ms,value), got 3',
      );
    }
  });

  it('refuses a line longer than the limit before holding more of it', () => {
    const scanner = new PointScanner('s', { maxLineBytes: 16, timestampRange: RANGE }, () => {});
    scanner.push(Buffer.from('1,1\n12345678'));
    expect(() => scanner.push(Buffer.from('901234567'))).to.throw(
      AppError,
      /line 2: longer than 16/,
    );
    expect(scan(`1,${'1'.repeat(16)}\r\n`, [], 18)).to.deep.equal({
      points: [[1, 1111111111111111]],
    });
    expect(scan(`1,${'1'.repeat(17)}\r\n`, [], 18)).to.deep.equal({ line: 1, status: 413 });
  });
});

import { expect } from 'chai';
import fc from 'fast-check';
import { parsePointRecord } from '../../src/ingest/point-line.js';

const range = { minEpochMs: 0, maxEpochMs: 2_000_000_000_000 };

describe('parsePointRecord', () => {
  it('parses integer milliseconds and decimal values', () => {
    expect(parsePointRecord(['1526292559214', '95'], range)).to.deep.equal({
      epochMs: 1526292559214,
      value: 95,
    });
    expect(parsePointRecord(['0', '-1.5e-3'], range)).to.deep.equal({ epochMs: 0, value: -0.0015 });
    expect(parsePointRecord(['1', '.5'], range)).to.deep.equal({ epochMs: 1, value: 0.5 });
    expect(parsePointRecord(['1', '0.000e-999'], range)).to.deep.equal({ epochMs: 1, value: 0 });
    expect(parsePointRecord(['1', '5e-324'], range)).to.deep.equal({ epochMs: 1, value: 5e-324 });
  });

  it('explains every rejection', () => {
    const cases: Array<[string[], RegExp]> = [
      [['1'], /expected 2 fields/],
      [['1', '2', '3'], /expected 2 fields/],
      [['', '1'], /not a non-negative integer/],
      [['-5', '1'], /not a non-negative integer/],
      [['1.5', '1'], /not a non-negative integer/],
      [['0x10', '1'], /not a non-negative integer/],
      [['3000000000000', '1'], /outside the accepted range .*: after its end/],
      [['1', 'NaN'], /not a finite decimal/],
      [['1', 'Infinity'], /not a finite decimal/],
      [['1', '-Infinity'], /not a finite decimal/],
      [['1', '0x1F'], /not a finite decimal/],
      [['1', ''], /not a finite decimal/],
      [['1', '1e999'], /out of the double precision range/],
      [['1', '1e-400'], /out of the double precision range/],
      [['1', '-2.5e-999'], /out of the double precision range/],
      [['1', '1,5'], /not a finite decimal/],
    ];
    for (const [fields, reason] of cases) {
      expect(parsePointRecord(fields, range), fields.join('|')).to.be.a('string').and.match(reason);
    }
  });

  it('names the likely unit mistake of a timestamp outside the range', () => {
    const bounded = { minEpochMs: Date.UTC(2000, 0, 1), maxEpochMs: Date.UTC(2027, 0, 1) };
    const seconds = parsePointRecord(['1700000000', '1'], bounded);
    expect(seconds).to.match(
      /outside the accepted range 946684800000 \(2000-01-01T00:00:00.000Z\) .*: before its start/,
    );
    expect(seconds).to.match(/looks like seconds, not milliseconds$/);
    expect(parsePointRecord(['1700000000000000', '1'], bounded)).to.match(
      /: after its end .*looks like microseconds, not milliseconds$/,
    );
    // Too small or too large to be the other unit: no guess.
    expect(parsePointRecord(['5', '1'], bounded)).to.not.match(/looks like/);
    expect(parsePointRecord(['9999999999999999', '1'], bounded)).to.not.match(/looks like/);
    expect(parsePointRecord(['946684800000', '1'], bounded)).to.deep.equal({
      epochMs: 946684800000,
      value: 1,
    });
  });

  it('round-trips every finite double through its shortest text', () => {
    fc.assert(
      fc.property(
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.nat(2_000_000_000_000),
        (value, ms) => {
          // String(-0) is "0": the device sends text, and that text is what round-trips.
          const parsed = parsePointRecord([String(ms), String(value)], range);
          expect(parsed).to.deep.equal({ epochMs: ms, value: Object.is(value, -0) ? 0 : value });
        },
      ),
    );
  });
});

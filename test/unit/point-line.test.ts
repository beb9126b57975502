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
      [['3000000000000', '1'], /outside the accepted range/],
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

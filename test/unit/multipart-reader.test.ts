import { expect } from 'chai';
import fc from 'fast-check';
import { AppError } from '../../src/http/app-error.js';
import { boundaryOf, parseHeaderValue } from '../../src/ingest/multipart-headers.js';
import { MultipartReader } from '../../src/ingest/multipart-reader.js';

/**
 * The reader alone, in process: every case is fed whole, byte by byte, and in
 * random slices, and must give the same answer each way. Cases are modelled
 * on what other parsers' suites check (busboy, python-multipart, formidable,
 * Go's mime/multipart), written for our rules.
 */
interface Parsed {
  name: string;
  filename: string | undefined;
  data: string;
}

function parseIn(body: Buffer, boundary: string, slices: number[]): Parsed[] {
  const parts: Parsed[] = [];
  const chunks: Buffer[] = [];
  const reader = new MultipartReader(
    boundary,
    {
      partStart: (head) => {
        expect(head.index).to.equal(parts.length + 1);
        parts.push({ name: head.name, filename: head.filename, data: '' });
      },
      partData: (chunk) => chunks.push(Buffer.from(chunk)),
      partEnd: () => {
        parts[parts.length - 1]!.data = Buffer.concat(chunks.splice(0)).toString('latin1');
      },
    },
    { maxParts: 10 },
  );
  let at = 0;
  for (const size of slices) {
    if (at >= body.length) break;
    reader.write(body.subarray(at, at + size));
    at += size;
  }
  if (at < body.length) reader.write(body.subarray(at));
  reader.end();
  return parts;
}

type Outcome = Parsed[] | { code: string; message: string };

function outcome(body: Buffer, boundary: string, slices: number[]): Outcome {
  try {
    return parseIn(body, boundary, slices);
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    return { code: err.code, message: err.message };
  }
}

/** The same outcome whole, byte by byte and in 3-byte slices. */
function parse(text: string | Buffer, boundary = 'sep'): Outcome {
  const body = Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1');
  const whole = outcome(body, boundary, [body.length]);
  const bytes = outcome(body, boundary, Array(body.length).fill(1));
  const threes = outcome(body, boundary, Array(body.length).fill(3));
  const strip = (o: Outcome) => ('code' in o ? o.code : o);
  expect(strip(bytes), 'byte by byte').to.deep.equal(strip(whole));
  expect(strip(threes), 'in 3-byte slices').to.deep.equal(strip(whole));
  return whole;
}

const part = (name: string, data: string, extra = '; filename="f.csv"', nl = '\r\n') =>
  `--sep${nl}Content-Disposition: form-data; name="${name}"${extra}${nl}${nl}${data}${nl}`;
const file = (name: string, data: string, filename: string | undefined = 'f.csv') => ({
  name,
  filename,
  data,
});

function refused(result: Outcome, code = 'malformed_multipart', pattern?: RegExp) {
  expect(result).to.have.property('code', code);
  if (pattern) expect((result as { message: string }).message).to.match(pattern);
}

describe('the multipart reader', () => {
  describe('accepts, storing every part', () => {
    it('a plain two-part body', () => {
      expect(parse(`${part('a', '1,2')}${part('b', '3,4\r\n5,6')}--sep--\r\n`)).to.deep.equal([
        file('a', '1,2'),
        file('b', '3,4\r\n5,6'),
      ]);
    });

    it('data that almost matches the boundary (python-multipart almost_match_boundary)', () => {
      const tricky = '1,2\r\n--se\r\n--sepx\r\n--sep-\r\n\r--sep\r\n-sep\n--sep\r\n3,4';
      expect(parse(`${part('a', tricky, undefined, '\r\n')}--sep--`)).to.deep.equal([
        file('a', tricky),
      ]);
    });

    it('a line starting with --boundary plus more characters is data', () => {
      const data = '1,2\r\n--sepsep\r\n--sep2,3\r\n--sep x\r\n3,4';
      expect(parse(`${part('a', data)}--sep--\r\n`)).to.deep.equal([file('a', data)]);
    });

    it('transport padding after a delimiter, opening, inner and closing (RFC 2046)', () => {
      const body = `--sep \t \r\nContent-Disposition: form-data; name="a"; filename="f.csv"\r\n\r\n1,2\r\n--sep  \r\nContent-Disposition: form-data; name="b"; filename="f.csv"\r\n\r\n3,4\r\n--sep-- \r\n`;
      expect(parse(body)).to.deep.equal([file('a', '1,2'), file('b', '3,4')]);
    });

    it('no newline after the closing delimiter (formidable noTrailing), and a blank epilogue', () => {
      expect(parse(`${part('a', '1,2')}--sep--`)).to.deep.equal([file('a', '1,2')]);
      expect(parse(`${part('a', '1,2')}--sep--\r\n\r\n  \r\n`)).to.deep.equal([file('a', '1,2')]);
    });

    it('one empty line before the first boundary (an empty preamble)', () => {
      expect(parse(`\r\n${part('a', '1,2')}--sep--\r\n`)).to.deep.equal([file('a', '1,2')]);
    });

    it('LF-only line ends throughout, decided by the first boundary line (Go)', () => {
      const body = `${part('a', '1,2\n3,4', undefined, '\n')}${part('b', '5,6', undefined, '\n')}--sep--\n`;
      expect(parse(body)).to.deep.equal([file('a', '1,2\n3,4'), file('b', '5,6')]);
    });

    it('a CR at the end of data in an LF body stays data (the CSV reader drops it)', () => {
      const body = `--sep\nContent-Disposition: form-data; name="a"; filename="f"\n\n1,2\r\n--sep--\n`;
      expect(parse(body)).to.deep.equal([file('a', '1,2\r', 'f')]);
    });

    it('CRLF data inside an LF body and LF data inside a CRLF body', () => {
      expect(parse(`${part('a', '1,2\r\n3,4', undefined, '\n')}--sep--`)).to.deep.equal([
        file('a', '1,2\r\n3,4'),
      ]);
      // `\n--sep` is not a delimiter in a CRLF body: it is data.
      expect(parse(`${part('a', '1,2\n--sep\n3,4')}--sep--`)).to.deep.equal([
        file('a', '1,2\n--sep\n3,4'),
      ]);
    });

    it('filename="" is a file part with an empty filename', () => {
      expect(parse(`${part('a', '1,2', '; filename=""')}--sep--`)).to.deep.equal([
        file('a', '1,2', ''),
      ]);
    });

    it('an unquoted filename with a space, and unquoted names', () => {
      expect(
        parse(
          `--sep\r\nContent-Disposition: form-data; name=a; filename=my file.csv\r\n\r\n1,2\r\n--sep--`,
        ),
      ).to.deep.equal([file('a', '1,2', 'my file.csv')]);
    });

    it('an unescaped quote inside a quoted filename (old browsers), escapes, backslashes', () => {
      expect(parse(`${part('a', '1', '; filename="my"file.csv"')}--sep--`)).to.deep.equal([
        file('a', '1', 'my"file.csv'),
      ]);
      expect(parse(`${part('a', '1', '; filename="x\\"y\\\\z"')}--sep--`)).to.deep.equal([
        file('a', '1', 'x"y\\z'),
      ]);
      expect(parse(`${part('a', '1', '; filename="C:\\dir\\f.csv"')}--sep--`)).to.deep.equal([
        file('a', '1', 'C:\\dir\\f.csv'),
      ]);
    });

    it('filename* (RFC 8187) and UTF-8 filenames', () => {
      expect(parse(`${part('a', '1', "; filename*=UTF-8''na%C3%AFve.csv")}--sep--`)).to.deep.equal([
        file('a', '1', 'naïve.csv'),
      ]);
      const utf8 = Buffer.from(`${part('a', '1', '; filename="naïve.csv"')}--sep--`, 'utf8');
      expect(parse(utf8)).to.deep.equal([file('a', '1', 'naïve.csv')]);
    });

    it('case-insensitive header and parameter names, folded header lines, other headers', () => {
      const body = `--sep\r\ncontent-disposition: FORM-DATA;\r\n\tNAME="a";  FileName="f.csv"\r\nContent-Type: text/csv; charset=utf-8\r\nContent-Transfer-Encoding: BINARY\r\nX-Other: y\r\n\r\n1,2\r\n--sep--`;
      expect(parse(body)).to.deep.equal([file('a', '1,2')]);
    });

    it('an empty part (the ingest refuses it as empty_series, not the reader)', () => {
      expect(parse(`${part('a', '')}--sep--`)).to.deep.equal([file('a', '')]);
    });

    it('a body with no part at all (the ingest answers empty_upload)', () => {
      expect(parse('--sep--\r\n')).to.deep.equal([]);
    });
  });

  describe('refuses the whole body', () => {
    it('an unreadable Content-Disposition', () => {
      refused(parse(`${part('a', '1', '; filename="f.csv" junk')}--sep--`), undefined, /junk/);
      refused(parse(`${part('a', '1', '; filename="f.csv')}--sep--`), undefined, /unterminated/);
      refused(parse(`${part('a', '1', '; filename')}--sep--`), undefined, /no value/);
      refused(parse(`${part('a', '1', '; name="b"')}--sep--`), undefined, /twice/);
    });

    it('a Content-Disposition that is not form-data, or has no name', () => {
      const cd = (value: string) =>
        `--sep\r\nContent-Disposition: ${value}\r\n\r\n1,2\r\n--sep--\r\n`;
      refused(parse(cd('name="a"; filename="f"')));
      refused(parse(cd('attachment; name="a"; filename="f"')), undefined, /not form-data/);
      refused(parse(cd('form-data; filename="f"')), undefined, /no name/);
      refused(parse(cd(`form-data; name*=UTF-8''a; filename="f"`)), undefined, /name\*/);
      refused(
        parse(`--sep\r\nContent-Type: text/csv\r\n\r\n1,2\r\n--sep--\r\n`),
        undefined,
        /no Content-Disposition/,
      );
    });

    it('a form field (no filename)', () => {
      refused(parse(`${part('a', '1', '')}--sep--`), 'unexpected_field');
    });

    it('Content-Transfer-Encoding base64 and quoted-printable', () => {
      for (const encoding of ['base64', 'quoted-printable', 'x-gzip']) {
        const body = `--sep\r\nContent-Disposition: form-data; name="a"; filename="f"\r\nContent-Transfer-Encoding: ${encoding}\r\n\r\nMSwyCg==\r\n--sep--`;
        refused(parse(body), 'unsupported_transfer_encoding', new RegExp(encoding));
      }
    });

    it('a nested multipart part', () => {
      const body = `--sep\r\nContent-Disposition: form-data; name="a"; filename="f"\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x--\r\n--sep--`;
      refused(parse(body), undefined, /itself multipart/);
    });

    it('a preamble, and text after the closing boundary', () => {
      refused(parse(`hello\r\n${part('a', '1')}--sep--`), undefined, /no preamble/);
      refused(parse(`${part('a', '1')}--sep--\r\n${part('b', '2')}--sep--`), undefined, /after/);
      refused(parse(`${part('a', '1')}--sep--x`), undefined, /after the closing/);
    });

    it('a body that ends early: in headers, in data, inside the closing delimiter', () => {
      refused(parse(''), undefined, /does not start/);
      refused(parse('--se'), undefined, /does not start/);
      refused(parse('--sep\r\nContent-Disposition: form-data; name="a"'), undefined, /headers/);
      refused(parse(`${part('a', '1,2')}`), undefined, /closing boundary/);
      refused(parse(`${part('a', '1,2')}--sep-`), undefined, /closing boundary/);
      refused(parse(`${part('a', '1,2')}--sep`), undefined, /closing boundary/);
      refused(parse(`${part('a', '1,2')}--sep\r\n`), undefined, /headers/);
    });

    it('a closing boundary right after the headers (busboy)', () => {
      refused(
        parse('--sep\r\nContent-Disposition: form-data; name="a"; filename="f"\r\n\r\n--sep--'),
      );
    });

    it('mixed line ends where they matter', () => {
      refused(
        parse(`--sep\r\nContent-Disposition: form-data; name="a"; filename="f"\n\r\n1\r\n--sep--`),
        undefined,
        /bare LF/,
      );
      refused(parse(`${part('a', '1')}--sep\n${part('b', '2').slice(7)}--sep--`), undefined, /LF/);
      refused(parse(`${part('a', '1')}--sep\rx`), undefined, /CR without LF/);
    });

    it('bad header lines: a blank first line, no colon, empty name, control characters, twice', () => {
      refused(
        parse(
          `--sep\r\n Content-Disposition: form-data; name="a"; filename="f"\r\n\r\n1\r\n--sep--`,
        ),
      );
      refused(parse(`--sep\r\nno colon here\r\n\r\n1\r\n--sep--`), undefined, /Name: value/);
      refused(
        parse(`${part('a', '1', '; filename="f"\r\n: foo')}--sep--`),
        undefined,
        /Name: value/,
      );
      refused(parse(`${part('a', '1', '; filename="f\0"')}--sep--`), undefined, /control/);
      refused(
        parse(
          `${part('a', '1', '; filename="f"\r\nContent-Disposition: form-data; name="b"; filename="g"')}--sep--`,
        ),
        undefined,
        /twice/,
      );
    });

    it('part headers over 8 KiB, too many parts, too much transport padding', () => {
      refused(parse(`--sep\r\nX: ${'a'.repeat(9000)}\r\n\r\n1\r\n--sep--`), undefined, /8192/);
      const eleven = Array.from({ length: 11 }, (_, i) => part(`p${i}`, '1')).join('');
      refused(parse(`${eleven}--sep--`), 'too_many_parts');
      refused(parse(`${part('a', '1')}--sep${' '.repeat(65)}\r\n`), undefined, /blanks/);
    });
  });

  describe('the request Content-Type', () => {
    it('accepts quoted and unquoted boundaries, with / = : ? and inner spaces when quoted', () => {
      expect(boundaryOf('multipart/form-data; boundary=abc')).to.equal('abc');
      expect(boundaryOf('Multipart/Form-Data;boundary="a b/c"')).to.equal('a b/c');
      expect(boundaryOf('multipart/form-data; boundary=a/b=c:d?e; charset=utf-8')).to.equal(
        'a/b=c:d?e',
      );
      expect(boundaryOf('multipart/form-data; charset=utf-8; BOUNDARY=----x')).to.equal('----x');
    });

    it('refuses a missing, empty, too long, doubled or invalid boundary', () => {
      for (const header of [
        'multipart/form-data',
        'multipart/form-data; boundary=',
        'multipart/form-data; boundary=""',
        `multipart/form-data; boundary=${'a'.repeat(71)}`,
        'multipart/form-data; boundary=a; boundary=b',
        'multipart/form-data; boundary="a "',
        'multipart/form-data; boundary=a\u00e9',
        'multipart/form-data; boundary="a',
        'text/plain; boundary=a',
      ]) {
        expect(() => boundaryOf(header), header).to.throw();
      }
    });

    it('header values: empty parameters are harmless, junk is not', () => {
      expect([...parseHeaderValue('form-data;; name="a";').params]).to.deep.equal([['name', 'a']]);
      expect(() => parseHeaderValue('form-data; name="a" b')).to.throw(/unexpected/);
      expect(() => parseHeaderValue('form-data; name=a"b')).to.throw(/quote/);
    });
  });

  it('any valid body, sliced anyhow, gives back exactly its parts (property)', () => {
    const name = fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/);
    const data = fc.array(
      fc.constantFrom('1,2', '--sep', '--se', '\r', '\n', '\r\n', '-', 'x', ' '),
      {
        maxLength: 12,
      },
    );
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            name,
            data.map((d) => d.join('')),
          ),
          { minLength: 1, maxLength: 5 },
        ),
        fc.constantFrom('\r\n', '\n'),
        fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 50 }),
        fc.constantFrom('', ' ', '\t '),
        (parts, nl, slices, padding) => {
          // No part's data may contain what could be a delimiter (conservatively).
          fc.pre(parts.every(([, d]) => !/\n--sep[ \t]*[\r\n-]/.test(`${nl}${d}${nl}`)));
          const body =
            parts
              .map(
                ([n, d]) =>
                  `--sep${padding}${nl}Content-Disposition: form-data; name="${n}"; filename="f"${nl}${nl}${d}${nl}`,
              )
              .join('') + `--sep--${padding}${nl}`;
          const result = outcome(Buffer.from(body, 'latin1'), 'sep', slices);
          expect(result).to.deep.equal(parts.map(([n, d]) => file(n, d, 'f')));
        },
      ),
      { numRuns: 300 },
    );
  });
});

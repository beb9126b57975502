import { expect } from 'chai';
import { DeviceClient, type Answer, type TestDevice } from '../support/device-client.js';
import type { FleetgateProcess } from '../support/fleetgate-process.js';
import {
  countAllRows,
  expectJsonError,
  startWithBoundDevice,
  stopBoundDevice,
  storedPoints,
} from '../support/stored-points.js';
import type { TestDatabase } from '../support/test-database.js';

/**
 * Issue 9 §2: an upload answered 200 must have stored every part that was
 * sent. Bodies that foreign clients send, modelled on the cases other
 * parsers' suites check (busboy, python-multipart, formidable, Go's
 * mime/multipart). Each body has a good part next to the odd one: busboy
 * answered 200 and dropped the odd part (or the rest of it); now every body
 * is either stored whole or refused with a 4xx that stores nothing.
 */
describe('multipart bodies from foreign clients: all parts stored, or none', function () {
  this.timeout(180_000);
  let db: TestDatabase;
  let server: FleetgateProcess;
  let device: TestDevice;
  let client: DeviceClient;
  let serial = 0;
  const NOW = Date.now() - 60_000;

  before(
    async () =>
      ({ db, server, device, client } = await startWithBoundDevice({
        FLEETGATE_UPLOADS_PER_DEVICE: '0',
      })),
  );
  after(() => stopBoundDevice({ db, server, client }));

  /** Two fresh series names and their points. */
  function fixture() {
    const n = ++serial;
    const a = `good${n}`;
    const b = `odd${n}`;
    const ts = NOW - n * 1000;
    return {
      a,
      b,
      aLines: `${ts},1\r\n${ts + 1},2\r\n`,
      bLines: `${ts},3\r\n${ts + 1},4\r\n`,
      aPoints: [
        [ts, 1],
        [ts + 1, 2],
      ],
      bPoints: [
        [ts, 3],
        [ts + 1, 4],
      ],
    };
  }

  const partOf = (name: string, lines: string, disposition?: string, b = 'sep') =>
    `--${b}\r\nContent-Disposition: ${disposition ?? `form-data; name="${name}"; filename="f.csv"`}\r\nContent-Type: text/csv\r\n\r\n${lines}\r\n`;

  async function post(body: string, contentType = 'multipart/form-data; boundary=sep') {
    return client.send('POST', Buffer.from(body, 'latin1'), { 'content-type': contentType });
  }

  async function expectRefusedNothingStored(
    answer: Answer,
    names: string[],
    code: string,
    before: Awaited<ReturnType<typeof countAllRows>>,
    message?: RegExp,
  ) {
    expectJsonError(answer, 400, code);
    if (message) expect(answer.json.error).to.match(message);
    for (const name of names) {
      expect(await storedPoints(db, server, device, name), name).to.deep.equal([]);
    }
    if (before) expect(await countAllRows(db)).to.deep.equal(before);
  }

  async function expectAllStored(answer: Answer, series: Record<string, number[][]>) {
    expect(answer.status, answer.text).to.equal(200);
    for (const [name, points] of Object.entries(series)) {
      expect(await storedPoints(db, server, device, name), name).to.deep.equal(points);
      expect(answer.json.series[name], answer.text).to.deep.equal({
        stored: points.length,
        duplicates: 0,
      });
    }
  }

  describe('an odd Content-Disposition is read exactly or refused, never skipped', () => {
    it('an unquoted filename with a space is read (the filename is informative)', async () => {
      const f = fixture();
      const answer = await post(
        `${partOf(f.a, f.aLines)}${partOf(f.b, f.bLines, `form-data; name=${f.b}; filename=my file.csv`)}--sep--\r\n`,
      );
      await expectAllStored(answer, { [f.a]: f.aPoints, [f.b]: f.bPoints });
    });

    it('an unescaped quote inside a quoted filename, as old browsers send, is read', async () => {
      const f = fixture();
      const answer = await post(
        `${partOf(f.a, f.aLines)}${partOf(f.b, f.bLines, `form-data; name="${f.b}"; filename="my"file.csv"`)}--sep--\r\n`,
      );
      await expectAllStored(answer, { [f.a]: f.aPoints, [f.b]: f.bPoints });
    });

    for (const [what, disposition, message] of [
      ['junk after the parameters', 'form-data; name="%"; filename="f.csv" junk', /junk/],
      ['a missing form-data token', 'name="%"; filename="f.csv"', /Content-Disposition/],
      ['attachment', 'attachment; name="%"; filename="f.csv"', /not form-data/],
      ['no name', 'form-data; filename="f.csv"', /no name/],
    ] as const) {
      it(`${what} refuses the whole upload`, async () => {
        const f = fixture();
        const before = await countAllRows(db);
        const answer = await post(
          `${partOf(f.a, f.aLines)}${partOf(f.b, f.bLines, disposition.replace('%', f.b))}--sep--\r\n`,
        );
        await expectRefusedNothingStored(
          answer,
          [f.a, f.b],
          'malformed_multipart',
          before,
          message,
        );
        expect(answer.json.details).to.deep.equal({ part: 2 });
      });
    }

    it('no Content-Disposition at all refuses the whole upload', async () => {
      const f = fixture();
      const before = await countAllRows(db);
      const answer = await post(
        `${partOf(f.a, f.aLines)}--sep\r\nContent-Type: text/csv\r\n\r\n${f.bLines}\r\n--sep--\r\n`,
      );
      await expectRefusedNothingStored(
        answer,
        [f.a],
        'malformed_multipart',
        before,
        /part 2 .*no Content-Disposition/,
      );
    });
  });

  describe('delimiters', () => {
    it('transport padding after a delimiter (RFC 2046) is accepted and the next part stored', async () => {
      const f = fixture();
      const answer = await post(
        `--sep \r\n${partOf(f.a, f.aLines).slice(7)}--sep \t \r\n${partOf(f.b, f.bLines).slice(7)}--sep-- \r\n`,
      );
      await expectAllStored(answer, { [f.a]: f.aPoints, [f.b]: f.bPoints });
    });

    it('a data line starting with --boundary plus more is data: the line is refused, not the rest dropped', async () => {
      const f = fixture();
      const before = await countAllRows(db);
      const answer = await post(
        `${partOf(f.a, f.aLines)}${partOf(f.b, `${f.bLines}--sepXYZ\r\n${NOW},9\r\n`)}--sep--\r\n`,
      );
      await expectRefusedNothingStored(answer, [f.a, f.b], 'invalid_line', before);
      expect(answer.json.details).to.include({ part: f.b, line: 3 });
    });

    it('a boundary that is a prefix of a data line, with padding and junk, is data too', async () => {
      const f = fixture();
      const before = await countAllRows(db);
      const answer = await post(
        `${partOf(f.a, f.aLines)}${partOf(f.b, `${f.bLines}--sep x\r\n`)}--sep--\r\n`,
      );
      await expectRefusedNothingStored(answer, [f.a, f.b], 'invalid_line', before);
    });

    it('a part hidden in a preamble refuses the upload', async () => {
      const f = fixture();
      const before = await countAllRows(db);
      const answer = await post(
        `-sep\r\n${partOf(f.b, f.bLines).slice(7)}${partOf(f.a, f.aLines)}--sep--\r\n`,
      );
      await expectRefusedNothingStored(
        answer,
        [f.a, f.b],
        'malformed_multipart',
        before,
        /preamble/,
      );
    });

    it('a part after the closing delimiter (in the epilogue) refuses the upload', async () => {
      const f = fixture();
      const before = await countAllRows(db);
      const answer = await post(
        `${partOf(f.a, f.aLines)}--sep--\r\n${partOf(f.b, f.bLines)}--sep--\r\n`,
      );
      await expectRefusedNothingStored(
        answer,
        [f.a, f.b],
        'malformed_multipart',
        before,
        /after the closing boundary/,
      );
    });
  });

  describe('transfer encodings are refused clearly, not stored as they come', () => {
    for (const [encoding, content] of [
      ['base64', (lines: string) => Buffer.from(lines).toString('base64')],
      // quoted-printable of plain ASCII lines is the lines themselves: still refused.
      ['quoted-printable', (lines: string) => lines],
    ] as const) {
      it(`Content-Transfer-Encoding: ${encoding}`, async () => {
        const f = fixture();
        const before = await countAllRows(db);
        const answer = await post(
          `${partOf(f.a, f.aLines)}--sep\r\nContent-Disposition: form-data; name="${f.b}"; filename="f.csv"\r\nContent-Transfer-Encoding: ${encoding}\r\n\r\n${content(f.bLines)}\r\n--sep--\r\n`,
        );
        await expectRefusedNothingStored(
          answer,
          [f.a, f.b],
          'unsupported_transfer_encoding',
          before,
          new RegExp(`part 2: Content-Transfer-Encoding "${encoding}" is not supported`),
        );
      });
    }
  });

  describe('decided: accepted because nothing can be lost', () => {
    it('filename="" is a file part', async () => {
      const f = fixture();
      const answer = await post(
        `${partOf(f.a, f.aLines)}${partOf(f.b, f.bLines, `form-data; name="${f.b}"; filename=""`)}--sep--\r\n`,
      );
      await expectAllStored(answer, { [f.a]: f.aPoints, [f.b]: f.bPoints });
    });

    it('LF-only line ends in the body and the part headers', async () => {
      const f = fixture();
      const lf = (s: string) => s.replace(/\r\n/g, '\n');
      const answer = await post(lf(`${partOf(f.a, f.aLines)}${partOf(f.b, f.bLines)}--sep--\r\n`));
      await expectAllStored(answer, { [f.a]: f.aPoints, [f.b]: f.bPoints });
    });

    it('an unquoted boundary containing / = and :', async () => {
      const f = fixture();
      const b = 'a/b=c:d';
      const answer = await post(
        `${partOf(f.a, f.aLines, undefined, b)}${partOf(f.b, f.bLines, undefined, b)}--${b}--\r\n`,
        `multipart/form-data; boundary=${b}`,
      );
      await expectAllStored(answer, { [f.a]: f.aPoints, [f.b]: f.bPoints });
    });
  });

  describe('decided: refused because a part could be lost', () => {
    it('a body whose boundary lines mix CRLF and bare LF', async () => {
      const f = fixture();
      const before = await countAllRows(db);
      const answer = await post(
        `${partOf(f.a, f.aLines)}--sep\n${partOf(f.b, f.bLines).slice(7)}--sep--\r\n`,
      );
      await expectRefusedNothingStored(answer, [f.a, f.b], 'malformed_multipart', before, /LF/);
    });

    it('a body cut inside the closing delimiter', async () => {
      const f = fixture();
      const before = await countAllRows(db);
      const answer = await post(`${partOf(f.a, f.aLines)}${partOf(f.b, f.bLines)}--sep-`);
      await expectRefusedNothingStored(
        answer,
        [f.a, f.b],
        'malformed_multipart',
        before,
        /before the closing boundary/,
      );
    });
  });
});

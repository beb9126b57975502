import { expect } from 'chai';
import { buildMultipart, newDevice } from '../support/device-client.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import {
  PROTOCOL_BODY,
  PROTOCOL_CONTENT_TYPE,
  PROTOCOL_POINTS,
} from '../support/protocol-example.js';
import { countAllRows, storedPoints } from '../support/stored-points.js';

describe('uploading time series', () => {
  const fx = useFixture();

  async function exported(fingerprint: string, series: string) {
    const result = await fx().server.cli(['export', fingerprint, series]);
    return { ...result, lines: result.stdout.split('\n').filter(Boolean) };
  }

  it('stores the exact upload from the protocol document and exports it back', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('proto'));
    const answer = await client.send('POST', PROTOCOL_BODY, {
      'content-type': PROTOCOL_CONTENT_TYPE,
    });
    expect(answer.status).to.equal(200);
    expect(answer.json).to.deep.equal({
      series: { hr_measurement: { stored: 7, duplicates: 0 } },
      stored: 7,
      duplicates: 0,
    });
    const out = await exported(device.fingerprint, 'hr_measurement');
    expect(out.code).to.equal(0);
    expect(out.lines).to.deep.equal(PROTOCOL_POINTS);
  });

  it('stores nothing twice when an upload is retried', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('retry'));
    const first = await client.send('POST', PROTOCOL_BODY, {
      'content-type': PROTOCOL_CONTENT_TYPE,
    });
    const retry = await client.send('POST', PROTOCOL_BODY, {
      'content-type': PROTOCOL_CONTENT_TYPE,
    });
    expect(first.json.stored).to.equal(7);
    expect(retry.status).to.equal(200);
    expect(retry.json).to.deep.equal({
      series: { hr_measurement: { stored: 0, duplicates: 7 } },
      stored: 0,
      duplicates: 7,
    });
    expect((await exported(device.fingerprint, 'hr_measurement')).lines).to.have.length(7);
  });

  it('stores several series in one upload and counts overlapping retries per series', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('multi'));
    const first = await client.upload([
      { name: 'temp', content: '1700000000000,21.5\n1700000001000,21.25\n' },
      { name: 'humidity', content: '1700000000000,40\n' },
    ]);
    expect(first.status).to.equal(200);
    const second = await client.upload([
      { name: 'temp', content: '1700000001000,99\n1700000002000,-0.000125\n' },
      { name: 'temp', content: '1700000003000,1e3\n' },
    ]);
    expect(second.json.series).to.deep.equal({ temp: { stored: 2, duplicates: 1 } });
    // The first value stored for a timestamp wins; a retry never overwrites it.
    expect((await exported(device.fingerprint, 'temp')).lines).to.deep.equal([
      '1700000000000,21.5',
      '1700000001000,21.25',
      '1700000002000,-0.000125',
      '1700000003000,1000',
    ]);
    expect((await exported(device.fingerprint, 'humidity')).lines).to.deep.equal([
      '1700000000000,40',
    ]);
  });

  it('keeps the first of duplicate timestamps within one file and counts the rest', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('dupes'));
    const answer = await client.upload([
      { name: 's', content: '1700000000000,1\n1700000000000,2\n' },
    ]);
    expect(answer.json.series.s).to.deep.equal({ stored: 1, duplicates: 1 });
    expect((await exported(device.fingerprint, 's')).lines).to.deep.equal(['1700000000000,1']);
  });

  it('accepts CRLF line ends, a UTF-8 BOM, blank lines and spaces around fields', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('crlf'));
    const content = Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      Buffer.from('1700000000000,1\r\n\r\n1700000001000 , 2.5\r\n1700000002000,3'),
    ]);
    const answer = await client.upload([{ name: 'crlf', content }]);
    expect(answer.status).to.equal(200);
    expect(answer.json.stored).to.equal(3);
    expect((await exported(device.fingerprint, 'crlf')).lines).to.deep.equal([
      '1700000000000,1',
      '1700000001000,2.5',
      '1700000002000,3',
    ]);
  });

  const badLines: Array<[string, string]> = [
    ['1700000002000,abc', 'not a finite decimal'],
    ['1700000002000,NaN', 'not a finite decimal'],
    ['1700000002000,Infinity', 'not a finite decimal'],
    ['1700000002000,1e999', 'out of the double precision range'],
    ['1700000002000,', 'not a finite decimal'],
    ['1700000002000', 'expected 2 fields'],
    ['1700000002000,1,2', 'expected 2 fields'],
    ['-1700000002000,1', 'not a non-negative integer'],
    ['1700000002000.5,1', 'not a non-negative integer'],
    ['99999999999999,1', 'outside the accepted range'],
  ];
  for (const [line, reason] of badLines) {
    it(`rejects the whole upload for the line "${line}" with 400 naming part and line`, async () => {
      const { device, client } = await fx().boundDevice(uniqueName('bad'));
      const answer = await client.upload([
        { name: 'good', content: '1700000000000,1\n1700000001000,2\n' },
        { name: 'broken', content: `1700000000000,1\n1700000001000,2\n${line}\n1700000003000,4\n` },
      ]);
      expect(answer.status).to.equal(400);
      expect(answer.json.code).to.equal('invalid_line');
      expect(answer.json.details).to.include({ part: 'broken', line: 3 });
      expect(answer.json.error).to.contain('part "broken" line 3').and.to.contain(reason);
      // Nothing of the request was stored, not even the valid part before it.
      const good = await exported(device.fingerprint, 'good');
      expect(good.code).to.not.equal(0);
      expect(good.stderr).to.contain('no series good');
    });
  }

  it('rejects an unterminated quote with 400 and stores nothing', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('quote'));
    const answer = await client.upload([
      { name: 'q', content: '1700000000000,1\n"1700000001000,2\n1700000002000,3\n' },
    ]);
    expect(answer.status).to.equal(400);
    expect(answer.json.code).to.equal('invalid_line');
    expect(answer.json.error).to.contain('part "q"').and.to.contain('Quote Not Closed');
    expect(await storedPoints(fx().db, fx().server, device, 'q')).to.deep.equal([]);
  });

  it('refuses an unbound certificate with 403 and stores nothing', async () => {
    const device = newDevice();
    const before = await countAllRows(fx().db);
    const answer = await fx()
      .client(device)
      .upload([{ name: 's', content: '1700000000000,1\n' }]);
    expect(answer.status).to.equal(403);
    expect(answer.json.code).to.equal('certificate_not_bound');
    // No device was made up for the certificate, so no series or point can hang off one.
    const exportAttempt = await fx().server.cli(['export', device.fingerprint, 's']);
    expect(exportAttempt.code).to.not.equal(0);
    expect(exportAttempt.stderr).to.contain('no device with certificate');
    expect(await countAllRows(fx().db)).to.deep.equal(before);
  });

  it('refuses an upload without a client certificate with 401', async () => {
    const answer = await fx()
      .client(null)
      .upload([{ name: 's', content: '1700000000000,1\n' }]);
    expect(answer.status).to.equal(401);
  });

  it('answers 415 for a body that is neither the bind JSON nor multipart', async () => {
    const { client } = await fx().boundDevice(uniqueName('ctype'));
    for (const type of [
      'text/csv',
      'application/x-www-form-urlencoded',
      'application/octet-stream',
    ]) {
      const answer = await client.send('POST', '1700000000000,1\n', { 'content-type': type });
      expect(answer.status, type).to.equal(415);
      expect(answer.json.code).to.equal('unsupported_media_type');
    }
    const none = await client.send('POST', '1700000000000,1\n');
    expect(none.status).to.equal(415);
  });

  it('answers 400 for an empty upload, an empty part and a form field instead of a file', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('empty'));
    const empty = buildMultipart([]);
    const a = await client.send('POST', empty.body, { 'content-type': empty.contentType });
    expect(a.status).to.equal(400);
    expect(a.json.code).to.equal('empty_upload');
    const b = await client.upload([{ name: 's', content: '' }]);
    expect(b.status).to.equal(400);
    expect(b.json.code).to.equal('empty_series');
    const field =
      '--xx\r\nContent-Disposition: form-data; name="s"\r\n\r\n1700000000000,1\r\n--xx--\r\n';
    const c = await client.send('POST', field, {
      'content-type': 'multipart/form-data; boundary=xx',
    });
    expect(c.status).to.equal(400);
    expect(c.json.code).to.equal('unexpected_field');
    const noBoundary = await client.send('POST', 'x', { 'content-type': 'multipart/form-data' });
    expect(noBoundary.status).to.equal(400);
    expect(noBoundary.json.code).to.equal('malformed_multipart');
    // The form field carried a valid line: it was not stored either.
    expect(await storedPoints(fx().db, fx().server, device, 's')).to.deep.equal([]);
  });

  it('answers 400 for an invalid series name', async () => {
    const { client } = await fx().boundDevice(uniqueName('names'));
    for (const name of ['', ' spaced', 'semi;colon', 'x'.repeat(129)]) {
      const answer = await client.upload([{ name, content: '1700000000000,1\n' }]);
      expect(answer.status, JSON.stringify(name)).to.equal(400);
      expect(answer.json.code).to.equal('invalid_series_name');
    }
  });

  it('answers 405 for other methods and 404 with JSON for unknown paths', async () => {
    const client = fx().client(newDevice());
    const put = await client.send('PUT', '{}', { 'content-type': 'application/json' });
    expect(put.status).to.equal(405);
    expect(put.headers.allow).to.contain('POST');
    const unknown = await client.send(
      'POST',
      '{}',
      { 'content-type': 'application/json' },
      '/nope',
    );
    expect(unknown.status).to.equal(404);
    expect(unknown.json.code).to.equal('not_found');
  });
});

import { Readable } from 'node:stream';
import { expect } from 'chai';
import { buildMultipart } from '../support/device-client.js';
import { useFixture, uniqueName } from '../support/fixture.js';

/** Small limits, so that going over them is cheap to test. */
const LIMITS = {
  FLEETGATE_MAX_UPLOAD_BYTES: String(64 * 1024),
  FLEETGATE_MAX_PARTS: '3',
  FLEETGATE_MAX_LINE_BYTES: '64',
  FLEETGATE_MAX_JSON_BYTES: '256',
};

function lines(count: number, start = 1_700_000_000_000): string {
  let text = '';
  for (let i = 0; i < count; i++) text += `${start + i},${i}\n`;
  return text;
}

describe('upload limits', () => {
  const fx = useFixture(LIMITS);

  async function nothingStored(fingerprint: string, series: string) {
    const result = await fx().server.cli(['export', fingerprint, series]);
    expect(result.code, result.stdout).to.not.equal(0);
    expect(result.stderr).to.contain(`no series ${series}`);
  }

  it('answers 413 for a file over the size limit and stores nothing', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('big'));
    const answer = await client.upload([{ name: 'big', content: lines(5000) }]);
    expect(answer.status).to.equal(413);
    expect(answer.json).to.include({ code: 'upload_too_large' });
    expect(answer.json.details.limit).to.equal(64 * 1024);
    await nothingStored(device.fingerprint, 'big');
  });

  it('answers 413 for a chunked upload that grows over the limit mid-stream', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('chunked'));
    const { body, contentType } = buildMultipart([
      { name: 'early', content: lines(100) },
      { name: 'late', content: lines(5000, 1_710_000_000_000) },
    ]);
    // No Content-Length: the server only finds out while reading.
    const stream = Readable.from(
      (function* () {
        for (let i = 0; i < body.length; i += 4096) yield body.subarray(i, i + 4096);
      })(),
    );
    const answer = await client.send('POST', stream, { 'content-type': contentType });
    expect(answer.status).to.equal(413);
    await nothingStored(device.fingerprint, 'early');
  });

  it('answers 413 for more parts than allowed and stores nothing', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('parts'));
    const parts = ['a', 'b', 'c', 'd'].map((name) => ({ name, content: lines(2) }));
    const answer = await client.upload(parts);
    expect(answer.status).to.equal(413);
    expect(answer.json.code).to.equal('too_many_parts');
    await nothingStored(device.fingerprint, 'a');
  });

  it('answers 413 for a line over the line length limit, naming part and line', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('line'));
    const content = `${lines(2)}1700000009000,${'1'.repeat(200)}\n`;
    const answer = await client.upload([{ name: 'long', content }]);
    expect(answer.status).to.equal(413);
    expect(answer.json.code).to.equal('line_too_long');
    expect(answer.json.details).to.include({ part: 'long', limit: 64 });
    await nothingStored(device.fingerprint, 'long');
  });

  it('answers 413 for a bind body over its limit', async () => {
    const client = fx().client(null);
    const { device } = await fx().boundDevice(uniqueName('json'));
    const withCert = fx().client(device);
    const answer = await withCert.send('POST', JSON.stringify({ PSK: 'x'.repeat(1000) }), {
      'content-type': 'application/json',
    });
    expect(answer.status).to.equal(413);
    expect(answer.json.code).to.equal('body_too_large');
    await client.close();
  });

  it('keeps serving after every refusal', async () => {
    const { client } = await fx().boundDevice(uniqueName('alive'));
    const answer = await client.upload([{ name: 'ok', content: lines(10) }]);
    expect(answer.status).to.equal(200);
    expect(answer.json.stored).to.equal(10);
  });
});

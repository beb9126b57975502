import { expect } from 'chai';
import { DeviceClient, newDevice, type TestDevice } from '../support/device-client.js';
import { useFleetgateBehindNginx } from '../support/nginx-suite.js';
import { overMutualTls, rawRequest, writeUntilAnswered } from './raw-http.js';

const LIMIT = 4 * 1024 * 1024;
const BOUNDARY = 'fgboundary';

const csvLines = (count: number, from = 1_700_000_000_000) =>
  Array.from({ length: count }, (_, i) => `${from + i},${i}\n`).join('');

const partHead = (name: string) =>
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"; filename="${name}.csv"\r\n\r\n`;

describe('behind nginx: large uploads stream to the app and meet its limits', function () {
  this.timeout(180_000);
  const front = useFleetgateBehindNginx({
    FLEETGATE_MAX_UPLOAD_BYTES: String(LIMIT),
    FLEETGATE_MAX_PARTS: '3',
  });
  let device: TestDevice;

  before(async () => {
    await front.app.cli(['identity', 'create', 'acme']);
    const psk = (await front.app.cli(['psk', 'issue', 'acme'])).stdout.trim();
    device = newDevice();
    const client = new DeviceClient(front.nginx, device);
    expect((await client.bind(psk)).status).to.equal(200);
    await client.close();
  });

  const connect = () => overMutualTls(front.nginx.port, front.nginx.caPem, device);
  const head = (extra: string[]) => [
    'POST /device_endpoint HTTP/1.1',
    'Host: localhost',
    `Content-Type: multipart/form-data; boundary=${BOUNDARY}`,
    ...extra,
  ];
  const stored = async (series: string) => {
    const exported = await front.app.cli(['export', device.fingerprint, series]);
    return exported.code === 0 ? exported.stdout.split('\n').filter(Boolean).length : 0;
  };

  it('streams a 2.5 MB upload to the app without nginx spooling it to disk', async () => {
    const client = new DeviceClient(front.nginx, device);
    const content = csvLines(120_000);
    expect(content.length).to.be.greaterThan(2_000_000);
    const answer = await client.upload([{ name: 'bulk', content }]);
    await client.close();
    expect(answer.status, answer.text).to.equal(200);
    expect(answer.json).to.include({ stored: 120_000 });
    expect(await stored('bulk')).to.equal(120_000);
    expect(front.nginx.spooledBodies()).to.deep.equal([]);
    expect(front.nginx.errorLog()).to.not.match(/buffered to a temporary file/);
  });

  it('lets the app answer while the body is still arriving (no request buffering)', async () => {
    const total = 3 * 1024 * 1024;
    const start = Buffer.from(`${partHead('early')}not-a-timestamp,1\n`);
    // Only the first 256 KB are ever sent: a buffering proxy would wait for the rest.
    const answer = await rawRequest(connect(), head([`Content-Length: ${total}`]), (socket) => {
      socket.write(start);
      return writeUntilAnswered(socket, () => false, 256 * 1024, Buffer.from(csvLines(20_000)));
    });
    expect(answer.status).to.equal(400);
    expect(answer.json.code).to.equal('invalid_line');
    expect(await stored('early')).to.equal(0);
  });

  it('refuses a declared body over the limit with 413 before reading it', async () => {
    const answer = await rawRequest(connect(), head([`Content-Length: ${LIMIT + 1}`]));
    expect(answer.status).to.equal(413);
    expect(answer.json).to.deep.equal({
      error: `upload exceeds the limit of ${LIMIT} bytes`,
      code: 'upload_too_large',
      details: { limit: LIMIT },
    });
  });

  it('cuts a chunked upload that grows over the limit with 413 and stores nothing', async () => {
    const filler = Buffer.from(csvLines(10_000, 1_600_000_000_000));
    let written = 0;
    const answer = await rawRequest(
      connect(),
      head(['Transfer-Encoding: chunked']),
      async (socket, answered) => {
        const chunk = (piece: Buffer) =>
          Buffer.concat([
            Buffer.from(`${piece.length.toString(16)}\r\n`),
            piece,
            Buffer.from('\r\n'),
          ]);
        socket.write(chunk(Buffer.from(partHead('chunked'))));
        written = await writeUntilAnswered(socket, answered, 3 * LIMIT, filler, chunk);
      },
    );
    expect(answer.status).to.equal(413);
    expect(answer.json.code).to.equal('upload_too_large');
    expect(written).to.be.lessThan(3 * LIMIT);
    expect(await stored('chunked')).to.equal(0);
  });

  it("applies the app's own limits through nginx: too many parts is a 413 from the app", async () => {
    const client = new DeviceClient(front.nginx, device);
    const parts = ['a', 'b', 'c', 'd', 'e'].map((name) => ({ name, content: csvLines(10) }));
    const answer = await client.upload(parts);
    await client.close();
    expect(answer.status).to.equal(413);
    expect(answer.json).to.include({ code: 'too_many_parts' });
    expect(await stored('a')).to.equal(0);
  });
});

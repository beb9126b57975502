import { expect } from 'chai';
import {
  buildMultipart,
  DeviceClient,
  newDevice,
  type Answer,
  type TestDevice,
} from '../support/device-client.js';
import { useFixture, uniqueName } from '../support/fixture.js';

/**
 * The device endpoint's hot routes (GET /device_endpoint, multipart POST
 * /device_endpoint) run without express; any other spelling of the same path
 * (a trailing slash) is routed by express to the same handlers. Both must
 * answer alike, byte for byte apart from the request id and the date.
 */
describe('hot routes: the same answers without express', function () {
  this.timeout(120_000);
  const fixture = useFixture();

  /**
   * Headers as a client sees them. The request id and the date differ per
   * request, and so does the remaining upload budget: only their presence counts.
   */
  function comparable(answer: Answer): Record<string, unknown> {
    const headers: Record<string, unknown> = { ...answer.headers };
    expect(headers['x-request-id'], 'every answer has a request id').to.be.a('string');
    for (const name of ['date', 'x-request-id', 'ratelimit']) {
      if (name in headers) headers[name] = 'present';
    }
    return headers;
  }

  function upload(client: DeviceClient, path: string, content: string) {
    const { body, contentType } = buildMultipart([{ name: 'temp', content }], '----fgsameboundary');
    return client.send('POST', body, { 'content-type': contentType }, path);
  }

  it('answers a status request alike on both routes', async () => {
    const { client } = await fixture().boundDevice(uniqueName('hot-status'));
    const hot = await client.send('GET');
    const routed = await client.send('GET', undefined, {}, '/device_endpoint/');
    expect(hot.status).to.equal(200);
    expect(hot.json.status).to.equal('active');
    expect(routed.status).to.equal(200);
    expect(hot.text).to.equal(routed.text);
    expect(comparable(hot)).to.deep.equal(comparable(routed));
    expect(hot.headers['content-type']).to.equal('application/json; charset=utf-8');
    expect(hot.headers['x-content-type-options']).to.equal('nosniff');
  });

  it('answers an upload alike on both routes, and stores both', async () => {
    const { client } = await fixture().boundDevice(uniqueName('hot-upload'));
    const hot = await upload(client, '/device_endpoint', '1700000000000,1\n1700000001000,2\n');
    const routed = await upload(client, '/device_endpoint/', '1700000002000,3\n1700000003000,4\n');
    expect(hot.status).to.equal(200);
    expect(hot.json).to.deep.equal({
      series: { temp: { stored: 2, duplicates: 0 } },
      stored: 2,
      duplicates: 0,
    });
    expect(routed.text).to.equal(hot.text);
    expect(comparable(hot)).to.deep.equal(comparable(routed));
    // The hot route's upload was stored: sent again, both points are duplicates.
    const again = await upload(client, '/device_endpoint', '1700000000000,1\n1700000001000,2\n');
    expect(again.json).to.include({ stored: 0, duplicates: 2 });
  });

  it('answers refusals alike on both routes: a bad line, an unbound and a missing certificate', async () => {
    const { client } = await fixture().boundDevice(uniqueName('hot-refusal'));
    const asStranger = async (
      device: TestDevice | null,
      send: (c: DeviceClient) => Promise<Answer>,
    ) => {
      const stranger = new DeviceClient(fixture().server, device);
      try {
        return await send(stranger);
      } finally {
        await stranger.close();
      }
    };
    const unbound = newDevice();
    const cases: Array<[string, (path: string) => Promise<Answer>]> = [
      ['bad line', (path) => upload(client, path, 'nonsense\n')],
      [
        'unbound upload',
        (path) => asStranger(unbound, (c) => upload(c, path, '1700000000000,1\n')),
      ],
      ['no certificate', (path) => asStranger(null, (c) => c.send('GET', undefined, {}, path))],
    ];
    for (const [what, send] of cases) {
      const hot = await send('/device_endpoint');
      const routed = await send('/device_endpoint/');
      expect(hot.status, what).to.be.within(400, 499);
      expect(hot.status, what).to.equal(routed.status);
      expect(hot.json, what).to.include.keys('error', 'code');
      expect(hot.text, what).to.equal(routed.text);
      expect(comparable(hot), what).to.deep.equal(comparable(routed));
    }
  });

  it('logs each hot request with its id and path, soon after it was answered', async () => {
    const { client } = await fixture().boundDevice(uniqueName('hot-log'));
    const answer = await client.send('GET');
    const id = answer.headers['x-request-id'] as string;
    const deadline = Date.now() + 5_000;
    let line: Record<string, unknown> | undefined;
    while (!line && Date.now() < deadline) {
      line = fixture()
        .server.output()
        .split('\n')
        .filter((l) => l.includes(id))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l.msg === 'request');
      if (!line) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(line, 'the request line reached stdout').to.include({
      reqId: id,
      method: 'GET',
      path: '/device_endpoint',
      status: 200,
    });
  });
});

import { expect } from 'chai';
import {
  buildMultipart,
  DeviceClient,
  newDevice,
  type Answer,
  type TestDevice,
} from '../support/device-client.js';
import { startFleetgate, type FleetgateProcess } from '../support/fleetgate-process.js';
import { useFleetgateBehindNginx } from '../support/nginx-suite.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';

const DAY_MS = 24 * 3600 * 1000;

/**
 * The same devices, the same requests, once straight to a direct-mode fleetgate
 * and once through nginx to a proxy-mode one: every answer must be identical.
 */
describe('behind nginx: answers are the same as over a direct connection', function () {
  this.timeout(180_000);
  const front = useFleetgateBehindNginx();
  let directDb: TestDatabase;
  let direct: FleetgateProcess;
  const psks: { direct?: string; proxied?: string } = {};

  before(async () => {
    directDb = await createTestDatabase({ migrated: true });
    direct = await startFleetgate(directDb);
    for (const [side, app] of [
      ['direct', direct],
      ['proxied', front.app],
    ] as const) {
      await app.cli(['identity', 'create', 'acme']);
      psks[side] = (await app.cli(['psk', 'issue', 'acme', '--max-devices', '50'])).stdout.trim();
    }
  });
  after(async () => {
    await direct?.stop();
    await directDb?.drop();
  });

  /** Sends one request both ways and returns the two answers without volatile headers. */
  async function both(
    device: TestDevice | null,
    send: (client: DeviceClient, psk: string) => Promise<unknown>,
  ) {
    const answers = [];
    for (const [server, psk] of [
      [direct, psks.direct!],
      [front.nginx, psks.proxied!],
    ] as const) {
      const client = new DeviceClient(server, device);
      try {
        answers.push(await send(client, psk));
      } finally {
        await client.close();
      }
    }
    return answers;
  }
  const upload = (client: DeviceClient) =>
    client
      .upload([{ name: 'temperature', content: '1700000000000,1\n1700000001000,2\n' }])
      .then(simplify);
  const bind = (client: DeviceClient, psk: string) => client.bind(psk).then(simplify);
  const simplify = (answer: { status: number; json: { boundAt?: string } }) => {
    const { boundAt, ...json } = answer.json ?? {};
    return { status: answer.status, json, hasBoundAt: boundAt !== undefined };
  };

  const cases: Array<[string, () => TestDevice | null, number, string]> = [
    ['no certificate', () => null, 401, 'no_client_certificate'],
    [
      'an expired certificate',
      () =>
        newDevice({
          notBefore: new Date(Date.now() - 30 * DAY_MS),
          notAfter: new Date(Date.now() - DAY_MS),
        }),
      401,
      'certificate_expired',
    ],
    [
      'a certificate not yet valid',
      () =>
        newDevice({
          notBefore: new Date(Date.now() + DAY_MS),
          notAfter: new Date(Date.now() + 30 * DAY_MS),
        }),
      401,
      'certificate_not_yet_valid',
    ],
    ['an RSA key with exponent 3', () => newDevice({ rsaExponent: 3 }), 401, 'weak_key'],
    ['an unbound certificate', () => newDevice(), 403, 'certificate_not_bound'],
  ];
  for (const [title, makeDevice, status, code] of cases) {
    it(`uploads with ${title}: ${status} ${code} both ways`, async () => {
      const device = makeDevice();
      const [viaDirect, viaNginx] = await both(device, upload);
      expect(viaDirect).to.deep.include({ status });
      expect((viaDirect as { json: { code: string } }).json.code).to.equal(code);
      expect(viaNginx).to.deep.equal(viaDirect);
    });
  }

  it('binds with an expired certificate: refused the same way both ways', async () => {
    const device = newDevice({
      notBefore: new Date(Date.now() - 30 * DAY_MS),
      notAfter: new Date(Date.now() - DAY_MS),
    });
    const [viaDirect, viaNginx] = await both(device, bind);
    for (const answer of [viaDirect, viaNginx]) {
      expect(answer).to.deep.include({ status: 401 });
      expect((answer as { json: { code: string } }).json.code).to.equal('certificate_expired');
    }
    expect(viaNginx).to.deep.equal(viaDirect);
  });

  it('binds, repeats the bind, uploads and re-uploads a bound device identically', async () => {
    const device = newDevice();
    const expected = ['bound', 'already_bound'];
    for (const [i, step] of [bind, bind, upload, upload].entries()) {
      const [viaDirect, viaNginx] = await both(device, step);
      expect(viaDirect).to.deep.include({ status: 200 });
      if (i < 2)
        expect((viaDirect as { json: { status: string } }).json.status).to.equal(expected[i]);
      expect(viaNginx).to.deep.equal(viaDirect);
    }
    const [first] = await both(device, upload);
    expect(first).to.deep.include({ status: 200 });
  });

  it('refuses a revoked device the same way both ways, uploads and re-binds alike', async () => {
    const device = newDevice();
    for (const [viaDirect, viaNginx] of [await both(device, bind), await both(device, upload)]) {
      expect(viaDirect).to.deep.include({ status: 200 });
      expect(viaNginx).to.deep.equal(viaDirect);
    }
    for (const app of [direct, front.app]) {
      const revoked = await app.cli(['device', 'revoke', device.fingerprint]);
      expect(revoked.code, revoked.stderr).to.equal(0);
    }
    for (const step of [upload, bind]) {
      const [viaDirect, viaNginx] = await both(device, step);
      expect(viaDirect).to.deep.include({ status: 403 });
      expect((viaDirect as { json: { code: string } }).json.code).to.equal('device_revoked');
      expect(viaNginx).to.deep.equal(viaDirect);
    }
  });

  it('refuses a bad bind body and a bad upload the same way both ways', async () => {
    const device = newDevice();
    // The refusals below are about the requests, not the device: it is bound both ways.
    for (const answer of await both(device, bind)) {
      expect(answer).to.deep.include({ status: 200 });
      expect((answer as { json: { status: string } }).json.status).to.equal('bound');
    }
    const requests: Array<[number, string, (c: DeviceClient) => Promise<Answer>]> = [
      [
        400,
        'invalid_bind_request',
        (c) => c.send('POST', '{"PSK": 5}', { 'content-type': 'application/json' }),
      ],
      [415, 'unsupported_media_type', (c) => c.send('POST', 'x', { 'content-type': 'text/plain' })],
      [400, 'invalid_line', (c) => c.upload([{ name: 'temperature', content: 'not,a,number\n' }])],
      [
        400,
        'malformed_multipart',
        (c) => {
          const { body } = buildMultipart([{ name: 'temperature', content: '1,2\n' }]);
          return c.send('POST', body.subarray(0, body.length - 10), {
            'content-type': 'multipart/form-data; boundary=nope',
          });
        },
      ],
    ];
    for (const [status, code, request] of requests) {
      const [viaDirect, viaNginx] = await both(device, (c) => request(c).then(simplify));
      for (const answer of [viaDirect, viaNginx]) {
        expect(answer, code).to.deep.include({ status });
        expect((answer as { json: { code: string } }).json.code).to.equal(code);
      }
      expect(viaNginx).to.deep.equal(viaDirect);
    }
    // A GET is the status of the device, the same both ways.
    const [statusDirect, statusNginx] = await both(device, (c) => c.send('GET').then(simplify));
    expect(statusDirect).to.deep.include({ status: 200 });
    expect((statusDirect as { json: { status: string } }).json.status).to.equal('active');
    expect(statusNginx).to.deep.equal(statusDirect);
  });
});

import { expect } from 'chai';
import { DeviceClient, newDevice, type TestDevice } from '../support/device-client.js';
import { startFleetgate, type FleetgateProcess } from '../support/fleetgate-process.js';
import { escapedPem } from '../support/nginx-front.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';
import { overTcp, rawRequest, type Connect } from './raw-http.js';

const CERT_HEADER = 'X-SSL-Client-Cert';

/**
 * The app in proxy mode on a loopback port, with 127.0.0.1 as its only proxy.
 * Linux routes all of 127.0.0.0/8 to loopback, so 127.0.0.2 stands in for a
 * peer that reached the app without going through nginx.
 */
describe('proxy mode: the certificate header is believed only from the proxy', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let app: FleetgateProcess;
  let psk: string;
  let proxy: Connect;
  let stranger: Connect;
  const victim: TestDevice = newDevice();

  before(async () => {
    db = await createTestDatabase({ migrated: true });
    app = await startFleetgate(db, {
      FLEETGATE_PROXY_MODE: 'nginx',
      FLEETGATE_TRUSTED_PROXIES: '127.0.0.1',
    });
    proxy = overTcp(app.port, '127.0.0.1');
    stranger = overTcp(app.port, '127.0.0.2');
    await app.cli(['identity', 'create', 'acme']);
    psk = (await app.cli(['psk', 'issue', 'acme', '--max-devices', '10'])).stdout.trim();
  });
  after(async () => {
    await app?.stop();
    await db?.drop();
  });

  const post = (connect: Connect, headers: string[], body: string, type: string) =>
    rawRequest(
      connect,
      [
        'POST /device_endpoint HTTP/1.1',
        'Host: localhost',
        'Connection: close',
        `Content-Type: ${type}`,
        `Content-Length: ${Buffer.byteLength(body)}`,
        ...headers,
      ],
      async (socket) => socket.write(body),
    );
  const bind = (connect: Connect, headers: string[]) =>
    post(connect, headers, JSON.stringify({ PSK: psk }), 'application/json');
  const upload = (connect: Connect, headers: string[], series = 'temperature') =>
    post(
      connect,
      headers,
      `--b\r\nContent-Disposition: form-data; name="${series}"; filename="t.csv"\r\n\r\n1700000000000,1\n\r\n--b--\r\n`,
      'multipart/form-data; boundary=b',
    );
  const certHeader = (device: TestDevice) => `${CERT_HEADER}: ${escapedPem(device.certPem)}`;

  it('takes the certificate from the header when the peer is the proxy', async () => {
    const bound = await bind(proxy, [certHeader(victim)]);
    expect(bound.status).to.equal(200);
    expect(bound.json).to.include({ status: 'bound', fingerprint: victim.fingerprint });
    expect((await upload(proxy, [certHeader(victim)])).status).to.equal(200);
  });

  it('ignores the header from any other peer: no certificate, 401', async () => {
    for (const send of [upload, bind]) {
      const answer = await send(stranger, [certHeader(victim)]);
      expect(answer.status).to.equal(401);
      expect(answer.json.code).to.equal('no_client_certificate');
    }
    // Not even a malformed header is looked at.
    const junk = await upload(stranger, [`${CERT_HEADER}: %%%`]);
    expect(junk.json.code).to.equal('no_client_certificate');
    expect((await app.cli(['export', victim.fingerprint, 'temperature'])).stdout).to.equal(
      '1700000000000,1\n',
    );
  });

  it('believes X-Real-IP only from the proxy', async () => {
    // Request lines are logged when a response finishes, a moment after the client has it.
    const requestLines = () =>
      app
        .output()
        .split('\n')
        .filter((line) => /"msg":"request"/.test(line));
    const before = requestLines().length;
    await upload(stranger, [certHeader(victim), 'X-Real-IP: 203.0.113.7'], 'a');
    while (requestLines().length < before + 1) await new Promise((r) => setTimeout(r, 50));
    await upload(proxy, [certHeader(victim), 'X-Real-IP: 198.51.100.9'], 'b');
    while (requestLines().length < before + 2) await new Promise((r) => setTimeout(r, 50));
    const remotes = requestLines()
      .slice(before)
      .map((line) => (JSON.parse(line) as { remote: string }).remote);
    expect(remotes).to.deep.equal(['127.0.0.2', '198.51.100.9']);
  });

  const pem = victim.certPem;
  const malformed: Array<[string, string[]]> = [
    ['empty', [`${CERT_HEADER}: `]],
    ['blank', [`${CERT_HEADER}:    `]],
    ['sent twice', [certHeader(victim), certHeader(victim)]],
    ['oversized', [`${CERT_HEADER}: ${'A'.repeat(20_000)}`]],
    ['not URL-escaped text', [`${CERT_HEADER}: %E0%A4%A`]],
    ['not PEM', [`${CERT_HEADER}: hello`]],
    ['two certificates', [`${CERT_HEADER}: ${escapedPem(pem + pem)}`]],
    ['a private key', [`${CERT_HEADER}: ${escapedPem(victim.keyPem)}`]],
    [
      'corrupted base64',
      [`${CERT_HEADER}: ${escapedPem(pem.replace(/\n[A-Za-z0-9+/]{4}/, '\n!!!!'))}`],
    ],
    [
      'a truncated certificate',
      [`${CERT_HEADER}: ${escapedPem(pem.slice(0, 400) + '\n-----END CERTIFICATE-----\n')}`],
    ],
  ];
  for (const [what, headers] of malformed) {
    it(`answers 400 to a certificate header from the proxy that is ${what}`, async () => {
      const answer = await upload(proxy, headers);
      expect(answer.status).to.equal(400);
      expect(answer.json.code).to.equal('invalid_client_cert_header');
      expect(answer.json.error).to.match(/^the x-ssl-client-cert header /);
    });
  }

  it('is still serving after all of that', async () => {
    expect((await upload(proxy, [certHeader(victim)], 'after')).status).to.equal(200);
  });

  it('refuses to start in proxy mode on an address other hosts can reach', async () => {
    const refused = await startFleetgate(db, { FLEETGATE_PROXY_MODE: 'nginx' }, [
      '--host',
      '0.0.0.0',
    ]).then(
      async (started) => (await started.stop(), null),
      (err: Error) => err.message,
    );
    expect(refused).to.match(/must listen on loopback/);
  });
});

describe('direct mode: the certificate header is always ignored', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let app: FleetgateProcess;

  before(async () => {
    db = await createTestDatabase({ migrated: true });
    app = await startFleetgate(db);
    await app.cli(['identity', 'create', 'acme']);
  });
  after(async () => {
    await app?.stop();
    await db?.drop();
  });

  it('uses the TLS certificate, never the header, with or without a certificate', async () => {
    const psk = (await app.cli(['psk', 'issue', 'acme', '--max-devices', '5'])).stdout.trim();
    const victim = newDevice();
    const victimClient = new DeviceClient(app, victim);
    expect((await victimClient.bind(psk)).status).to.equal(200);
    await victimClient.close();

    const forged = { [CERT_HEADER]: escapedPem(victim.certPem) };
    const anonymous = new DeviceClient(app, null);
    const attacker = newDevice();
    const impostor = new DeviceClient(app, attacker);
    try {
      const noCert = await anonymous.send('POST', '{}', {
        'content-type': 'application/json',
        ...forged,
      });
      expect(noCert.status).to.equal(401);
      expect(noCert.json.code).to.equal('no_client_certificate');
      const bound = await impostor.send('POST', JSON.stringify({ PSK: psk }), {
        'content-type': 'application/json',
        ...forged,
      });
      expect(bound.json.fingerprint).to.equal(attacker.fingerprint);
      const upload = await anonymous.send('POST', 'x', {
        'content-type': 'multipart/form-data; boundary=b',
        ...forged,
      });
      expect(upload.status).to.equal(401);
    } finally {
      await anonymous.close();
      await impostor.close();
    }
  });
});

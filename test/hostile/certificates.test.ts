import { execFile } from 'node:child_process';
import { expect } from 'chai';
import forge from 'node-forge';
import { DeviceClient, newDevice, type TestDevice } from '../support/device-client.js';
import { startFleetgate, type FleetgateProcess } from '../support/fleetgate-process.js';
import {
  nestedSequenceHex,
  opensslDevice,
  unvalidatedDevice,
} from '../support/openssl-certificates.js';
import {
  bindDevice,
  expectJsonError,
  expectServerUp,
  storedPoints,
} from '../support/stored-points.js';
import {
  createTestDatabase,
  queryTestDatabase,
  type TestDatabase,
} from '../support/test-database.js';

const NOW = Date.now();

/** A version 1 certificate that nevertheless carries extensions (RFC 5280 allows them only in v3). */
function v1CertificateWithExtensions(): TestDevice {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
  const cert = forge.pki.createCertificate();
  cert.version = 0;
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date(NOW - 3600_000);
  cert.validity.notAfter = new Date(NOW + 30 * 24 * 3600_000);
  const name = [{ name: 'commonName', value: 'v1-with-extensions' }];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'subjectAltName', altNames: [{ type: 2, value: 'x.example' }] },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return unvalidatedDevice({
    certPem: forge.pki.certificateToPem(cert),
    keyPem: forge.pki.privateKeyToPem(keys.privateKey),
  });
}

describe('hostile client certificates', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let server: FleetgateProcess;
  let owner: DeviceClient;
  let ownerDevice: TestDevice;

  before(async () => {
    db = await createTestDatabase({ migrated: true });
    server = await startFleetgate(db, {
      FLEETGATE_BIND_FAILURES_PER_ADDRESS: '0',
      FLEETGATE_BIND_FAILURES_PER_CERTIFICATE: '0',
    });
    ownerDevice = opensslDevice({
      subject: '/O=Acme/CN=sensor-0001',
      san: 'DNS:sensor-0001.acme.example,URI:urn:dev:mac:001122334455',
    });
    owner = new DeviceClient(server, ownerDevice);
    await bindDevice(server, owner, 'acme');
    const stored = await owner.upload([{ name: 'temp', content: `${NOW - 1000},21.5\n` }]);
    expect(stored.status, stored.text).to.equal(200);
  });
  after(async () => {
    await owner?.close();
    await server?.stop();
    await db?.drop();
  });
  afterEach(() => expectServerUp(server, owner));

  async function devicesBound(): Promise<number | null> {
    if (!db.url) return null;
    const [row] = await queryTestDatabase<{ n: string }>(db, 'select count(*) as n from devices');
    return Number(row!.n);
  }

  /** Binding and uploading with this certificate are both refused with the given 4xx. */
  async function expectRefusedCertificate(device: TestDevice, status: number, code: string) {
    const before = await devicesBound();
    const psk = (await server.cli(['psk', 'issue', 'acme'])).stdout.trim();
    const client = new DeviceClient(server, device);
    try {
      expectJsonError(await client.bind(psk), status, code);
      expectJsonError(await client.upload([{ name: 'temp', content: `${NOW},1\n` }]), status, code);
    } finally {
      await client.close();
    }
    if (before !== null) expect(await devicesBound()).to.equal(before);
  }

  it('treats a copy of another device subject and SAN as a different device', async () => {
    const copy = opensslDevice({
      subject: '/O=Acme/CN=sensor-0001',
      san: 'DNS:sensor-0001.acme.example,URI:urn:dev:mac:001122334455',
    });
    expect(copy.fingerprint).to.not.equal(ownerDevice.fingerprint);
    const impostor = new DeviceClient(server, copy);
    try {
      // Not bound: the copied names count for nothing.
      expectJsonError(
        await impostor.upload([{ name: 'temp', content: `${NOW},99\n` }]),
        403,
        'certificate_not_bound',
      );
      // Bound with a PSK of its own identity it is a new device with its own data.
      await server.cli(['identity', 'create', 'mallory']);
      const psk = (await server.cli(['psk', 'issue', 'mallory'])).stdout.trim();
      const bound = await impostor.bind(psk);
      expect(bound.status, bound.text).to.equal(200);
      expect(bound.json).to.include({
        status: 'bound',
        identity: 'mallory',
        fingerprint: copy.fingerprint,
      });
      expect((await impostor.upload([{ name: 'temp', content: `${NOW},99\n` }])).status).to.equal(
        200,
      );
      expect(await storedPoints(db, server, ownerDevice, 'temp')).to.deep.equal([
        [NOW - 1000, 21.5],
      ]);
      expect(await storedPoints(db, server, copy, 'temp')).to.deep.equal([[NOW, 99]]);
    } finally {
      await impostor.close();
    }
  });

  it('copes with deeply nested DER inside a certificate extension', async () => {
    const nested = opensslDevice({
      subject: '/CN=nested',
      extensions: [`1.3.6.1.4.1.55555.1=DER:${nestedSequenceHex(2000)}`],
    });
    const client = new DeviceClient(server, nested);
    try {
      // The extension is opaque to X.509: the certificate is well formed, the device binds normally.
      const psk = (await server.cli(['psk', 'issue', 'acme'])).stdout.trim();
      const bound = await client.bind(psk);
      expect(bound.status, bound.text).to.equal(200);
    } finally {
      await client.close();
    }
  });

  it('refuses an RSA key with public exponent 3', () =>
    expectRefusedCertificate(newDevice({ rsaExponent: 3 }), 401, 'weak_key'));

  it('refuses a v1 certificate that carries extensions', () =>
    expectRefusedCertificate(v1CertificateWithExtensions(), 400, 'malformed_certificate'));

  it('refuses a certificate whose serial is longer than 20 octets', () =>
    expectRefusedCertificate(
      opensslDevice({ subject: '/CN=huge-serial', serialHex: `7f${'ab'.repeat(63)}` }),
      400,
      'malformed_certificate',
    ));

  it('refuses client-initiated TLS renegotiation', async () => {
    const device = newDevice();
    const fs = await import('node:fs');
    const path = await import('node:path');
    const dir = fs.mkdtempSync(path.join(db.workDir, 'reneg-'));
    fs.writeFileSync(path.join(dir, 'c.pem'), device.certPem);
    fs.writeFileSync(path.join(dir, 'k.pem'), device.keyPem);
    // `R` on its own line asks s_client to renegotiate; the server must refuse.
    const output = await new Promise<string>((resolve) => {
      const child = execFile(
        'openssl',
        [
          's_client',
          '-connect',
          `127.0.0.1:${server.port}`,
          '-tls1_2',
          '-cert',
          path.join(dir, 'c.pem'),
          '-key',
          path.join(dir, 'k.pem'),
        ],
        { timeout: 20_000 },
        (_err, stdout, stderr) => resolve(`${stdout}\n${stderr}`),
      );
      child.stdin!.write('R\n');
      setTimeout(() => child.stdin!.end('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'), 2000);
    });
    // OpenSSL answers the renegotiation request with a no_renegotiation alert and
    // the session ends: the HTTP request typed afterwards never gets an answer.
    expect(output).to.match(/RENEGOTIATING/);
    expect(output).to.match(/no renegotiation/i);
    expect(output).to.not.match(/HTTP\/1\.1 \d{3}/);
  });
});

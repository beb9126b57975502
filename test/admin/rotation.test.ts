import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { useFleetgate, boundDevice } from '../support/admin-client.js';
import { DeviceClient, newDevice, type TestDevice } from '../support/device-client.js';

const run = promisify(execFile);
const rotate = (client: DeviceClient, pem: string) =>
  client.send('POST', pem, { 'content-type': 'application/x-pem-file' }, '/device_endpoint/rotate');
const points = (from: number, n: number) =>
  Array.from({ length: n }, (_, i) => `${from + i * 1000},${i}`).join('\n');

describe('device status and certificate rotation', () => {
  const fg = useFleetgate();
  let psk: string;

  before(async () => {
    psk = await fg.admin.identityWithPsk('rotating');
  });

  it('tells a device whether its certificate is unbound or active', async () => {
    const device = newDevice();
    const client = new DeviceClient(fg.server, device);
    try {
      const before = await client.send('GET');
      expect(before.status).to.equal(200);
      expect(before.json).to.deep.include({ status: 'unbound', fingerprint: device.fingerprint });
      expect(before.json).to.not.have.property('identity');
      await client.bind(psk);
      const after = await client.send('GET');
      expect(after.json).to.deep.include({ status: 'active', identity: 'rotating' });
      expect(Date.parse(after.json.boundAt)).to.be.closeTo(Date.now(), 60_000);
      const anonymous = new DeviceClient(fg.server, null);
      expect((await anonymous.send('GET')).status).to.equal(401);
      await anonymous.close();
    } finally {
      await client.close();
    }
  });

  it('rotates to a new certificate that keeps the device, its series and its data', async () => {
    const oldCert = newDevice({ commonName: 'meter-7' });
    const nextCert = newDevice({ commonName: 'meter-7' });
    const oldClient = await boundDevice(fg.server, oldCert, psk);
    const newClient = new DeviceClient(fg.server, nextCert);
    try {
      expect(
        (await oldClient.upload([{ name: 'temp', content: points(1_700_000_000_000, 3) }])).status,
      ).to.equal(200);
      const deviceId = (await fg.admin.get(`/v1/devices/${oldCert.fingerprint}`)).json.id;

      const rotation = await oldClient.send(
        'POST',
        JSON.stringify({ certificate: nextCert.certPem }),
        { 'content-type': 'application/json' },
        '/device_endpoint/rotate',
      );
      expect(rotation.status).to.equal(202);
      expect(rotation.json).to.deep.include({
        status: 'pending',
        fingerprint: nextCert.fingerprint,
        replaces: oldCert.fingerprint,
      });
      // A retry of the same submission is harmless.
      const retry = await rotate(oldClient, nextCert.certPem);
      expect(retry.status).to.equal(202);
      const pending = (await fg.admin.get(`/v1/devices/${oldCert.fingerprint}`)).json;
      expect(pending.pendingCertificate.fingerprint).to.equal(nextCert.fingerprint);
      expect(pending.certificate.fingerprint).to.equal(oldCert.fingerprint);

      // Until the new certificate is presented, the old one keeps working.
      expect(
        (await oldClient.upload([{ name: 'temp', content: points(1_700_000_010_000, 2) }])).status,
      ).to.equal(200);

      // First presentation activates it: same device, same identity, same bound-at.
      const status = await newClient.send('GET');
      expect(status.json).to.deep.include({
        status: 'active',
        identity: 'rotating',
        fingerprint: nextCert.fingerprint,
      });
      expect(
        (await newClient.upload([{ name: 'temp', content: points(1_700_000_020_000, 4) }])).status,
      ).to.equal(200);

      // From then on the old one is refused, on its already open connection too.
      const refused = await oldClient.upload([
        { name: 'temp', content: points(1_700_000_030_000, 1) },
      ]);
      expect(refused.status).to.equal(403);
      expect(refused.json.code).to.equal('certificate_retired');
      expect((await oldClient.send('GET')).json.status).to.equal('retired');
      expect((await oldClient.bind(psk)).json.code).to.equal('certificate_retired');

      const device = (await fg.admin.get(`/v1/devices/${nextCert.fingerprint}`)).json;
      expect(device.id).to.equal(deviceId);
      expect(device.certificate.fingerprint).to.equal(nextCert.fingerprint);
      expect(device.pendingCertificate).to.equal(null);
      const states = Object.fromEntries(
        device.certificates.map((c: { fingerprint: string; state: string }) => [
          c.fingerprint,
          c.state,
        ]),
      );
      expect(states).to.deep.equal({
        [oldCert.fingerprint]: 'retired',
        [nextCert.fingerprint]: 'active',
      });
      const series = (await fg.admin.get(`/v1/devices/${nextCert.fingerprint}/series`)).json.series;
      expect(series).to.have.length(1);
      expect(series[0]).to.deep.include({ name: 'temp', points: 9 });

      const audit = (await fg.admin.get(`/v1/audit?fingerprint=${nextCert.fingerprint}`)).json
        .events;
      const actions = audit.map((e: { action: string }) => e.action);
      expect(actions).to.include.members([
        'certificate.rotation_requested',
        'certificate.activated',
      ]);
      const activated = audit.find((e: { action: string }) => e.action === 'certificate.activated');
      expect(activated.fingerprint).to.equal(nextCert.fingerprint);
      expect(activated.remoteAddress).to.match(/127\.0\.0\.1/);
    } finally {
      await oldClient.close();
      await newClient.close();
    }
  });

  it('refuses certificates known elsewhere with 409 and bad submissions with 4xx', async () => {
    const mine = newDevice();
    const someoneElse = newDevice();
    const client = await boundDevice(fg.server, mine, psk);
    await (await boundDevice(fg.server, someoneElse, psk)).close();
    const submit = (body: string, type = 'application/x-pem-file') =>
      client.send('POST', body, { 'content-type': type }, '/device_endpoint/rotate');
    try {
      const taken = await submit(someoneElse.certPem);
      expect(taken.status).to.equal(409);
      expect(taken.json.code).to.equal('certificate_already_known');
      expect((await submit(mine.certPem)).status).to.equal(409);
      const garbage = await submit(
        '-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n',
      );
      expect(garbage.status).to.equal(400);
      expect(garbage.json.code).to.equal('malformed_certificate');
      const withKey = await submit(`${newDevice().certPem}\n${mine.keyPem}`);
      expect(withKey.status).to.equal(400);
      const expired = newDevice({
        notBefore: new Date(Date.now() - 2 * 86_400_000),
        notAfter: new Date(Date.now() - 86_400_000),
      });
      const old = await submit(expired.certPem);
      expect(old.status).to.equal(400);
      expect(old.json.code).to.equal('unacceptable_certificate');
      expect((await submit(JSON.stringify({ cert: 'x' }), 'application/json')).json.code).to.equal(
        'invalid_rotation_request',
      );
      expect((await submit('x', 'image/png')).status).to.equal(415);
      expect((await client.send('GET', undefined, {}, '/device_endpoint/rotate')).status).to.equal(
        405,
      );

      // Another device's pending certificate is also "known elsewhere".
      const contested = newDevice();
      expect((await submit(contested.certPem)).status).to.equal(202);
      const rival = new DeviceClient(fg.server, someoneElse);
      const second = await rotate(rival, contested.certPem);
      expect(second.status).to.equal(409);
      await rival.close();
      // And an unbound certificate cannot rotate at all.
      const stranger = new DeviceClient(fg.server, newDevice());
      const unbound = await rotate(stranger, newDevice().certPem);
      expect(unbound.status).to.equal(403);
      expect(unbound.json.code).to.equal('certificate_not_bound');
      await stranger.close();
    } finally {
      await client.close();
    }
  });

  it('works end to end with curl --cert', async () => {
    const dir = fs.mkdtempSync(path.join(fg.db.workDir, 'curl-'));
    const write = (name: string, text: string) => {
      const file = path.join(dir, name);
      fs.writeFileSync(file, text, { mode: 0o600 });
      return file;
    };
    const ca = write('ca.crt', fg.server.caPem);
    const current = newDevice();
    const next = newDevice();
    const files = {
      cert: write('current.crt', current.certPem),
      key: write('current.key', current.keyPem),
      nextCert: write('next.crt', next.certPem),
      nextKey: write('next.key', next.keyPem),
    };
    const curl = async (cert: string, key: string, extra: string[]) => {
      const { stdout } = await run('curl', [
        '-sS',
        '--cacert',
        ca,
        '--cert',
        cert,
        '--key',
        key,
        '-w',
        '\n%{http_code}',
        ...extra,
      ]);
      const lines = stdout.trimEnd().split('\n');
      return { status: Number(lines.pop()), json: JSON.parse(lines.join('\n') || 'null') };
    };
    const url = `${fg.server.baseUrl}/device_endpoint`;
    expect((await curl(files.cert, files.key, [url])).json.status).to.equal('unbound');
    const bound = await curl(files.cert, files.key, [
      '-H',
      'content-type: application/json',
      '--data',
      JSON.stringify({ PSK: psk }),
      url,
    ]);
    expect(bound.status).to.equal(200);
    const rotated = await curl(files.cert, files.key, [
      '-H',
      'content-type: application/x-pem-file',
      '--data-binary',
      `@${files.nextCert}`,
      `${url}/rotate`,
    ]);
    expect(rotated.status).to.equal(202);
    expect(rotated.json.fingerprint).to.equal(next.fingerprint);
    const upload = await curl(files.nextCert, files.nextKey, [
      '-F',
      `power=@${write('power.csv', points(1_700_000_000_000, 5))}`,
      url,
    ]);
    expect(upload.status).to.equal(200);
    expect(upload.json.stored).to.equal(5);
    expect((await curl(files.nextCert, files.nextKey, [url])).json.status).to.equal('active');
    const old = await curl(files.cert, files.key, [url]);
    expect(old.json.status).to.equal('retired');
  });
});

describe('certificate rotation with a grace period', () => {
  const fg = useFleetgate({ FLEETGATE_ROTATION_GRACE_MS: String(3_600_000) });

  it('keeps the old certificate working until the grace period ends', async () => {
    const psk = await fg.admin.identityWithPsk('graceful');
    const oldCert: TestDevice = newDevice();
    const nextCert = newDevice();
    const oldClient = await boundDevice(fg.server, oldCert, psk);
    const newClient = new DeviceClient(fg.server, nextCert);
    try {
      await rotate(oldClient, nextCert.certPem);
      expect((await newClient.send('GET')).json.status).to.equal('active');
      const stillOk = await oldClient.upload([
        { name: 'temp', content: points(1_700_000_000_000, 2) },
      ]);
      expect(stillOk.status).to.equal(200);
      const status = await oldClient.send('GET');
      expect(status.json.status).to.equal('active');
      // Retired as of one hour after the new certificate was activated (server clock).
      const shown = (await fg.admin.get(`/v1/devices/${nextCert.fingerprint}`)).json;
      const activatedAt = Date.parse(shown.certificate.activatedAt);
      const grace = Date.parse(status.json.retiredAt) - activatedAt;
      expect(grace).to.be.within(3_600_000 - 60_000, 3_600_000);
      // During the grace period only the newest certificate may rotate again.
      const again = await rotate(oldClient, newDevice().certPem);
      expect(again.status).to.equal(403);
      expect(again.json.code).to.equal('certificate_retiring');
    } finally {
      await oldClient.close();
      await newClient.close();
    }
  });
});

import { expect } from 'chai';
import { useFleetgate, boundDevice } from '../support/admin-client.js';
import { DeviceClient, newDevice, type TestDevice } from '../support/device-client.js';

const points = (n: number, from = 1_700_000_000_000) =>
  Array.from({ length: n }, (_, i) => `${from + i * 1000},${i}`).join('\n');

describe('admin API: devices, revocation and the audit log', () => {
  const fg = useFleetgate();
  let psk: string;
  const devices: TestDevice[] = [];

  before(async () => {
    psk = await fg.admin.identityWithPsk('fleet');
    for (let i = 0; i < 3; i++) {
      const device = newDevice({ commonName: `sensor-${i}` });
      devices.push(device);
      await (await boundDevice(fg.server, device, psk)).close();
    }
  });

  it("lists an identity's devices with certificate, validity, bound at, last seen and status", async () => {
    const client = new DeviceClient(fg.server, devices[0]!);
    expect((await client.upload([{ name: 'temp', content: points(5) }])).status).to.equal(200);
    await client.close();

    const answer = await fg.admin.get('/v1/identities/fleet/devices');
    expect(answer.status).to.equal(200);
    expect(answer.json.nextCursor).to.equal(null);
    expect(answer.json.devices).to.have.length(3);
    const [first] = answer.json.devices;
    expect(first).to.deep.include({ identity: 'fleet', status: 'active', revokedAt: null });
    expect(first.boundFrom).to.match(/127\.0\.0\.1/);
    expect(Date.parse(first.lastSeenAt)).to.be.closeTo(Date.now(), 60_000);
    expect(answer.json.devices[1].lastSeenAt).to.equal(null);
    expect(first.certificate).to.deep.include({
      fingerprint: devices[0]!.fingerprint,
      subject: 'CN=sensor-0',
      state: 'active',
    });
    expect(first.certificate.serialNumber).to.match(/^[0-9a-f]+$/);
    expect(Date.parse(first.certificate.notAfter)).to.be.greaterThan(Date.now());

    const paged = await fg.admin.get('/v1/identities/fleet/devices?limit=2');
    expect(paged.json.devices).to.have.length(2);
    const rest = await fg.admin.get(
      `/v1/identities/fleet/devices?limit=2&cursor=${paged.json.nextCursor}`,
    );
    expect(rest.json.devices.map((d: { id: number }) => d.id)).to.deep.equal([
      answer.json.devices[2].id,
    ]);
    expect(rest.json.nextCursor).to.equal(null);
    expect((await fg.admin.get('/v1/identities/fleet/devices?limit=0')).status).to.equal(400);
    expect((await fg.admin.get('/v1/identities/nobody/devices')).status).to.equal(404);
  });

  it('lists every device of the fleet across identities, page by page, and filters by status', async () => {
    const otherPsk = await fg.admin.identityWithPsk('other-fleet');
    const other = newDevice({ commonName: 'elsewhere' });
    await (await boundDevice(fg.server, other, otherPsk)).close();

    const all = await fg.admin.get('/v1/devices?limit=1000');
    expect(all.status).to.equal(200);
    const byFp = new Map(
      all.json.devices.map((d: { certificate: { fingerprint: string }; identity: string }) => [
        d.certificate.fingerprint,
        d.identity,
      ]),
    );
    for (const d of devices) expect(byFp.get(d.fingerprint)).to.equal('fleet');
    expect(byFp.get(other.fingerprint)).to.equal('other-fleet');
    const ids = all.json.devices.map((d: { id: number }) => d.id);
    expect(ids).to.deep.equal([...ids].sort((a: number, b: number) => a - b));

    // Walking the pages one device at a time visits each device once, in the same order.
    const walked: number[] = [];
    let cursor: string | null = null;
    do {
      const page = await fg.admin.get(`/v1/devices?limit=1${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).to.equal(200);
      expect(page.json.devices).to.have.length(1);
      walked.push(page.json.devices[0].id);
      cursor = page.json.nextCursor;
    } while (cursor !== null);
    expect(walked).to.deep.equal(ids);

    const revoked = await fg.admin.post(`/v1/devices/${other.fingerprint}/revoke`, {});
    expect(revoked.status).to.equal(200);
    const onlyRevoked = await fg.admin.get('/v1/devices?status=revoked');
    expect(
      onlyRevoked.json.devices.map(
        (d: { certificate: { fingerprint: string } }) => d.certificate.fingerprint,
      ),
    ).to.include(other.fingerprint);
    expect(
      onlyRevoked.json.devices.every((d: { status: string }) => d.status === 'revoked'),
    ).to.equal(true);
    const active = await fg.admin.get('/v1/devices?status=active&limit=1000');
    expect(
      active.json.devices.map(
        (d: { certificate: { fingerprint: string } }) => d.certificate.fingerprint,
      ),
    ).not.to.include(other.fingerprint);
    expect(active.json.devices.every((d: { status: string }) => d.status !== 'revoked')).to.equal(
      true,
    );

    for (const bad of ['limit=0', 'limit=1001', 'cursor=x', 'cursor=99999999999', 'status=gone']) {
      const answer = await fg.admin.get(`/v1/devices?${bad}`);
      expect(answer.status, bad).to.equal(400);
      expect(answer.json.code, bad).to.be.a('string');
    }
  });

  it('shows one device by fingerprint, also in openssl notation', async () => {
    const fp = devices[1]!.fingerprint;
    const answer = await fg.admin.get(`/v1/devices/${fp}`);
    expect(answer.status).to.equal(200);
    expect(answer.json.certificates).to.have.length(1);
    expect(answer.json.certificate.fingerprint).to.equal(fp);
    const colons = fp.toUpperCase().match(/../g)!.join(':');
    expect((await fg.admin.get(`/v1/devices/${colons}`)).json.id).to.equal(answer.json.id);
    expect((await fg.admin.get(`/v1/devices/${'0'.repeat(64)}`)).json.code).to.equal(
      'device_not_found',
    );
    expect((await fg.admin.get('/v1/devices/nothex')).json.code).to.equal('invalid_fingerprint');
  });

  it('revocation takes effect on the next request of an open keep-alive connection', async () => {
    const device = devices[2]!;
    const client = new DeviceClient(fg.server, device);
    let connects = 0;
    client.agent.on('connect', () => connects++);
    try {
      expect((await client.upload([{ name: 'temp', content: points(3) }])).status).to.equal(200);
      expect((await client.send('GET')).json.status).to.equal('active');
      const revoked = await fg.admin.post(`/v1/devices/${device.fingerprint}/revoke`, {
        reason: 'reported stolen',
      });
      expect(revoked.status).to.equal(200);
      expect(revoked.json).to.deep.include({ status: 'revoked', revokedReason: 'reported stolen' });

      const refused = await client.upload([
        { name: 'temp', content: points(3, 1_700_000_100_000) },
      ]);
      expect(refused.status).to.equal(403);
      expect(refused.json).to.deep.equal({
        error: 'this device has been revoked',
        code: 'device_revoked',
      });
      // The refused upload went over the connection opened before the revocation. The
      // server may close it after that answer (its body may not have been read yet:
      // README, refusals), so the status request below may open a new one.
      expect(connects, 'the refused upload went over the open keep-alive connection').to.equal(1);
      expect((await client.send('GET')).json.status).to.equal('revoked');

      // Permanent: neither a second revoke nor a re-bind with a valid PSK brings it back.
      expect((await fg.admin.post(`/v1/devices/${device.fingerprint}/revoke`)).status).to.equal(
        409,
      );
      const rebind = await client.bind(psk);
      expect(rebind.status).to.equal(403);
      expect(rebind.json.code).to.equal('device_revoked');
      const series = await fg.admin.get(`/v1/devices/${device.fingerprint}/series`);
      expect(series.json.series[0].points).to.equal(3);
    } finally {
      await client.close();
    }
  });

  it('keeps every binding, refused bind and revocation in the audit log, with the client address', async () => {
    const stranger = new DeviceClient(fg.server, newDevice());
    await stranger.bind('fgpsk_this-is-not-a-valid-psk-at-all');
    await stranger.close();

    const all = await fg.admin.get('/v1/audit?identity=fleet');
    expect(all.status).to.equal(200);
    const actions = all.json.events.map((e: { action: string }) => e.action);
    expect(actions.filter((a: string) => a === 'device.bound')).to.have.length(3);
    expect(actions).to.include.members([
      'identity.created',
      'psk.issued',
      'device.revoked',
      'device.bind_refused',
    ]);

    const revocation = all.json.events.find(
      (e: { action: string }) => e.action === 'device.revoked',
    );
    expect(revocation).to.deep.include({
      identity: 'fleet',
      fingerprint: devices[2]!.fingerprint,
      actor: 'admin-api',
      details: { reason: 'reported stolen' },
    });
    expect(revocation.remoteAddress).to.match(/127\.0\.0\.1/);
    const bound = all.json.events.find(
      (e: { action: string; fingerprint: string }) =>
        e.action === 'device.bound' && e.fingerprint === devices[0]!.fingerprint,
    );
    expect(bound.pskId).to.be.a('number');
    expect(bound.remoteAddress).to.match(/127\.0\.0\.1/);
    const refusedRebind = all.json.events.find(
      (e: { action: string }) => e.action === 'device.bind_refused',
    );
    expect(refusedRebind.details.code).to.equal('device_revoked');

    // A bind with an unknown PSK belongs to no identity, but is still recorded.
    const unknown = await fg.admin.get('/v1/audit?action=device.bind_refused');
    const invalid = unknown.json.events.find(
      (e: { details: { code: string } }) => e.details.code === 'invalid_psk',
    );
    expect(invalid).to.deep.include({ identity: null, pskId: null });
    expect(invalid.fingerprint).to.match(/^[0-9a-f]{64}$/);

    const byDevice = await fg.admin.get(`/v1/audit?fingerprint=${devices[2]!.fingerprint}`);
    expect(byDevice.json.events.map((e: { action: string }) => e.action)).to.deep.equal([
      'device.bind_refused',
      'device.revoked',
      'device.bound',
    ]);
    // A certificate no device has: its refused binds are still found by fingerprint.
    const strangerEvents = await fg.admin.get(`/v1/audit?fingerprint=${invalid.fingerprint}`);
    expect(strangerEvents.status).to.equal(200);
    expect(strangerEvents.json.events.map((e: { action: string }) => e.action)).to.deep.equal([
      'device.bind_refused',
    ]);

    // Paging walks the whole log exactly once, newest first.
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { json: { events: Array<{ id: string }>; nextCursor: string | null } } =
        await fg.admin.get(`/v1/audit?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...page.json.events.map((e) => e.id));
      cursor = page.json.nextCursor;
    } while (cursor);
    const everything = (await fg.admin.get('/v1/audit?limit=1000')).json.events.map(
      (e: { id: string }) => e.id,
    );
    expect(seen).to.deep.equal(everything);
    expect((await fg.admin.get('/v1/audit?action=nonsense')).status).to.equal(400);
    expect((await fg.admin.get('/v1/audit?cursor=abc')).status).to.equal(400);
  });
});

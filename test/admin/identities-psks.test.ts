import { expect } from 'chai';
import { useFleetgate, boundDevice } from '../support/admin-client.js';
import { DeviceClient, newDevice } from '../support/device-client.js';
import { serverLogCaughtUp } from '../support/server-log.js';

const csv = (from: number, n: number) =>
  Array.from({ length: n }, (_, i) => `${from + i * 1000},${i}`).join('\n');

describe('admin API: identities and PSKs', () => {
  const fg = useFleetgate();

  it('creates, lists and shows identities with their limits and counts', async () => {
    const created = await fg.admin.post('/v1/identities', { name: 'acme', maxDevices: 10 });
    expect(created.status).to.equal(201);
    expect(created.json).to.deep.include({
      name: 'acme',
      status: 'active',
      maxDevices: 10,
      devices: 0,
      psks: 0,
    });
    expect((await fg.admin.post('/v1/identities', { name: 'globex' })).status).to.equal(201);
    const list = await fg.admin.get('/v1/identities');
    expect(list.json.identities.map((i: { name: string }) => i.name)).to.deep.equal([
      'acme',
      'globex',
    ]);
    const shown = await fg.admin.get('/v1/identities/globex');
    expect(shown.json).to.deep.include({ name: 'globex', maxDevices: null, disabledAt: null });
  });

  it('refuses duplicates, bad names, bad limits and unknown identities with JSON errors', async () => {
    const duplicate = await fg.admin.post('/v1/identities', { name: 'acme' });
    expect(duplicate.status).to.equal(409);
    expect(duplicate.json.code).to.equal('identity_exists');
    const badName = await fg.admin.post('/v1/identities', { name: '-x y' });
    expect(badName.status).to.equal(400);
    expect(badName.json.code).to.equal('invalid_identity_name');
    for (const maxDevices of [0, -1, 1.5, '3']) {
      const bad = await fg.admin.post('/v1/identities', { name: 'limits', maxDevices });
      expect(bad.status, String(maxDevices)).to.equal(400);
      expect(bad.json.code).to.equal('invalid_request');
    }
    const missing = await fg.admin.get('/v1/identities/nobody');
    expect(missing.status).to.equal(404);
    expect(missing.json.code).to.equal('identity_not_found');
  });

  it('changes and removes a device limit', async () => {
    const limited = await fg.admin.patch('/v1/identities/globex', { maxDevices: 3 });
    expect(limited.status).to.equal(200);
    expect(limited.json.maxDevices).to.equal(3);
    const unlimited = await fg.admin.patch('/v1/identities/globex', { maxDevices: null });
    expect(unlimited.json.maxDevices).to.equal(null);
    expect((await fg.admin.patch('/v1/identities/globex', {})).status).to.equal(400);
  });

  it('issues a PSK once and lists it without the secret', async () => {
    const issued = await fg.admin.post('/v1/identities/acme/psks', {
      maxDevices: 2,
      expiresIn: '30d',
    });
    expect(issued.status).to.equal(201);
    expect(issued.headers['cache-control']).to.equal('no-store');
    const secret: string = issued.json.secret;
    expect(secret).to.match(/^fgpsk_[A-Za-z0-9_-]{43}$/);
    expect(issued.json.psk).to.deep.include({
      identity: 'acme',
      uses: 0,
      maxDevices: 2,
      status: 'active',
    });
    const expiresIn = Date.parse(issued.json.psk.expiresAt) - Date.now();
    expect(expiresIn).to.be.within(29 * 86_400_000, 30 * 86_400_000);

    const list = await fg.admin.get('/v1/identities/acme/psks');
    expect(list.status).to.equal(200);
    expect(list.text).to.not.include(secret);
    expect(list.text).to.not.include(secret.slice(12));
    const [psk] = list.json.psks;
    expect(psk.prefix).to.equal(secret.slice(0, 12));
    expect(Object.keys(psk).sort()).to.deep.equal(
      [
        'createdAt',
        'expiresAt',
        'id',
        'identity',
        'maxDevices',
        'prefix',
        'revokedAt',
        'singleUse',
        'status',
        'uses',
      ].sort(),
    );
    await serverLogCaughtUp(fg.server);
    expect(fg.server.output()).to.not.include(secret);
  });

  it('refuses bad PSK options', async () => {
    for (const body of [
      { expiresIn: 'soon' },
      { maxDevices: 0 },
      { singleUse: true, maxDevices: 3 },
      { colour: 'red' },
    ]) {
      const answer = await fg.admin.post('/v1/identities/acme/psks', body);
      expect(answer.status, JSON.stringify(body)).to.equal(400);
      expect(answer.json.code).to.be.a('string');
    }
    expect((await fg.admin.post('/v1/identities/nobody/psks', {})).status).to.equal(404);
  });

  it('counts uses, uses up a single-use PSK, and refuses a revoked one', async () => {
    const single = await fg.admin.post('/v1/identities/acme/psks', { singleUse: true });
    expect(single.json.psk).to.deep.include({ singleUse: true, maxDevices: 1 });
    const first = await boundDevice(fg.server, newDevice(), single.json.secret);
    const second = new DeviceClient(fg.server, newDevice());
    const refused = await second.bind(single.json.secret);
    expect(refused.status).to.equal(400);
    expect(refused.json.code).to.equal('psk_exhausted');
    const listed = (await fg.admin.get('/v1/identities/acme/psks')).json.psks.find(
      (p: { id: number }) => p.id === single.json.psk.id,
    );
    expect(listed).to.deep.include({ uses: 1, status: 'used_up' });

    const other = await fg.admin.post('/v1/identities/acme/psks', {});
    const revoked = await fg.admin.post(`/v1/psks/${other.json.psk.id}/revoke`);
    expect(revoked.status).to.equal(200);
    expect(revoked.json.status).to.equal('revoked');
    expect((await fg.admin.post(`/v1/psks/${other.json.psk.id}/revoke`)).json.code).to.equal(
      'psk_already_revoked',
    );
    expect((await fg.admin.post('/v1/psks/999999/revoke')).status).to.equal(404);
    expect((await fg.admin.post('/v1/psks/abc/revoke')).status).to.equal(400);
    const afterRevoke = await second.bind(other.json.secret);
    expect(afterRevoke.status).to.equal(400);
    expect(afterRevoke.json.code).to.equal('invalid_psk');
    // A device already bound does not need its PSK any more.
    expect(
      (await first.upload([{ name: 'temp', content: csv(1_700_000_000_000, 3) }])).status,
    ).to.equal(200);
    await first.close();
    await second.close();
  });

  it('disabling an identity refuses its devices until it is enabled again', async () => {
    const psk = await fg.admin.issuePsk('globex');
    const device = await boundDevice(fg.server, newDevice(), psk);
    try {
      const disabled = await fg.admin.post('/v1/identities/globex/disable');
      expect(disabled.json).to.deep.include({ status: 'disabled' });
      const refused = await device.upload([{ name: 'temp', content: csv(1_700_000_000_000, 2) }]);
      expect(refused.status).to.equal(403);
      expect(refused.json.code).to.equal('identity_disabled');
      const status = await device.send('GET');
      expect(status.json.status).to.equal('disabled');
      const newBind = await new DeviceClient(fg.server, newDevice()).bind(psk);
      expect(newBind.json.code).to.equal('identity_disabled');

      const enabled = await fg.admin.post('/v1/identities/globex/enable');
      expect(enabled.json).to.deep.include({ status: 'active', disabledAt: null });
      const accepted = await device.upload([{ name: 'temp', content: csv(1_700_000_000_000, 2) }]);
      expect(accepted.status).to.equal(200);

      const events = (await fg.admin.get('/v1/audit?identity=globex')).json.events.map(
        (e: { action: string }) => e.action,
      );
      expect(events).to.include.members([
        'identity.disabled',
        'identity.enabled',
        'psk.issued',
        'device.bound',
      ]);
    } finally {
      await device.close();
    }
  });
});

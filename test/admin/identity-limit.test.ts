import { expect } from 'chai';
import { useFleetgate } from '../support/admin-client.js';
import { DeviceClient, newDevice } from '../support/device-client.js';

describe('identity device limit under concurrent binds', () => {
  const fg = useFleetgate();

  it('binds exactly the limit when 20 devices bind at once through several PSKs', async () => {
    const limit = 7;
    await fg.admin.post('/v1/identities', { name: 'capped', maxDevices: limit });
    // Four PSKs, each generous on its own: only the identity's limit can stop them.
    const psks = await Promise.all([1, 2, 3, 4].map(() => fg.admin.issuePsk('capped')));
    const clients = Array.from({ length: 20 }, () => new DeviceClient(fg.server, newDevice()));
    try {
      // Connect all first so the binds themselves overlap as much as possible.
      await Promise.all(clients.map((c) => c.send('GET')));
      const answers = await Promise.all(clients.map((c, i) => c.bind(psks[i % psks.length])));
      const bound = answers.filter((a) => a.status === 200);
      const refused = answers.filter((a) => a.status !== 200);
      expect(bound).to.have.length(limit);
      expect(refused).to.have.length(20 - limit);
      for (const answer of refused) {
        expect(answer.status, answer.text).to.equal(403);
        expect(answer.json.code).to.equal('identity_device_limit');
      }

      const identity = (await fg.admin.get('/v1/identities/capped')).json;
      expect(identity).to.deep.include({ devices: limit, maxDevices: limit });
      const listed = (await fg.admin.get('/v1/identities/capped/devices')).json.devices;
      expect(listed).to.have.length(limit);
      const uses = (await fg.admin.get('/v1/identities/capped/psks')).json.psks.reduce(
        (sum: number, p: { uses: number }) => sum + p.uses,
        0,
      );
      expect(uses).to.equal(limit);
      const audit = (await fg.admin.get('/v1/audit?identity=capped&limit=1000')).json.events;
      const refusals = audit.filter((e: { action: string }) => e.action === 'device.bind_refused');
      expect(refusals).to.have.length(20 - limit);
      expect(
        refusals.every(
          (e: { details: { code: string } }) => e.details.code === 'identity_device_limit',
        ),
      ).to.equal(true);

      // A repeat bind of a device already counted is still fine at the limit.
      const again = await clients[answers.indexOf(bound[0]!)]!.bind(psks[0]);
      expect(again.status).to.equal(200);
      expect(again.json.status).to.equal('already_bound');

      // Revoking one frees a slot; raising the limit frees more.
      const victim = listed[0].certificate.fingerprint;
      await fg.admin.post(`/v1/devices/${victim}/revoke`);
      const waiting = clients.filter((_c, i) => answers[i]!.status !== 200);
      expect((await waiting[0]!.bind(psks[0])).status).to.equal(200);
      expect((await waiting[1]!.bind(psks[0])).json.code).to.equal('identity_device_limit');
      await fg.admin.patch('/v1/identities/capped', { maxDevices: limit + 1 });
      expect((await waiting[1]!.bind(psks[0])).status).to.equal(200);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });
});

import { expect } from 'chai';
import { useFleetgate } from '../support/admin-client.js';
import { DeviceClient, newDevice } from '../support/device-client.js';

/**
 * Every admin action from the command line. With DATABASE_URL the CLI talks to
 * Postgres itself; on the embedded database it goes through the running
 * server's control socket: the suite runs both ways.
 */
describe('CLI parity with the admin API', () => {
  const fg = useFleetgate();

  const cli = async (...args: string[]) => {
    const result = await fg.server.cli(args);
    expect(result.code, `fleetgate ${args.join(' ')}: ${result.stderr}`).to.equal(0);
    return result.stdout;
  };

  it('manages identities', async () => {
    expect(await cli('identity', 'create', 'cli-co', '--max-devices', '5')).to.equal(
      'created identity cli-co\n',
    );
    await cli('identity', 'create', 'plain');
    const table = await cli('identity', 'list');
    expect(table.split('\n')[0]).to.match(/^NAME\s+STATUS\s+DEVICES\s+MAX/);
    expect(table).to.match(/cli-co\s+active\s+0\s+5/);
    const shown = JSON.parse(await cli('identity', 'show', 'cli-co', '--json'));
    expect(shown).to.deep.include({ name: 'cli-co', maxDevices: 5, devices: 0 });
    await cli('identity', 'limit', 'cli-co', 'none');
    expect((await fg.admin.get('/v1/identities/cli-co')).json.maxDevices).to.equal(null);
    await cli('identity', 'limit', 'cli-co', '3');
    await cli('identity', 'disable', 'plain');
    expect((await fg.admin.get('/v1/identities/plain')).json.status).to.equal('disabled');
    await cli('identity', 'enable', 'plain');
    expect((await fg.admin.get('/v1/identities/plain')).json.status).to.equal('active');

    const missing = await fg.server.cli(['identity', 'show', 'ghost']);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.equal('fleetgate: no identity named ghost\n');
  });

  it('issues, lists and revokes PSKs; manages devices; prints the audit log', async () => {
    const secret = (await cli('psk', 'issue', 'cli-co', '--single-use')).trim();
    expect(secret).to.match(/^fgpsk_/);
    const device = newDevice({ commonName: 'cli-device' });
    const client = new DeviceClient(fg.server, device);
    try {
      expect((await client.bind(secret)).status).to.equal(200);
      const psks = await cli('psk', 'list', 'cli-co');
      expect(psks).to.not.include(secret);
      expect(psks).to.match(new RegExp(`${secret.slice(0, 12)}\\s+used_up\\s+1\\s+1`));
      const [psk] = JSON.parse(await cli('psk', 'list', 'cli-co', '--json')).psks;
      expect(await cli('psk', 'revoke', String(psk.id))).to.match(
        /^revoked PSK \d+ \(fgpsk_[\w-]+\.\.\.\) of cli-co\n$/,
      );
      const again = await fg.server.cli(['psk', 'revoke', String(psk.id)]);
      expect(again.code).to.equal(1);

      const devices = await cli('devices', 'list', 'cli-co');
      expect(devices).to.include(device.fingerprint);
      expect(devices).to.match(/CN=cli-device/);
      const shown = JSON.parse(await cli('device', 'show', device.fingerprint, '--json'));
      expect(shown).to.deep.include({ identity: 'cli-co', status: 'active' });
      expect(await cli('device', 'show', device.fingerprint)).to.match(/status:\s+active/);

      await cli('device', 'revoke', device.fingerprint, '--reason', 'lost in transit');
      const refused = await client.upload([{ name: 'temp', content: '1700000000000,1' }]);
      expect(refused.status).to.equal(403);
      expect(refused.json.code).to.equal('device_revoked');

      const audit = JSON.parse(await cli('audit', 'cli-co', '--json')).events;
      const revocation = audit.find((e: { action: string }) => e.action === 'device.revoked');
      expect(revocation).to.deep.include({ actor: 'cli', details: { reason: 'lost in transit' } });
      const byDevice = await cli('audit', '--device', device.fingerprint);
      expect(byDevice).to.match(/device\.revoked\s+cli\s+cli-co/);
      expect(byDevice).to.match(/device\.bound\s+device\s+cli-co/);
      const onlyBinds = JSON.parse(await cli('audit', '--action', 'device.bound', '--json')).events;
      expect(onlyBinds.every((e: { action: string }) => e.action === 'device.bound')).to.equal(
        true,
      );
    } finally {
      await client.close();
    }
  });

  it('keeps the original commands working', async () => {
    await cli('identity', 'create', 'classic');
    const secret = (
      await cli('psk', 'issue', 'classic', '--max-devices', '2', '--expires-in', '1d')
    ).trim();
    expect(secret).to.match(/^fgpsk_[A-Za-z0-9_-]{43}$/);
    const device = newDevice();
    const client = new DeviceClient(fg.server, device);
    try {
      await client.bind(secret);
      await client.upload([{ name: 'temp', content: '1700000000000,1.5\n1700000001000,2' }]);
      expect(await cli('export', device.fingerprint, 'temp')).to.equal(
        '1700000000000,1.5\n1700000001000,2\n',
      );
    } finally {
      await client.close();
    }
  });
});

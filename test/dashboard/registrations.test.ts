import { X509Certificate } from 'node:crypto';
import { expect } from 'chai';
import { signIn, useChromium } from '../support/chromium.js';
import { newDevice } from '../support/device-client.js';
import { useFixture, uniqueName } from '../support/fixture.js';

/** The dashboard's Registrations page: an owner confirms a device with its PIN (issue 12). */
describe('dashboard: confirming a device with its PIN in chromium', function () {
  this.timeout(180_000);
  const fixture = useFixture({ FLEETGATE_REGISTRATION_POLL_INTERVAL_MS: '0' });
  const browser = useChromium();

  it('lists the pending request, refuses a wrong PIN, confirms the right one', async () => {
    const { server } = fixture();
    const { page } = browser();
    const identity = uniqueName('dash-home');
    const created = await server.cli(['identity', 'create', identity, '--require-confirmation']);
    expect(created.code, created.stderr).to.equal(0);
    const psk = (await server.cli(['psk', 'issue', identity])).stdout.trim();
    const device = newDevice();
    const serial4 = new X509Certificate(device.certPem).serialNumber.slice(-4);
    const client = fixture().client(device);
    const started = await client.bind(psk);
    expect(started.status, started.text).to.equal(202);
    const { rid, pin, nonce } = started.json as { rid: string; pin: string; nonce: string };

    await signIn(page, server.adminUrl, server.adminToken);
    await page.waitForSelector(`text=${identity}`);
    await page.click(`a[href="#/identities/${identity}/registrations"]`);
    await page.waitForSelector('#confirm-registration');
    expect(await page.textContent('main')).to.contain(rid);
    // The page never shows the PIN: only the device does.
    expect(await page.textContent('main')).not.to.contain(pin);

    await page.fill('#reg-pin', pin.startsWith('A') ? `C${pin.slice(1)}` : `A${pin.slice(1)}`);
    await page.fill('#reg-serial', serial4);
    await page.click('#confirm-registration button[type=submit]');
    await page.waitForSelector('#reg-error');
    expect(await page.textContent('#reg-error')).to.contain('wrong_pin_or_serial');

    await page.fill('#reg-pin', pin);
    await page.fill('#reg-serial', serial4);
    await page.click('#confirm-registration button[type=submit]');
    await page.waitForSelector(`text=Confirmed request ${rid}`);
    expect(await page.textContent('main')).to.contain('PENDING_DEVICE_COMPLETION');

    const done = await client.send(
      'PUT',
      JSON.stringify({ nonce }),
      { 'content-type': 'application/json' },
      `/device_endpoint/registrations/${rid}`,
    );
    expect(done.status, done.text).to.equal(200);
    expect(done.json.status).to.equal('REGISTERED');
    await page.reload();
    await page.waitForSelector('#no-registrations');

    const audit = JSON.parse(
      (await server.cli(['audit', identity, '--action', 'registration.confirmed', '--json']))
        .stdout,
    );
    expect(audit.events).to.have.length(1);
    expect(audit.events[0]).to.include({ actor: 'admin-api' });
  });
});

import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import type { Page } from 'playwright-core';
import { signIn, useChromium } from '../support/chromium.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import { REPO_ROOT } from '../support/fleetgate-process.js';

/** The screenshot is kept here as a test artifact. */
const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');

/** 2000 points one second apart from an instant aligned to 5 s: 400 buckets of 5 s. */
const T0 = 1_700_000_000_000;
const POINTS = 2000;

/** Non-transparent pixels of the plot's canvas: more than the axes means lines were drawn. */
function inkedPixels(page: Page): Promise<number> {
  return page.evaluate(() => {
    const canvas = document.querySelector('#plot canvas') as HTMLCanvasElement | null;
    if (!canvas) return 0;
    const { data } = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height);
    let inked = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) inked += 1;
    return inked;
  });
}

describe('dashboard: end to end in chromium', function () {
  this.timeout(180_000);
  const fixture = useFixture();
  const browser = useChromium();

  it('refuses a wrong token and shows no data without signing in', async () => {
    const { server } = fixture();
    const { page, context } = browser();
    await page.goto(`${server.adminUrl}/`);
    await page.waitForSelector('#signin');
    expect(await page.isVisible('#nav')).to.equal(false);
    await page.fill('#token', 'fgadm_not-the-token');
    await page.click('#signin button[type=submit]');
    await page.waitForFunction(() => document.getElementById('signin-error')?.textContent !== '');
    expect(await page.textContent('#signin-error')).to.contain('not the admin token');
    expect(await context.cookies()).to.deep.equal([]);
    // The API behind the page answers nothing without a session or token.
    const status = await page.evaluate(async () => (await fetch('/v1/identities')).status);
    expect(status).to.equal(401);
    const session = await page.evaluate(async () => (await fetch('/dashboard/session')).status);
    expect(session).to.equal(401);
  });

  it('signs in, shows a bound device and plots its uploaded points, zoom re-queries finer', async () => {
    const { server } = fixture();
    const { page, context } = browser();
    const identity = uniqueName('dash');
    const { device, client } = await fixture().boundDevice(identity);
    const lines = Array.from({ length: POINTS }, (_, i) => `${T0 + i * 1000},${i % 50}`).join('\n');
    expect((await client.upload([{ name: 'temperature', content: `${lines}\n` }])).status).to.equal(
      200,
    );

    await signIn(page, server.adminUrl, server.adminToken);
    await page.waitForSelector(`text=${identity}`);
    const [cookie] = await context.cookies();
    expect(cookie).to.include({ name: 'fleetgate_session', httpOnly: true, sameSite: 'Strict' });
    expect(await page.evaluate(() => document.cookie)).to.equal('');

    await page.click(`a[href="#/identities/${identity}/devices"] >> nth=0`);
    await page.waitForSelector('a.device');
    expect(await page.textContent('a.device')).to.equal(device.fingerprint);
    expect(await page.textContent('main')).to.contain('active');

    await page.click('a.device');
    await page.waitForSelector('#plot[data-points]');
    expect(await page.getAttribute('#plot', 'data-series')).to.equal('temperature');
    expect(await page.getAttribute('#plot', 'data-bucket-s')).to.equal('5');
    expect(await page.getAttribute('#plot', 'data-points')).to.equal(String(POINTS / 5));
    expect(await page.textContent('main')).to.contain(String(POINTS)); // the series' point count
    await page.waitForFunction(() => document.querySelector('#plot canvas') !== null);
    expect(await inkedPixels(page)).to.be.greaterThan(1000);

    // Drag across a quarter of the plot: the page asks the server again at a finer bucket.
    const over = (await page.locator('#plot .u-over').boundingBox())!;
    await page.mouse.move(over.x + over.width * 0.25, over.y + over.height / 2);
    await page.mouse.down();
    await page.mouse.move(over.x + over.width * 0.5, over.y + over.height / 2, { steps: 5 });
    await page.mouse.up();
    await page.waitForFunction(
      () => document.getElementById('plot')?.getAttribute('data-bucket-s') !== '5',
    );
    const finer = Number(await page.getAttribute('#plot', 'data-bucket-s'));
    const zoomed = Number(await page.getAttribute('#plot', 'data-points'));
    expect(finer).to.be.lessThan(5);
    // About a quarter of the 2000 s, at the finer bucket.
    expect(zoomed).to.be.within(350 / finer, 650 / finer);

    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-device.png'), fullPage: true });
  });

  it('refuses a state change without the CSRF token, revokes with it, and the audit log shows it', async () => {
    const { server } = fixture();
    const { page } = browser();
    const identity = uniqueName('dash-revoke');
    const { device, client } = await fixture().boundDevice(identity);
    // Only the hash changes (the last test left a device page, with its own #revoke form):
    // wait for the page that answers this route.
    await page.goto(`${server.adminUrl}/#/devices/${device.fingerprint}`);
    await page.waitForSelector(`#main[data-route="#/devices/${device.fingerprint}"] #revoke`);

    const forged = await page.evaluate(async (fp) => {
      const res = await fetch(`/v1/devices/${fp}/revoke`, { method: 'POST' });
      return { status: res.status, body: await res.json() };
    }, device.fingerprint);
    expect(forged.status).to.equal(403);
    expect(forged.body.code).to.equal('csrf_failed');
    expect(await page.textContent('#device-status')).to.equal('active');

    await page.fill('#revoke-reason', 'stolen in test');
    await page.click('#revoke button[type=submit]');
    await page.waitForFunction(
      () => document.getElementById('device-status')?.textContent === 'revoked',
    );
    expect((await client.upload([{ name: 't', content: '1700000000000,1\n' }])).status).to.equal(
      403,
    );

    await page.click('a[href="#/audit"]');
    await page.waitForSelector('#audit-filter');
    await page.fill('#audit-identity', identity);
    await page.fill('#audit-action', 'device.revoked');
    await page.click('#audit-filter button[type=submit]');
    // The page on screen is the filtered one (the unfiltered list had span.action too).
    await page.waitForFunction(() =>
      document.getElementById('main')?.dataset.route?.includes('action=device.revoked'),
    );
    const actions = await page.locator('span.action').allTextContents();
    expect(actions).to.deep.equal(['device.revoked']);
    expect(await page.textContent('main')).to.contain('stolen in test');
  });

  it('issues a PSK shown once, revokes one, and keeps the admin token out of the page', async () => {
    const { server } = fixture();
    const { page } = browser();
    const identity = uniqueName('dash-psk');
    await fixture().identityWithPsk(identity);
    await page.goto(`${server.adminUrl}/#/identities/${identity}/psks`);
    await page.waitForSelector('#issue-psk');
    expect(await page.locator('button.revoke-psk').count()).to.equal(1);
    await page.fill('#psk-max', '3');
    await page.click('#issue-psk button[type=submit]');
    await page.waitForSelector('#psk-secret');
    const secret = (await page.textContent('#psk-secret'))!;
    expect(secret).to.match(/^fgpsk_/);
    expect(await page.locator('button.revoke-psk').count()).to.equal(2);

    // The new secret binds a device: it is the real one.
    const { newDevice } = await import('../support/device-client.js');
    expect((await fixture().client(newDevice()).bind(secret)).status).to.equal(200);

    await page.click('button.revoke-psk >> nth=0');
    await page.waitForFunction(() => document.querySelectorAll('button.revoke-psk').length === 1);

    // Shown once: gone after a reload; the admin token is nowhere in the page or its storage.
    await page.reload();
    await page.waitForSelector('#issue-psk');
    const html = await page.content();
    expect(html).not.to.contain(secret);
    expect(html).not.to.contain(server.adminToken);
    const stored = await page.evaluate(() => [
      document.cookie,
      JSON.stringify({ ...localStorage }),
      JSON.stringify({ ...sessionStorage }),
    ]);
    expect(stored.join(' ')).not.to.contain(server.adminToken);
    expect(stored.join(' ')).not.to.contain(secret);
    expect(server.adminToken).to.have.length.greaterThan(10);
  });

  it('lists the whole fleet page by page and fills itself as devices bind, without a reload', async () => {
    const { server } = fixture();
    const { page } = browser();
    const first = await fixture().boundDevice(uniqueName('dash-fleet-a'));
    const second = await fixture().boundDevice(uniqueName('dash-fleet-b'));
    await page.goto(`${server.adminUrl}/#/devices?limit=1`);
    await page.waitForSelector('a.device');
    const seen: string[] = [];
    for (;;) {
      seen.push(...(await page.locator('a.device').allTextContents()));
      if ((await page.locator('#next').count()) === 0) break;
      const before = await page.textContent('a.device');
      await page.click('#next');
      await page.waitForFunction(
        (fp) => document.querySelector('a.device')?.textContent !== fp,
        before,
      );
    }
    expect(seen).to.include(first.device.fingerprint);
    expect(seen).to.include(second.device.fingerprint);
    expect(new Set(seen).size).to.equal(seen.length);

    await page.goto(`${server.adminUrl}/#/devices?limit=1000`);
    await page.waitForSelector(`text=${second.device.fingerprint}`);
    await page.evaluate(() => {
      (window as unknown as { marker: number }).marker = 42;
    });
    const late = await fixture().boundDevice(uniqueName('dash-fleet-late'));
    // The list refreshes itself (every 5 s): the new device appears in the same page load.
    await page.waitForSelector(`text=${late.device.fingerprint}`, { timeout: 30_000 });
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).to.equal(
      42,
    );
  });

  it('signs out: the cookie no longer opens the API', async () => {
    const { server } = fixture();
    const { page } = browser();
    await page.goto(`${server.adminUrl}/#/identities`);
    await page.waitForSelector('#signout');
    await page.click('#signout');
    await page.waitForSelector('#signin');
    const status = await page.evaluate(async () => (await fetch('/v1/identities')).status);
    expect(status).to.equal(401);
  });
});

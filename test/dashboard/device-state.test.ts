import { expect } from 'chai';
import type { Page } from 'playwright-core';
import { signIn, useChromium } from '../support/chromium.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import { connectDevice, deviceTopics } from '../support/mqtt-client.js';

/** What a hostile device may publish as its state: HTML and script in every field. */
const HOSTILE_STATUS = '<img src=x onerror="window.__xss=1">online';
const HOSTILE_FIELDS = {
  note: '</code><script>window.__xss=2</script>',
  nested: { a: '"><svg onload="window.__xss=3"></svg>' },
  level: 3,
};

/** Issue 14: a device's last state (MQTT, seed 000) on the dashboard, shown as text only. */
describe('dashboard: the last state of a device', function () {
  this.timeout(120_000);
  const fx = useFixture({ FLEETGATE_MQTT_PORT: '0' });
  const browser = useChromium();

  it('shows a state published over MQTT on the open device page, escaped, and in the list', async () => {
    const identity = uniqueName('dash-state');
    const { device } = await fx().boundDevice(identity);
    const { page } = browser();
    await signIn(page, fx().server.adminUrl, fx().server.adminToken);
    await page.goto(`${fx().server.adminUrl}/#/devices/${device.fingerprint}`);
    await page.waitForSelector('#device-state');
    expect(await page.textContent('#device-state')).to.equal('-');
    await page.evaluate(() => {
      (window as unknown as { marker: number }).marker = 42;
    });

    // The real path: the device publishes its state on its topic, at QoS 1 (PUBACK after commit).
    const client = await connectDevice(fx(), device);
    try {
      await client.publishAsync(
        deviceTopics(identity, device).state,
        JSON.stringify({ status: HOSTILE_STATUS, ...HOSTILE_FIELDS }),
        { qos: 1 },
      );
    } finally {
      await client.endAsync();
    }
    const shown = await fx().server.cli(['device', 'show', device.fingerprint, '--json']);
    const at = (JSON.parse(shown.stdout) as { lastState: { at: string } }).lastState.at;

    // The page refreshes itself (every 5 s): the state appears without a reload.
    await page.waitForFunction(
      () => document.getElementById('device-state')?.textContent !== '-',
      undefined,
      { timeout: 20_000 },
    );
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).to.equal(
      42,
    );
    const iso = new Date(at).toISOString().replace('.000Z', 'Z');
    expect(await page.textContent('#device-state')).to.equal(`${HOSTILE_STATUS} (${iso})`);
    // The fields as JSON text (jsonb keeps its own key order).
    expect(JSON.parse((await page.textContent('#device-state-fields'))!)).to.deep.equal(
      HOSTILE_FIELDS,
    );
    await assertNothingInjected(page);

    // A fresh load of the device page, and the devices list, show it the same way.
    await page.reload();
    await page.waitForSelector('#device-state-fields');
    expect(await page.textContent('#device-state')).to.equal(`${HOSTILE_STATUS} (${iso})`);
    await assertNothingInjected(page);
    await page.goto(`${fx().server.adminUrl}/#/identities/${identity}/devices`);
    await page.waitForSelector('span.last-state');
    expect(await page.textContent('span.last-state')).to.equal(`${HOSTILE_STATUS} (${iso})`);
    await page.goto(`${fx().server.adminUrl}/#/devices?limit=1000`);
    await page.waitForSelector(`text=${device.fingerprint}`);
    const states = await page.locator('span.last-state').allTextContents();
    expect(states).to.include(`${HOSTILE_STATUS} (${iso})`);
    await assertNothingInjected(page);
  });
});

/** The hostile markup stayed text: no element it names exists and none of its scripts ran. */
async function assertNothingInjected(page: Page): Promise<void> {
  const found = await page.evaluate(() => ({
    xss: (window as unknown as { __xss?: number }).__xss ?? null,
    injected: document.querySelectorAll('main img, main svg, main script').length,
  }));
  expect(found).to.deep.equal({ xss: null, injected: 0 });
}

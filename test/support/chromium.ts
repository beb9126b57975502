import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/** Debian's chromium (CI installs the `chromium` package with apt-get). */
export const CHROMIUM = process.env.FLEETGATE_CHROMIUM ?? '/usr/bin/chromium';

/**
 * Headless chromium with a fresh user-data dir, no sandbox and no background
 * networking: the dashboard must work on a machine with no internet.
 */
export async function launchChromium(): Promise<{ context: BrowserContext; dir: string }> {
  if (!fs.existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: apt-get install chromium (as .ci/run does)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-chromium-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  return { context, dir };
}

/**
 * Chromium for a mocha suite: launched in `before`, closed (and its user-data
 * dir removed) in `after`. The returned function gives the context and its page.
 */
export function useChromium(): () => { context: BrowserContext; page: Page } {
  let launched: { context: BrowserContext; dir: string } | undefined;
  let page: Page | undefined;
  before(async () => {
    launched = await launchChromium();
    page = launched.context.pages()[0] ?? (await launched.context.newPage());
  });
  after(async () => {
    await launched?.context.close();
    if (launched) fs.rmSync(launched.dir, { recursive: true, force: true });
  });
  return () => {
    if (!launched || !page)
      throw new Error('useChromium: chromium is not launched (outside a test?)');
    return { context: launched.context, page };
  };
}

/** Signs the page in to the dashboard at `adminUrl` with the admin token. */
export async function signIn(page: Page, adminUrl: string, token: string): Promise<void> {
  await page.goto(`${adminUrl}/`);
  await page.waitForSelector('#signin');
  await page.fill('#token', token);
  await page.click('#signin button[type=submit]');
  await page.waitForSelector('#nav:not([hidden])');
}

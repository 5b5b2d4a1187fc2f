// A real browser for tests: Debian's Chromium (`apt-get install chromium`), headless, driven by
// playwright-core (which downloads no browser of its own). CHROMIUM_PATH points elsewhere.
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import type { Test } from 'tap';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** Screenshots land here (test-output/ is ignored by git). */
export const SCREENSHOT_ROOT = fileURLToPath(new URL('../../test-output/', import.meta.url));

/** One headless Chromium for the test file, closed at its teardown. */
export async function launchBrowser(t: Test): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`no Chromium at ${CHROMIUM_PATH}: install it (apt-get install chromium) or set CHROMIUM_PATH`);
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    // --no-sandbox: containers and CI runners as root have no user namespaces for Chromium's
    // sandbox; --disable-dev-shm-usage: a container's /dev/shm is often 64 MB, too small for it.
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    timeout: 60_000,
  });
  t.teardown(() => browser.close());
  return browser;
}

export type WatchedPage = Readonly<{
  context: BrowserContext;
  page: Page;
  /** Script errors, and Content-Security-Policy or Trusted Types violations, as the page reported them. */
  problems: string[];
}>;

/**
 * A page in a context of its own (its own sessionStorage), watched for what a test must fail on:
 * uncaught script errors and policy violations (Chromium reports those on the console).
 */
export async function openPage(t: Test, browser: Browser): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: 'en-GB' });
  t.teardown(() => context.close());
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content.Security.Policy|Trusted Type|Refused to/i.test(message.text())) {
      problems.push(`policy: ${message.text()}`);
    }
  });
  return { context, page, problems };
}

/** A full-page screenshot at test-output/<folder>/<name>.png; returns its path. */
export async function screenshot(page: Page, folder: string, name: string): Promise<string> {
  const dir = `${SCREENSHOT_ROOT}${folder}/`;
  mkdirSync(dir, { recursive: true });
  const path = `${dir}${name}.png`;
  await page.screenshot({ path, fullPage: true });
  return path;
}

/**
 * What a person reads, opened in Debian's chromium (headless, driven by playwright-core): a screenshot
 * per width, kept under test-artifacts/ (or $DIFUSION_SCREENSHOTS), and the text a visitor sees.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { ROOT } from './cli.js';

export const CHROMIUM = '/usr/bin/chromium';

export const PHONE = { name: 'phone', width: 390, height: 844 } as const;
export const DESKTOP = { name: 'desktop', width: 1366, height: 900 } as const;
export type Viewport = { name: string; width: number; height: number };

export interface PageView {
  viewport: Viewport;
  /** HTTP status of the main document (0 for file: URLs). */
  status: number;
  /** document.body.innerText: what a visitor reads. */
  text: string;
  title: string;
  screenshot: string;
  /** The page is no wider than the viewport (no sideways scrolling on a phone). */
  fitsWidth: boolean;
  /** Requests the page made to anything but its own document (a self-contained page makes none). */
  externalRequests: string[];
}

export function screenshotDir(): string {
  const dir = process.env.DIFUSION_SCREENSHOTS ?? path.join(ROOT, 'test-artifacts', 'screenshots');
  mkdirSync(dir, { recursive: true });
  return dir;
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** Opens url at each viewport, full-page screenshot named `<name>-<viewport>.png`. */
export async function viewPage(url: string, name: string, viewports: Viewport[] = [PHONE, DESKTOP]): Promise<PageView[]> {
  const browser = await launchBrowser();
  const views: PageView[] = [];
  try {
    for (const viewport of viewports) {
      const context = await browser.newContext({ viewport: { width: viewport.width, height: viewport.height } });
      const page = await context.newPage();
      const externalRequests: string[] = [];
      page.on('request', (request) => {
        if (request.url() !== url && !request.url().startsWith('data:')) externalRequests.push(request.url());
      });
      const response = await page.goto(url, { waitUntil: 'load' });
      const screenshot = path.join(screenshotDir(), `${name}-${viewport.name}.png`);
      await page.screenshot({ path: screenshot, fullPage: true });
      const text = await page.evaluate(() => document.body.innerText);
      const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
      views.push({
        viewport,
        status: response?.status() ?? 0,
        text,
        title: await page.title(),
        screenshot,
        fitsWidth: scrollWidth <= viewport.width,
        externalRequests,
      });
      await context.close();
    }
  } finally {
    await browser.close();
  }
  return views;
}

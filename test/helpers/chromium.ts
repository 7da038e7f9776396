/**
 * A real Chromium for tests: Debian's `chromium` package at /usr/bin/chromium, driven by
 * playwright-core (which never downloads a browser). When that binary is missing, every browser
 * test is skipped with a title that says why; .ci/run installs it, and CI fails on any skip.
 *
 * One browser process serves a whole test file (each test opens a context of its own, so cookies
 * never leak between tests), and a limiter bounds how many tests drive it at once.
 */
import { existsSync } from 'node:fs';
import type { Implementation, TestFn } from 'ava';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';

/** Debian's Chromium, or another Chromium-based browser named by CHROMIUM_PATH (the forge's workflow uses Chrome). */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const CHROMIUM_FOUND = existsSync(CHROMIUM_PATH);
export const CHROMIUM_SKIP_REASON = `skipped: Chromium not found at ${CHROMIUM_PATH} (apt-get install chromium; .ci/run does)`;

/** ava's test, or test.skip with the reason in the title when Chromium is not installed. */
export function chromiumTest(test: TestFn): TestFn {
  if (CHROMIUM_FOUND) return test;
  const skipWithReason = (title: string, implementation: Implementation<unknown[]>) =>
    test.skip(`${title} (${CHROMIUM_SKIP_REASON})`, implementation);
  return Object.assign(skipWithReason, test) as unknown as TestFn;
}

/** One Chromium for the file, launched on first use; close() is safe to call whether or not it was. */
export class SharedChromium {
  #browser: Promise<Browser> | undefined;

  browser(): Promise<Browser> {
    this.#browser ??= chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, timeout: 30_000 });
    return this.#browser;
  }

  /** A fresh context (its own cookie jar), closed when the test ends, pass or fail. */
  async context(t: { teardown(fn: () => Promise<void>): void }): Promise<BrowserContext> {
    const context = await (await this.browser()).newContext();
    context.setDefaultTimeout(15_000);
    context.setDefaultNavigationTimeout(15_000);
    t.teardown(() => context.close().catch(() => {}));
    return context;
  }

  async close(): Promise<void> {
    const launching = this.#browser;
    this.#browser = undefined;
    if (launching === undefined) return;
    const browser = await launching.catch(() => undefined);
    await browser?.close().catch(() => {});
  }
}

/** Runs at most `max` of the given jobs at once; the rest wait their turn. */
export function limiter(max: number): <T>(job: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async (job) => {
    if (active < max) active++;
    else await new Promise<void>((resolve) => waiting.push(resolve)); // a finishing job hands over its slot
    try {
      return await job();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}

/** What the page shows, as a person reads it (Chromium shows a JSON answer as plain text). */
export async function shownText(page: Page): Promise<string> {
  // A string expression: the tests are typed without the DOM library.
  return (await page.evaluate<string>('document.body.innerText')).trim();
}

/** What the page shows, parsed as JSON; fails with the text when it is not JSON. */
export async function shownJson(page: Page): Promise<unknown> {
  const text = await shownText(page);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new Error(`${page.url()} shows ${JSON.stringify(text)}, not JSON`);
  }
}

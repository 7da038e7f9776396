/**
 * The seed's walk-through in a real browser (Debian's Chromium, driven by playwright-core), against
 * `npm start`'s own entry (app/main.ts, which mounts the seed through app/routes.ts) as a child
 * process, with every URL typed into the address bar as a person would: /set, then /get shows the
 * time; after a restart /get shows {}. test/browser.test.ts checks the sessions themselves in Chromium.
 */
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import type { BrowserContext, Page, Response } from 'playwright-core';
import { loadConfig } from '../../config/index.ts';
import { TEST_KEY } from '../helpers/app.ts';
import { chromiumTest, SharedChromium, shownJson, shownText } from '../helpers/chromium.ts';
import { APP_ENTRY, type ServerProcess, startServerProcess } from '../helpers/process.ts';

const test = chromiumTest(anyTest as TestFn);

/** Same keys on every start, so a restarted server still verifies the browser's cookie; no drain, so it stops at once. */
const SERVER_ENV = { SESSION_KEYS: TEST_KEY, SESSION_STORE: 'memory', SHUTDOWN_DRAIN: '0' };
/** The session cookie's name under the server's default settings. */
const COOKIE = loadConfig({ NODE_ENV: 'development', ...SERVER_ENV }).session.cookie.name;

const chromium = new SharedChromium();
test.after.always(() => chromium.close());

type Running = ServerProcess & { url: string };

async function stop(server: Running, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill(signal);
  await server.exited;
}

/** `npm start`'s entry (app/main.ts in an empty temp dir), killed when the test ends. */
async function startServer(t: ExecutionContext, env: Record<string, string> = {}): Promise<Running> {
  const server = await startServerProcess({ ...SERVER_ENV, ...env }, { script: APP_ENTRY });
  t.teardown(() => stop(server));
  return server;
}

function unixNow(): number {
  return Math.floor(Date.now() / 1000);
}

async function sessionCookie(context: BrowserContext, url: string) {
  return (await context.cookies(url)).find((cookie) => cookie.name === COOKIE);
}

/** Types `url` into the address bar and waits for the page. */
async function visit(page: Page, url: string): Promise<Response> {
  const response = await page.goto(url);
  if (response === null) throw new Error(`no answer for ${url}`);
  return response;
}

test('walk-through in Chromium: /set, /get shows the time; after a restart on the same port /get shows {}', async (t) => {
  const first = await startServer(t);
  const app = first.url;
  const page = await (await chromium.context(t)).newPage();

  const before = unixNow();
  const set = await visit(page, `${app}/set`);
  const after = unixNow();
  t.is(set.status(), 200);
  t.is(await shownText(page), 'ok', '/set shows ok');
  const get = await visit(page, `${app}/get`);
  t.is(get.status(), 200);
  const data = (await shownJson(page)) as { time: number };
  t.deepEqual(Object.keys(data), ['time'], '/get shows the session data: just the time');
  t.true(Number.isInteger(data.time), `time ${data.time} is whole seconds`);
  t.true(
    data.time >= before - 2 && data.time <= after + 2,
    `time ${data.time} is the Unix time of /set (${before}..${after})`,
  );
  await visit(page, `${app}/get`);
  t.deepEqual(await shownJson(page), data, 'a second look at /get shows the same');
  const cookie = await sessionCookie(page.context(), app);
  t.truthy(cookie, `the browser holds the ${COOKIE} cookie`);

  // Stop the program (Ctrl+C) and start it again on the same port with the same keys.
  t.is(
    await stop(first, 'SIGINT').then(() => first.exited),
    0,
    `the server exits cleanly on SIGINT: ${first.stderr()}`,
  );
  const port = new URL(app).port;
  const second = await startServer(t, { PORT: port });
  t.is(second.url, app, 'the restarted server listens on the same address');

  t.deepEqual(await sessionCookie(page.context(), app), cookie, 'the browser still holds the same cookie');
  const again = await visit(page, `${app}/get`);
  t.is(again.status(), 200);
  t.deepEqual(await shownJson(page), {}, 'memory storage is not persistent: /get shows {} after the restart');
});

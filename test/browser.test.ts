/**
 * The seed page's walk-through in a real browser (Debian's Chromium, driven by playwright-core),
 * against the real server process, with every URL typed into the address bar as a person would:
 * /set, then /get shows the time; after a restart /get shows {}. Plus what a browser adds: the
 * session cookie is HttpOnly, /del ends the session, and pages of another site cannot end or
 * change it (no-cors fetch, auto-submitted form, followed links).
 *
 * The app is at http://127.0.0.1:PORT; the attacker's pages are served by a second server and
 * opened as http://localhost:OTHER, which is another site (a site is scheme + host for an IP).
 */

import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import type { BrowserContext, Page, Response } from 'playwright-core';
import { loadConfig } from '../config/index.ts';
import { TEST_KEY } from './helpers/app.ts';
import { chromiumTest, limiter, SharedChromium, shownJson, shownText } from './helpers/chromium.ts';
import { type ServerProcess, startServerProcess } from './helpers/process.ts';

const test = chromiumTest(anyTest as TestFn);

/** Same keys on every start, so a restarted server still verifies the browser's cookie; no drain, so it stops at once. */
const SERVER_ENV = { SESSION_KEYS: TEST_KEY, SESSION_STORE: 'memory', SHUTDOWN_DRAIN: '0' };
/** The session cookie's name under the server's default settings. */
const COOKIE = loadConfig({ NODE_ENV: 'development', ...SERVER_ENV }).session.cookie.name;

const chromium = new SharedChromium();
/** Each test has a browser context and at least one server process: two tests at a time is plenty for 2 cores. */
const bounded = limiter(2);
test.after.always(() => chromium.close());

type Running = ServerProcess & { url: string };

async function stop(server: Running, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill(signal);
  await server.exited;
}

/** The real server (app/server.ts in an empty temp dir), killed when the test ends. */
async function startServer(t: ExecutionContext, env: Record<string, string> = {}): Promise<Running> {
  const server = await startServerProcess({ ...SERVER_ENV, ...env });
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

/** /set, then /get: returns what /get showed. */
async function startSession(t: ExecutionContext, page: Page, app: string): Promise<{ time: number }> {
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
  return data;
}

test('walk-through in Chromium: /set, /get shows the time; after a restart on the same port /get shows {}', (t) =>
  bounded(async () => {
    const first = await startServer(t);
    const app = first.url;
    const page = await (await chromium.context(t)).newPage();

    const data = await startSession(t, page, app);
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
    const get = await visit(page, `${app}/get`);
    t.is(get.status(), 200);
    t.deepEqual(await shownJson(page), {}, 'memory storage is not persistent: /get shows {} after the restart');
  }));

test('Chromium: the session cookie is HttpOnly, so page scripts cannot read it', (t) =>
  bounded(async () => {
    const { url: app } = await sharedApp();
    const context = await chromium.context(t);
    const page = await context.newPage();
    await startSession(t, page, app);

    const cookie = await sessionCookie(context, app);
    t.truthy(cookie, `the browser holds the ${COOKIE} cookie`);
    t.true(cookie?.httpOnly, 'it is HttpOnly');
    t.is(cookie?.sameSite, 'Lax');
    t.is(cookie?.path, '/');
    t.is(cookie?.expires, -1, 'a browser-session cookie (no Expires)');

    await visit(page, `${app}/get`); // a page of the server's own origin
    const visible = await page.evaluate<string>('document.cookie');
    t.false(
      visible.split(/;\s*/).some((pair) => pair.startsWith(`${COOKIE}=`)),
      `document.cookie (${JSON.stringify(visible)}) lacks ${COOKIE}`,
    );
  }));

test('Chromium: /del ends the session, /get shows {} afterwards', (t) =>
  bounded(async () => {
    const { url: app } = await sharedApp();
    const context = await chromium.context(t);
    const page = await context.newPage();
    await startSession(t, page, app);

    const del = await visit(page, `${app}/del`);
    t.is(del.status(), 200);
    t.is(await shownText(page), 'ok', '/del shows ok');
    await visit(page, `${app}/get`);
    t.deepEqual(await shownJson(page), {}, '/get shows {} after /del');
  }));

// --- Cross-site: pages of another site try to end or change the session -----------------------

/** One app server for the tests that never restart it (each test has its own browser context, so its own session). */
let shared: Promise<Running> | undefined;
function sharedApp(): Promise<Running> {
  shared ??= startServerProcess(SERVER_ENV);
  return shared;
}
test.after.always(async () => {
  const server = await shared?.catch(() => undefined);
  if (server) await stop(server);
});

/** A tiny server of "another site": serves the attacker's pages, each aimed at `target`. */
let attacker: Promise<{ server: Server; port: number }> | undefined;
function attackerSite(): Promise<{ server: Server; port: number }> {
  attacker ??= (async () => {
    const server = createServer((request, response) => {
      const url = new URL(request.url ?? '/', 'http://localhost');
      const target = url.searchParams.get('target') ?? '';
      const pages: Record<string, string> = {
        // (a) a background request with the user's cookies, if the browser would send them
        '/fetch': `<script>
          fetch(${JSON.stringify(`${target}/del`)}, { credentials: 'include', mode: 'no-cors' })
            .then(() => { document.title = 'fetched'; }, (error) => { document.title = 'fetch failed: ' + error; });
        </script>`,
        // (b) a form that posts itself to /del as soon as the page has loaded
        '/form': `<form method="POST" action=${JSON.stringify(`${target}/del`)}><input name="x" value="1"></form>
          <script>addEventListener('load', () => setTimeout(() => document.forms[0].submit(), 0));</script>`,
        // (c) links the user is lured into following (top-level navigations)
        '/links': `<a id="del" href=${JSON.stringify(`${target}/del`)}>Claim your prize</a>
          <a id="set" href=${JSON.stringify(`${target}/set`)}>Or this one</a>`,
      };
      const body = pages[url.pathname];
      response.writeHead(body === undefined ? 404 : 200, { 'content-type': 'text/html; charset=utf-8' });
      response.end(`<!doctype html><title>attacker</title>${body ?? 'not found'}`);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return { server, port: (server.address() as AddressInfo).port };
  })();
  return attacker;
}
test.after.always(async () => {
  const site = await attacker?.catch(() => undefined);
  if (!site) return;
  site.server.closeAllConnections();
  site.server.close();
});

async function attackerPage(app: string, path: string): Promise<string> {
  const { port } = await attackerSite();
  return `http://localhost:${port}${path}?target=${encodeURIComponent(app)}`;
}

interface Victim {
  readonly app: string;
  readonly context: BrowserContext;
  readonly page: Page;
  readonly data: { time: number };
  readonly cookie: string;
}

/** A user with a live session on the app, about to visit another site. */
async function victim(t: ExecutionContext): Promise<Victim> {
  const { url: app } = await sharedApp();
  const context = await chromium.context(t);
  const page = await context.newPage();
  const data = await startSession(t, page, app);
  const cookie = await sessionCookie(context, app);
  if (cookie === undefined) throw new Error(`no ${COOKIE} cookie after /set`);
  return { app, context, page, data, cookie: cookie.value };
}

/** What the attacked request carried and what the server answered, for the assertions and the log. */
async function describe(
  t: ExecutionContext,
  label: string,
  response: Response,
): Promise<{ status: number; setCookie: string | undefined }> {
  const request = await response.request().allHeaders();
  const answer = await response.allHeaders();
  const reported = request['sec-fetch-site'] !== undefined;
  const sentCookie = reported ? String((request.cookie ?? '').includes(`${COOKIE}=`)) : '(not reported)';
  t.log(
    `${label}: Sec-Fetch-Site=${request['sec-fetch-site'] ?? '(not reported)'}, session cookie sent: ${sentCookie}; answered ${response.status()}, Set-Cookie: ${answer['set-cookie'] ?? '(none)'}`,
  );
  // Playwright does not always get the headers Chromium adds late (Sec-Fetch-*, Cookie) for a
  // no-cors fetch; when it does, they must say cross-site (localhost is another site than 127.0.0.1).
  if (reported) t.is(request['sec-fetch-site'], 'cross-site', `${label}: the browser labels the request cross-site`);
  return { status: response.status(), setCookie: answer['set-cookie'] };
}

/** Back on the app: /get shows the same session as before, and the browser holds the same cookie. */
async function assertSessionAlive(
  t: ExecutionContext,
  { app, context, page, data, cookie }: Victim,
  label: string,
): Promise<void> {
  t.is((await sessionCookie(context, app))?.value, cookie, `${label}: the browser still holds the same session cookie`);
  await visit(page, `${app}/get`);
  t.deepEqual(await shownJson(page), data, `${label}: /get shows the same session data as before (time ${data.time})`);
}

/** The refusal the app answers to a cross-site request that would change the session. */
async function assertRefused(
  t: ExecutionContext,
  label: string,
  answer: { status: number; setCookie: string | undefined },
): Promise<void> {
  t.is(answer.status, 403, `${label}: the app refuses it with 403`);
  t.false(
    (answer.setCookie ?? '').includes(`${COOKIE}=`),
    `${label}: the answer sets no session cookie (${answer.setCookie})`,
  );
}

test('Chromium, cross-site: a no-cors fetch of /del from another site leaves the session alive', (t) =>
  bounded(async () => {
    const user = await victim(t);
    const { page, app } = user;
    const delAnswer = page.waitForResponse((response) => response.url() === `${app}/del`);
    await visit(page, await attackerPage(app, '/fetch'));
    const answer = await describe(t, 'fetch', await delAnswer);
    await page.waitForFunction("document.title !== 'attacker'");
    t.is(await page.title(), 'fetched', 'the request went out (an opaque answer)');
    await assertSessionAlive(t, user, 'after the fetch');
    await assertRefused(t, 'fetch', answer);
  }));

test('Chromium, cross-site: an auto-submitted POST form to /del from another site leaves the session alive', (t) =>
  bounded(async () => {
    const user = await victim(t);
    const { page, app } = user;
    const delAnswer = page.waitForResponse((response) => response.url() === `${app}/del`);
    await visit(page, await attackerPage(app, '/form'));
    const response = await delAnswer;
    t.is(response.request().method(), 'POST');
    const answer = await describe(t, 'form', response);
    await page.waitForURL(`${app}/del`);
    const shown = await shownText(page);
    t.log(`the form's navigation showed: ${shown}`);
    await assertSessionAlive(t, user, 'after the form');
    await assertRefused(t, 'form', answer);
    t.notThrows(() => JSON.parse(shown) as unknown, `the refusal is a short JSON body: ${shown}`);
  }));

test('Chromium, cross-site: a link to /del followed from another site leaves the session alive', (t) =>
  bounded(async () => {
    const user = await victim(t);
    const { page, app } = user;
    await visit(page, await attackerPage(app, '/links'));
    const [response] = await Promise.all([page.waitForResponse(`${app}/del`), page.click('#del')]);
    const answer = await describe(t, 'link to /del', response);
    await page.waitForURL(`${app}/del`);
    const shown = await shownText(page);
    t.log(`the link's navigation showed: ${shown}`);
    await assertSessionAlive(t, user, 'after the link to /del');
    await assertRefused(t, 'link to /del', answer);
    t.notThrows(() => JSON.parse(shown) as unknown, `the refusal is a short JSON body: ${shown}`);
  }));

test('Chromium, cross-site: a link to /set followed from another site leaves the session unchanged', (t) =>
  bounded(async () => {
    const user = await victim(t);
    const { page, app, data } = user;
    // Let the clock pass the stored second, so a /set that went through would show a new time.
    while (unixNow() <= data.time) await sleep(50);
    await visit(page, await attackerPage(app, '/links'));
    const [response] = await Promise.all([page.waitForResponse(`${app}/set`), page.click('#set')]);
    const answer = await describe(t, 'link to /set', response);
    await page.waitForURL(`${app}/set`);
    const shown = await shownText(page);
    t.log(`the link's navigation showed: ${shown}`);
    await assertSessionAlive(t, user, 'after the link to /set');
    await assertRefused(t, 'link to /set', answer);
    t.notThrows(() => JSON.parse(shown) as unknown, `the refusal is a short JSON body: ${shown}`);
  }));

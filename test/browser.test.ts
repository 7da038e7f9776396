/**
 * Sessions in a real browser (Debian's Chromium, driven by playwright-core), against the real server
 * process with the test routes (test/helpers/test-server.ts), with every URL typed into the address
 * bar as a person would: /write, then /read shows the value; /end ends the session. Plus what a
 * browser adds: the session cookie is HttpOnly, and pages of another site cannot end or change the
 * session (no-cors fetch, auto-submitted form, followed links). The seed's walk-through in Chromium
 * is test/seed/browser.test.ts.
 *
 * The app is at http://127.0.0.1:PORT; the attacker's pages are served by a second server and
 * opened as http://localhost:OTHER, which is another site (a site is scheme + host for an IP).
 */

import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import type { BrowserContext, Page, Response } from 'playwright-core';
import { loadConfig } from '../config/index.ts';
import { TEST_KEY } from './helpers/app.ts';
import { chromiumTest, limiter, SharedChromium, shownJson, shownText } from './helpers/chromium.ts';
import { type ServerProcess, startServerProcess } from './helpers/process.ts';

const test = chromiumTest(anyTest as TestFn);

/** A memory store, and no drain, so the server stops at once. */
const SERVER_ENV = { SESSION_KEYS: TEST_KEY, SESSION_STORE: 'memory', SHUTDOWN_DRAIN: '0' };
/** The session cookie's name under the server's default settings. */
const COOKIE = loadConfig({ NODE_ENV: 'development', ...SERVER_ENV }).session.cookie.name;

const chromium = new SharedChromium();
/** Each test has a browser context and at least one server process: two tests at a time is plenty for 2 cores. */
const bounded = limiter(2);
test.after.always(() => chromium.close());

type Running = ServerProcess & { url: string };

async function stop(server: Running): Promise<void> {
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
  await server.exited;
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

let sessionsStarted = 0;

/** /write?value=…, then /read: returns what /read showed (the value written, or the test fails). */
async function startSession(t: ExecutionContext, page: Page, app: string): Promise<{ value: string }> {
  const value = `session ${++sessionsStarted}`;
  const write = await visit(page, `${app}/write?value=${encodeURIComponent(value)}`);
  t.is(write.status(), 200);
  t.is(await shownText(page), 'ok', '/write shows ok');
  const read = await visit(page, `${app}/read`);
  t.is(read.status(), 200);
  const data = (await shownJson(page)) as { value: string };
  t.deepEqual(data, { value }, '/read shows the session data: the value written');
  return data;
}

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

    await visit(page, `${app}/read`); // a page of the server's own origin
    const visible = await page.evaluate<string>('document.cookie');
    t.false(
      visible.split(/;\s*/).some((pair) => pair.startsWith(`${COOKIE}=`)),
      `document.cookie (${JSON.stringify(visible)}) lacks ${COOKIE}`,
    );
  }));

test('Chromium: /end ends the session, /read shows {} afterwards, and the cookie is gone', (t) =>
  bounded(async () => {
    const { url: app } = await sharedApp();
    const context = await chromium.context(t);
    const page = await context.newPage();
    await startSession(t, page, app);

    const end = await visit(page, `${app}/end`);
    t.is(end.status(), 200);
    t.is(await shownText(page), 'ok', '/end shows ok');
    t.is(await sessionCookie(context, app), undefined, 'the browser dropped the cleared cookie');
    await visit(page, `${app}/read`);
    t.deepEqual(await shownJson(page), {}, '/read shows {} after /end');
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
          fetch(${JSON.stringify(`${target}/end`)}, { credentials: 'include', mode: 'no-cors' })
            .then(() => { document.title = 'fetched'; }, (error) => { document.title = 'fetch failed: ' + error; });
        </script>`,
        // (b) a form that posts itself to /end as soon as the page has loaded
        '/form': `<form method="POST" action=${JSON.stringify(`${target}/end`)}><input name="x" value="1"></form>
          <script>addEventListener('load', () => setTimeout(() => document.forms[0].submit(), 0));</script>`,
        // (c) links the user is lured into following (top-level navigations)
        '/links': `<a id="end" href=${JSON.stringify(`${target}/end`)}>Claim your prize</a>
          <a id="write" href=${JSON.stringify(`${target}/write?value=theirs`)}>Or this one</a>`,
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
  readonly data: { value: string };
  readonly cookie: string;
}

/** A user with a live session on the app, about to visit another site. */
async function victim(t: ExecutionContext): Promise<Victim> {
  const { url: app } = await sharedApp();
  const context = await chromium.context(t);
  const page = await context.newPage();
  const data = await startSession(t, page, app);
  const cookie = await sessionCookie(context, app);
  if (cookie === undefined) throw new Error(`no ${COOKIE} cookie after /write`);
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

/** Back on the app: /read shows the same session as before, and the browser holds the same cookie. */
async function assertSessionAlive(
  t: ExecutionContext,
  { app, context, page, data, cookie }: Victim,
  label: string,
): Promise<void> {
  t.is((await sessionCookie(context, app))?.value, cookie, `${label}: the browser still holds the same session cookie`);
  await visit(page, `${app}/read`);
  t.deepEqual(await shownJson(page), data, `${label}: /read shows the same session data as before (${data.value})`);
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

test('Chromium, cross-site: a no-cors fetch of /end from another site leaves the session alive', (t) =>
  bounded(async () => {
    const user = await victim(t);
    const { page, app } = user;
    const endAnswer = page.waitForResponse((response) => response.url() === `${app}/end`);
    await visit(page, await attackerPage(app, '/fetch'));
    const answer = await describe(t, 'fetch', await endAnswer);
    await page.waitForFunction("document.title !== 'attacker'");
    t.is(await page.title(), 'fetched', 'the request went out (an opaque answer)');
    await assertSessionAlive(t, user, 'after the fetch');
    await assertRefused(t, 'fetch', answer);
  }));

test('Chromium, cross-site: an auto-submitted POST form to /end from another site leaves the session alive', (t) =>
  bounded(async () => {
    const user = await victim(t);
    const { page, app } = user;
    const endAnswer = page.waitForResponse((response) => response.url() === `${app}/end`);
    await visit(page, await attackerPage(app, '/form'));
    const response = await endAnswer;
    t.is(response.request().method(), 'POST');
    const answer = await describe(t, 'form', response);
    await page.waitForURL(`${app}/end`);
    const shown = await shownText(page);
    t.log(`the form's navigation showed: ${shown}`);
    await assertSessionAlive(t, user, 'after the form');
    await assertRefused(t, 'form', answer);
    t.notThrows(() => JSON.parse(shown) as unknown, `the refusal is a short JSON body: ${shown}`);
  }));

test('Chromium, cross-site: a link to /end followed from another site leaves the session alive', (t) =>
  bounded(async () => {
    const user = await victim(t);
    const { page, app } = user;
    await visit(page, await attackerPage(app, '/links'));
    const [response] = await Promise.all([page.waitForResponse(`${app}/end`), page.click('#end')]);
    const answer = await describe(t, 'link to /end', response);
    await page.waitForURL(`${app}/end`);
    const shown = await shownText(page);
    t.log(`the link's navigation showed: ${shown}`);
    await assertSessionAlive(t, user, 'after the link to /end');
    await assertRefused(t, 'link to /end', answer);
    t.notThrows(() => JSON.parse(shown) as unknown, `the refusal is a short JSON body: ${shown}`);
  }));

test('Chromium, cross-site: a link to /write followed from another site leaves the session unchanged', (t) =>
  bounded(async () => {
    const user = await victim(t);
    const { page, app } = user;
    // The link writes a value of its own: had it gone through, /read would show it.
    const target = `${app}/write?value=theirs`;
    await visit(page, await attackerPage(app, '/links'));
    const [response] = await Promise.all([page.waitForResponse(target), page.click('#write')]);
    const answer = await describe(t, 'link to /write', response);
    await page.waitForURL(target);
    const shown = await shownText(page);
    t.log(`the link's navigation showed: ${shown}`);
    await assertSessionAlive(t, user, 'after the link to /write');
    await assertRefused(t, 'link to /write', answer);
    t.notThrows(() => JSON.parse(shown) as unknown, `the refusal is a short JSON body: ${shown}`);
  }));

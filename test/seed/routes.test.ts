/**
 * The seed's routes (app/seed/), as app/routes.ts mounts them: /set, /get and /del answer every HTTP
 * method, with the right bodies and content types, and / names them. Delete this folder with app/seed/.
 */
import test, { type ExecutionContext } from 'ava';
import { addRoutes } from '../../app/routes.ts';
import type { MemoryStore } from '../../app/stores/memory.ts';
import { appForTest, type RunningApp } from '../helpers/app.ts';
import { Browser, cookieValue, sessionIdOf } from '../helpers/browser.ts';
import { storeKeyOf } from '../helpers/store-key.ts';

/** An app serving app/routes.ts's routes (the seed's), closed when the test ends. */
const seedApp = (t: ExecutionContext): Promise<RunningApp> => appForTest(t, {}, { routes: addRoutes });

// Every method fetch may send; TRACE, TRACK and CONNECT are refused by fetch itself.
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'PURGE'] as const;

for (const method of METHODS) {
  test(`${method} /set, /get and /del`, async (t) => {
    const app = await seedApp(t);
    const browser = new Browser(app.url);

    const set = await browser.request('/set', { method });
    t.is(set.status, 200);
    t.is(set.body, 'ok');

    const get = await browser.request('/get', { method });
    t.is(get.status, 200);
    t.regex(get.headers.get('content-type') ?? '', /^application\/json/);
    t.deepEqual(Object.keys(JSON.parse(get.body)), ['time']);

    const del = await browser.request('/del', { method });
    t.is(del.status, 200);
    t.is(del.body, 'ok');
    t.deepEqual(JSON.parse((await browser.request('/get', { method })).body), {});
  });
}

test('HEAD answers like GET without a body', async (t) => {
  const app = await seedApp(t);
  const browser = new Browser(app.url);
  t.is((await browser.request('/set', { method: 'HEAD' })).status, 200);
  const head = await browser.request('/get', { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(head.body, '');
  t.deepEqual(Object.keys(await browser.json('/get')), ['time'], 'HEAD /set stored the time');
});

test('/get without a session answers {} as JSON and sets no cookie', async (t) => {
  const app = await seedApp(t);
  const answer = await new Browser(app.url).request('/get');
  t.is(answer.status, 200);
  t.regex(answer.headers.get('content-type') ?? '', /^application\/json/);
  t.is(answer.body, '{}');
  t.deepEqual(answer.setCookies, [], 'an empty session is never stored nor sent');
});

test('/get never shows koa-session internals', async (t) => {
  const app = await seedApp(t);
  const browser = new Browser(app.url);
  await browser.request('/set');
  const body = (await browser.request('/get')).body;
  t.notRegex(body, /_expire|_maxAge|_session/);
});

test('/del destroys the session in the store and clears the cookie; replaying the old cookie gives {}', async (t) => {
  const app = await seedApp(t);
  const browser = new Browser(app.url);
  await browser.request('/set');
  const oldCookie = browser.cookieHeader;
  t.truthy(oldCookie);
  t.is((await app.store.health()).sessions, 1);

  const del = await browser.request('/del');
  t.is(del.body, 'ok');
  t.is(cookieValue(del.setCookies, 'sid'), '', 'the cookie is cleared');
  t.regex(del.setCookies[0], /expires=Thu, 01 Jan 1970/i);
  t.is((await app.store.health()).sessions, 0, 'the stored session is gone');

  const replay = new Browser(app.url);
  const answer = await replay.request('/get', { headers: { cookie: oldCookie! } });
  t.is(answer.status, 200);
  t.is(answer.body, '{}');
});

test('responses that touch a session are not cacheable; unknown paths are 404 without a session', async (t) => {
  const app = await seedApp(t);
  const browser = new Browser(app.url);
  for (const path of ['/set', '/get', '/del']) {
    t.is((await browser.request(path)).headers.get('cache-control'), 'no-store', path);
  }
  await browser.request('/set');
  const store = app.store as MemoryStore;
  const counters = () => ({ ...store.stats, size: store.size, ...store.segments() });
  const before = counters();
  for (const path of ['/nope', '/set/more', '/', '/favicon.ico']) {
    const answer = await browser.request(path, { method: path === '/' ? 'GET' : 'POST' });
    t.is(answer.status, path === '/' ? 200 : 404, path);
    t.deepEqual(answer.setCookies, [], `${path}: no cookie`);
  }
  t.deepEqual(counters(), before, 'requests outside the session routes, with a session cookie, never touch the store');
});

test('a second /set on the same session stores the new time and does not re-send the cookie', async (t) => {
  const app = await seedApp(t);
  const browser = new Browser(app.url);
  t.is((await browser.request('/set')).setCookies.length, 1);
  const id = sessionIdOf(browser.cookies.get('sid'))!;
  const first = (await browser.json('/get')).time as number;
  t.is(typeof first, 'number');
  // Wait for the next second by the clock, not a fixed sleep: the stored time must then change.
  while (Math.floor(Date.now() / 1000) <= first)
    await new Promise((resolve) => setTimeout(resolve, 1_000 - (Date.now() % 1_000) + 5));
  const again = await browser.request('/set');
  t.is(again.body, 'ok');
  t.deepEqual(again.setCookies, [], 'same id, same cookie: nothing to send');
  const second = (await browser.json('/get')).time as number;
  t.true(second > first, `the stored time changed: ${first} then ${second}`);
  t.like(
    JSON.parse((await app.store.get(storeKeyOf(app, id), 60_000))!),
    { time: second },
    'in the store, under the same id',
  );
  t.is((app.store as MemoryStore).size, 1, 'no second session');
});

test('TRACE, which fetch refuses to send, is answered too', async (t) => {
  const app = await seedApp(t);
  const { request } = await import('node:http');
  const trace = (path: string, cookie?: string) =>
    new Promise<{ status: number; body: string; cookie?: string }>((resolve, reject) => {
      const req = request(`${app.url}${path}`, { method: 'TRACE', headers: cookie ? { cookie } : {} }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body, cookie: res.headers['set-cookie']?.[0]?.split(';')[0] }),
        );
      });
      req.on('error', reject).end();
    });
  const set = await trace('/set');
  t.is(set.status, 200);
  t.is(set.body, 'ok');
  t.deepEqual(Object.keys(JSON.parse((await trace('/get', set.cookie)).body)), ['time']);
  t.is((await trace('/del', set.cookie)).body, 'ok');
  t.is((await trace('/get', set.cookie)).body, '{}');
});

test('/ names the routes, and starts no session', async (t) => {
  const app = await seedApp(t);
  const index = await new Browser(app.url).request('/');
  t.is(index.status, 200);
  t.regex(index.headers.get('content-type')!, /^text\/plain/);
  for (const route of ['/set', '/get', '/del', '/healthz']) t.true(index.body.includes(route), `names ${route}`);
  t.deepEqual(index.setCookies, [], 'no session');
});

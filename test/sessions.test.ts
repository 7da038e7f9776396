/**
 * A session's life over real HTTP, through the test routes (test/helpers/routes.ts): a write starts
 * it, a read shows it as JSON (and {} without one), an end destroys it in the store and clears its
 * cookie, and the session layer is the same whatever the HTTP method.
 */
import { request } from 'node:http';
import test from 'ava';
import type { MemoryStore } from '../app/stores/memory.ts';
import { appForTest, startApp } from './helpers/app.ts';
import { Browser, cookieValue, sessionIdOf } from './helpers/browser.ts';
import { addTestRoutes } from './helpers/routes.ts';
import { storeKeyOf } from './helpers/store-key.ts';

// Every method fetch may send; TRACE, TRACK and CONNECT are refused by fetch itself.
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'PURGE'] as const;

for (const method of METHODS) {
  test(`${method}: a write, a read that shows it, an end`, async (t) => {
    const app = await appForTest(t);
    const browser = new Browser(app.url);

    const write = await browser.request(`/write?value=${method}`, { method });
    t.is(write.status, 200);
    t.is(write.body, 'ok');

    const read = await browser.request('/read', { method });
    t.is(read.status, 200);
    t.regex(read.headers.get('content-type') ?? '', /^application\/json/);
    t.deepEqual(JSON.parse(read.body), { value: method });

    const end = await browser.request('/end', { method });
    t.is(end.status, 200);
    t.is(end.body, 'ok');
    t.deepEqual(JSON.parse((await browser.request('/read', { method })).body), {});
  });
}

test('HEAD: a write goes through, a read answers without a body', async (t) => {
  const app = await appForTest(t);
  const browser = new Browser(app.url);
  t.is((await browser.request('/write?value=head', { method: 'HEAD' })).status, 200);
  const head = await browser.request('/read', { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(head.body, '');
  t.deepEqual(await browser.json('/read'), { value: 'head' }, 'HEAD /write stored the value');
});

test('TRACE, which fetch refuses to send, goes through the session layer too', async (t) => {
  const app = await appForTest(t);
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
  const write = await trace('/write?value=trace');
  t.is(write.status, 200);
  t.is(write.body, 'ok');
  t.deepEqual(JSON.parse((await trace('/read', write.cookie)).body), { value: 'trace' });
  t.is((await trace('/end', write.cookie)).body, 'ok');
  t.is((await trace('/read', write.cookie)).body, '{}');
});

test('a read without a session answers {} as JSON and sets no cookie', async (t) => {
  const app = await appForTest(t);
  const answer = await new Browser(app.url).request('/read');
  t.is(answer.status, 200);
  t.regex(answer.headers.get('content-type') ?? '', /^application\/json/);
  t.is(answer.body, '{}');
  t.deepEqual(answer.setCookies, [], 'an empty session is never stored nor sent');
  t.is((await app.store.health()).sessions, 0);
});

test('a read never shows koa-session internals', async (t) => {
  const app = await appForTest(t);
  const browser = new Browser(app.url);
  await browser.request('/write');
  const body = (await browser.request('/read')).body;
  t.is(body, '{"value":"written"}');
  t.notRegex(body, /_expire|_maxAge|_session/);
});

test('an end destroys the session in the store and clears the cookie; replaying the old cookie gives {}', async (t) => {
  const app = await appForTest(t);
  const browser = new Browser(app.url);
  await browser.request('/write');
  const oldCookie = browser.cookieHeader;
  t.truthy(oldCookie);
  t.is((await app.store.health()).sessions, 1);

  const end = await browser.request('/end');
  t.is(end.body, 'ok');
  t.is(cookieValue(end.setCookies, 'sid'), '', 'the cookie is cleared');
  t.regex(end.setCookies[0], /expires=Thu, 01 Jan 1970/i);
  t.is((await app.store.health()).sessions, 0, 'the stored session is gone');

  const replay = new Browser(app.url);
  const answer = await replay.request('/read', { headers: { cookie: oldCookie! } });
  t.is(answer.status, 200);
  t.is(answer.body, '{}');
});

test('responses that touch a session are not cacheable; paths without the session middleware never touch the store', async (t) => {
  const app = await appForTest(
    t,
    {},
    {
      routes: (router, session) => {
        addTestRoutes(router, session);
        router.get('/plain', (ctx) => {
          ctx.body = 'no session here';
        });
      },
    },
  );
  const browser = new Browser(app.url);
  for (const path of ['/write', '/read', '/end']) {
    t.is((await browser.request(path)).headers.get('cache-control'), 'no-store', path);
  }
  await browser.request('/write');
  const store = app.store as MemoryStore;
  const counters = () => ({ ...store.stats, size: store.size, ...store.segments() });
  const before = counters();
  for (const path of ['/nope', '/write/more', '/plain', '/favicon.ico']) {
    const answer = await browser.request(path, { method: path === '/plain' ? 'GET' : 'POST' });
    t.is(answer.status, path === '/plain' ? 200 : 404, path);
    t.deepEqual(answer.setCookies, [], `${path}: no cookie`);
    t.is(answer.headers.get('cache-control'), null, `${path}: no session, nothing personal to keep from caches`);
  }
  t.deepEqual(counters(), before, 'requests outside the session routes, with a session cookie, never touch the store');
});

test('a second write on the same session stores the new value and does not re-send the cookie', async (t) => {
  const app = await appForTest(t);
  const browser = new Browser(app.url);
  t.is((await browser.request('/write?value=first')).setCookies.length, 1);
  const id = sessionIdOf(browser.cookies.get('sid'))!;
  t.deepEqual(await browser.json('/read'), { value: 'first' });
  const again = await browser.request('/write?value=second');
  t.is(again.body, 'ok');
  t.deepEqual(again.setCookies, [], 'same id, same cookie: nothing to send');
  t.deepEqual(await browser.json('/read'), { value: 'second' });
  t.deepEqual(
    JSON.parse((await app.store.get(storeKeyOf(app, id), 60_000))!),
    { value: 'second', _session: true },
    'in the store, under the same id',
  );
  t.is((app.store as MemoryStore).size, 1, 'no second session');
});

test('memory sessions do not survive a restart: same keys, same cookie, a new store, {}', async (t) => {
  const first = await startApp();
  const browser = new Browser(first.url);
  await browser.request('/write?value=before the restart');
  t.deepEqual(await browser.json('/read'), { value: 'before the restart' });

  await first.close();
  const second = await startApp(); // the same signing key (TEST_KEY): the cookie still verifies
  t.teardown(() => second.close());
  const restarted = new Browser(second.url);
  for (const [name, value] of browser.cookies) restarted.cookies.set(name, value);
  const read = await restarted.request('/read');
  t.is(read.body, '{}', 'the session is gone with the old process');
  t.deepEqual(read.setCookies, [], 'a read of a session that is gone sends no cookie');
});

/**
 * API clients: the session id in a header (SESSION_HEADER), over real HTTP. The header carries the
 * cookie's own signed value, so the same rules hold; a request that sends it is served by it alone and
 * gets ids back in it, never in a cookie; a request without it never sees the header.
 */
import test from 'ava';
import { loadConfig } from '../config/index.ts';
import { appForTest, type RunningApp, TEST_KEY } from './helpers/app.ts';
import { Browser, cookieValue, sessionIdOf } from './helpers/browser.ts';
import { addSignInRoutes } from './helpers/sign-in-routes.ts';
import { storeKeyOf } from './helpers/store-key.ts';

const HEADER = 'X-Session-Id';

/** An API client: keeps the value the server last sent in the header, sends no cookies. */
class ApiClient {
  readonly baseUrl: string;
  value = '';

  constructor(baseUrl: string) {
    this.baseUrl = baseUrl;
  }

  async request(path: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}) {
    const response = await fetch(new URL(path, this.baseUrl), {
      method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
      headers: { [HEADER]: this.value, ...init.headers },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
    const header = response.headers.get(HEADER);
    if (header !== null) this.value = header;
    return {
      status: response.status,
      header,
      body: await response.text(),
      setCookies: response.headers.getSetCookie(),
    };
  }

  async me(): Promise<{ user: string | null; note: string | null }> {
    return JSON.parse((await this.request('/me')).body);
  }
}

function headerApp(t: Parameters<typeof appForTest>[0], env: Record<string, string> = {}): Promise<RunningApp> {
  return appForTest(t, { SESSION_HEADER: HEADER, ...env }, { routes: addSignInRoutes });
}

test('SESSION_HEADER is off by default and must be an HTTP header name HTTP and browsers do not use already', (t) => {
  t.is(loadConfig({}).session.header, '');
  t.is(loadConfig({ SESSION_HEADER: ' X-Session-Id ' }).session.header, 'X-Session-Id');
  for (const bad of ['X Session', 'X-Session:', 'Cookie', 'set-cookie', 'Authorization', 'Sec-Session', 'Host', 'é']) {
    t.throws(
      () => loadConfig({ SESSION_HEADER: bad }),
      { message: /^SESSION_HEADER=.* is not allowed: empty \(off\) or an HTTP header name/ },
      bad,
    );
  }
});

test('off by default: the header is ignored and never sent', async (t) => {
  const app = await appForTest(t, {}, { routes: addSignInRoutes });
  const client = new ApiClient(app.url);
  const answer = await client.request('/note', { body: { note: 'x' } });
  t.is(answer.header, null);
  t.is(answer.setCookies.length, 1, 'the cookie, as always');
});

test('a client that sends the header gets its session in the header, is served by it, and never gets a cookie', async (t) => {
  const app = await headerApp(t);
  const client = new ApiClient(app.url);
  const first = await client.request('/note', { body: { note: 'kept' } });
  t.deepEqual(first.setCookies, [], 'no cookie');
  t.regex(
    first.header ?? '',
    /^[A-Za-z0-9_-]{21}\.[0-9a-z]+\.[A-Za-z0-9_-]{43}$/,
    'the signed id, as the cookie would hold it',
  );
  t.deepEqual(await client.me(), { user: null, note: 'kept' }, 'served by the header');
  const again = await client.request('/me');
  t.is(again.header, null, 'an id the client has is not sent again');
  t.is(
    (await app.store.get(storeKeyOf(app, sessionIdOf(client.value)!), 60_000)) !== undefined,
    true,
    'stored under the same store key as a cookie session',
  );
});

test('sign-in, logout and sign out everywhere work the same through the header', async (t) => {
  const app = await headerApp(t);
  const client = new ApiClient(app.url);
  await client.request('/note', { body: { note: 'n' } });
  const before = client.value;
  const login = await client.request('/login', { body: { user: 'alice' } });
  t.is(login.status, 200);
  t.deepEqual(login.setCookies, []);
  t.not(sessionIdOf(login.header ?? ''), sessionIdOf(before), 'a new id, in the header');
  t.deepEqual(await client.me(), { user: 'alice', note: 'n' });
  const stale = new ApiClient(app.url);
  stale.value = before;
  t.deepEqual(await stale.me(), { user: null, note: null }, 'the id from before the sign-in is dead');

  const browser = new Browser(app.url);
  await browser.request('/login', { method: 'POST', body: JSON.stringify({ user: 'alice' }) });
  t.deepEqual(
    (JSON.parse((await client.request('/sessions')).body) as unknown[]).length,
    2,
    'one list for header and cookie sessions',
  );

  const signedIn = client.value;
  const logout = await client.request('/logout', { method: 'POST' });
  t.is(logout.header, '', 'an empty header: drop the value');
  t.deepEqual(logout.setCookies, []);
  const replay = new ApiClient(app.url);
  replay.value = signedIn;
  t.deepEqual(await replay.me(), { user: null, note: null }, 'a logged-out header value opens nothing');

  const other = new ApiClient(app.url);
  await other.request('/login', { body: { user: 'alice' } });
  await other.request('/logout-everywhere', { method: 'POST' });
  t.deepEqual(
    JSON.parse((await browser.request('/me')).body),
    { user: null, note: null },
    'sign out everywhere from an API client ends the browser session too',
  );
});

test('a request with both header and cookie is served by the header; the cookie is left alone', async (t) => {
  const app = await headerApp(t);
  const browser = new Browser(app.url);
  await browser.request('/note', { method: 'POST', body: JSON.stringify({ note: 'cookie session' }) });
  const client = new ApiClient(app.url);
  await client.request('/note', { body: { note: 'header session' } });
  const both = await client.request('/me', { headers: { cookie: browser.cookieHeader! } });
  t.deepEqual(JSON.parse(both.body), { user: null, note: 'header session' });
  t.deepEqual(both.setCookies, []);
  const logout = await client.request('/logout', { method: 'POST', headers: { cookie: browser.cookieHeader! } });
  t.deepEqual(logout.setCookies, [], 'the cookie is not cleared by a header-borne logout');
  t.deepEqual(JSON.parse((await browser.request('/me')).body), { user: null, note: 'cookie session' });
  const blank = await client.request('/me', { headers: { cookie: browser.cookieHeader!, [HEADER]: '' } });
  t.deepEqual(
    JSON.parse(blank.body),
    { user: null, note: null },
    'an empty header too: a fresh session, not the cookie',
  );
});

test('a request without the header never gets it: a browser session id stays in its HttpOnly cookie', async (t) => {
  const app = await headerApp(t);
  const browser = new Browser(app.url);
  for (const [path, body] of [
    ['/note', { note: 'x' }],
    ['/login', { user: 'alice' }],
    ['/regenerate', {}],
    ['/logout', {}],
  ] as const) {
    const answer = await browser.request(path, { method: 'POST', body: JSON.stringify(body) });
    t.is(answer.headers.get(HEADER), null, path);
  }
});

test('a tampered, forged or garbage header gets a fresh session and a 200, never a 5xx', async (t) => {
  const app = await headerApp(t);
  const client = new ApiClient(app.url);
  await client.request('/login', { body: { user: 'alice' } });
  const good = client.value;
  const id = sessionIdOf(good)!;
  const variants = [
    `${good.slice(0, -1)}${good.endsWith('A') ? 'B' : 'A'}`,
    `${id.replace(/^./, (c) => (c === 'Z' ? 'Y' : 'Z'))}${good.slice(21)}`,
    id,
    `${good}, ${good}`,
    'x'.repeat(8_000),
    '%%%;;==',
    '__proto__',
  ];
  for (const value of variants) {
    const attacker = new ApiClient(app.url);
    attacker.value = value;
    const answer = await attacker.request('/note', { body: { note: 'attacker' } });
    t.is(answer.status, 200, value.slice(0, 40));
    t.not(sessionIdOf(answer.header ?? ''), id, 'a new id, never the offered one');
    t.truthy(answer.header, value.slice(0, 40));
  }
  t.deepEqual(await client.me(), { user: 'alice', note: null }, 'the genuine session is untouched');
});

test('cross-site refusal still holds for cookie-borne sessions, not for header-borne ones', async (t) => {
  const app = await headerApp(t);
  const browser = new Browser(app.url);
  await browser.request('/note', { method: 'POST', body: JSON.stringify({ note: 'mine' }) });
  const crossSite = { 'sec-fetch-site': 'cross-site' };
  const refused = await browser.request('/logout', { method: 'POST', headers: crossSite });
  t.is(refused.status, 403);
  t.deepEqual(JSON.parse((await browser.request('/me')).body).note, 'mine');
  const client = new ApiClient(app.url);
  await client.request('/note', { body: { note: 'api' } });
  const allowed = await client.request('/note', { body: { note: 'changed' }, headers: crossSite });
  t.is(allowed.status, 200, 'a header no browser sends cross-site without a CORS preflight');
  t.deepEqual((await client.me()).note, 'changed');
  const withCookieToo = await client.request('/logout', {
    method: 'POST',
    headers: { ...crossSite, cookie: browser.cookieHeader! },
  });
  t.is(withCookieToo.status, 200);
  t.deepEqual(JSON.parse((await browser.request('/me')).body).note, 'mine', 'the header, not the cookie, was served');
});

test('the lifetime rules are the cookie rules: past SESSION_MAX_LIFETIME the value is refused and cleared', async (t) => {
  const app = await headerApp(t, { SESSION_MAX_LIFETIME: '1500ms' });
  const client = new ApiClient(app.url);
  await client.request('/note', { body: { note: 'x' } });
  t.deepEqual((await client.me()).note, 'x');
  await new Promise((resolve) => setTimeout(resolve, 1_600));
  const old = client.value;
  const answer = await client.request('/me');
  t.deepEqual(JSON.parse(answer.body), { user: null, note: null });
  t.is(answer.header, '', 'cleared');
  t.is(await app.store.get(storeKeyOf(app, sessionIdOf(old)!), 60_000), undefined);
});

test('key rotation: an older-key value is served and comes back re-signed in the header', async (t) => {
  const oldKey = 'old-signing-key-0123456789abcdefghijklmn';
  const before = await headerApp(t, { SESSION_KEYS: oldKey });
  const client = new ApiClient(before.url);
  await client.request('/login', { body: { user: 'alice' } });
  const oldValue = client.value;
  const store = before.store;
  const after = await appForTest(
    t,
    { SESSION_HEADER: HEADER, SESSION_KEYS: `${TEST_KEY},${oldKey}` },
    { routes: addSignInRoutes, store, keepStore: true },
  );
  const rotated = new ApiClient(after.url);
  rotated.value = oldValue;
  const answer = await rotated.request('/me');
  t.deepEqual(JSON.parse(answer.body), { user: 'alice', note: null });
  t.truthy(answer.header);
  t.is(sessionIdOf(answer.header!), sessionIdOf(oldValue), 'the same id, re-signed');
  t.not(answer.header, oldValue);
  t.deepEqual(answer.setCookies, []);
  t.deepEqual(cookieValue(answer.setCookies, 'sid'), undefined);
});

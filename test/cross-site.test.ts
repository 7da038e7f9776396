/**
 * Another site cannot change the session (Fetch Metadata: browsers send `Sec-Fetch-Site`), and the
 * cookies of a logout clear exactly the cookie that was set. Over real HTTP; test/browser.test.ts does
 * the same in a real Chromium.
 */
import test from 'ava';
import { appForTest } from './helpers/app.ts';
import { Browser, cookieValue } from './helpers/browser.ts';
import { storeKeyOf } from './helpers/store-key.ts';

const crossSite = (cookie: string) => ({
  headers: { cookie, 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' },
});

test('a write and an end from another site get 403 with a short JSON body, and touch neither session nor cookie', async (t) => {
  const app = await appForTest(t);
  const browser = new Browser(app.url);
  await browser.request('/write?value=mine');
  const cookie = browser.cookieHeader!;
  const id = browser.cookies.get('sid')!.split('.')[0];
  const stored = await app.store.get(storeKeyOf(app, id), 60_000);
  const calls = { ...(app.store as unknown as { stats: Record<string, number> }).stats };

  for (const path of ['/write?value=theirs', '/end']) {
    for (const method of ['GET', 'POST']) {
      const answer = await new Browser(app.url).request(path, { method, ...crossSite(cookie) });
      t.is(answer.status, 403, `${method} ${path}`);
      t.deepEqual(JSON.parse(answer.body), { error: 'Forbidden', message: 'Another site cannot change this session.' });
      t.deepEqual(answer.setCookies, [], 'no cookie, not even a clearing one');
      t.is(
        answer.headers.get('cache-control'),
        'no-store',
        'and no cache may keep the refusal (it answers a request with a cookie)',
      );
    }
  }
  t.deepEqual((app.store as unknown as { stats: Record<string, number> }).stats, calls, 'the store was not even read');
  t.is(await app.store.get(storeKeyOf(app, id), 60_000), stored, 'the stored session is unchanged');
  t.deepEqual(await browser.json('/read'), { value: 'mine' }, 'and still open');
});

test('requests a user or the site itself makes, and clients that send no Fetch Metadata, still change the session', async (t) => {
  const app = await appForTest(t);
  for (const site of [undefined, 'none', 'same-origin', 'same-site']) {
    const browser = new Browser(app.url);
    const headers: Record<string, string> = site ? { 'sec-fetch-site': site } : {};
    const value = site ?? 'no Sec-Fetch-Site';
    t.is((await browser.request(`/write?value=${value}`, { headers })).body, 'ok', `a write with ${value}`);
    t.deepEqual(await browser.json('/read'), { value });
    const end = await browser.request('/end', { headers });
    t.is(end.body, 'ok', `an end with Sec-Fetch-Site ${site}`);
    t.deepEqual(await browser.json('/read'), {}, 'logged out');
  }
});

test('a read from another site still reads (reading changes nothing; the browser keeps the answer from the other site)', async (t) => {
  const app = await appForTest(t);
  const browser = new Browser(app.url);
  await browser.request('/write?value=readable');
  const answer = await new Browser(app.url).request('/read', crossSite(browser.cookieHeader!));
  t.is(answer.status, 200);
  t.deepEqual(JSON.parse(answer.body), { value: 'readable' });
});

test('a route mounted with session.change is refused cross-site too', async (t) => {
  const app = await appForTest(
    t,
    {},
    {
      routes: (router, session) => {
        router.post('/login', session.change, async (ctx) => {
          await ctx.session.regenerate();
          ctx.body = 'welcome';
        });
      },
    },
  );
  const answer = await new Browser(app.url).request('/login', {
    method: 'POST',
    headers: { 'sec-fetch-site': 'cross-site' },
  });
  t.is(answer.status, 403);
  t.is(
    (await new Browser(app.url).request('/login', { method: 'POST', headers: { 'sec-fetch-site': 'same-origin' } }))
      .body,
    'welcome',
  );
});

/** A Set-Cookie line's attributes, without the value and the expiry. */
function attributes(line: string): string[] {
  return line
    .split(';')
    .slice(1)
    .map((part) => part.trim().toLowerCase())
    .filter((part) => !part.startsWith('expires='))
    .sort();
}

for (const [env, name, expected] of [
  [{ SESSION_COOKIE_SECURE: 'true' }, '__Host-sid', ['httponly', 'path=/', 'samesite=lax', 'secure']],
  [
    { SESSION_COOKIE_SECURE: 'true', SESSION_COOKIE_SAMESITE: 'strict' },
    '__Host-sid',
    ['httponly', 'path=/', 'samesite=strict', 'secure'],
  ],
  [{}, 'sid', ['httponly', 'path=/', 'samesite=lax']],
] as const) {
  test(`the logout cookie clears exactly the cookie that was set (${JSON.stringify(env)})`, async (t) => {
    const app = await appForTest(t, env);
    const browser = new Browser(app.url);
    const write = await browser.request('/write');
    t.truthy(cookieValue(write.setCookies, name), `the cookie is named ${name}`);
    t.deepEqual(attributes(write.setCookies[0]), [...expected]);
    const end = await browser.request('/end');
    t.is(end.setCookies.length, 1);
    t.regex(end.setCookies[0], new RegExp(`^${name}=;.*expires=Thu, 01 Jan 1970`, 'i'));
    t.deepEqual(attributes(end.setCookies[0]), [...expected], 'same Secure, Path, SameSite and HttpOnly');
  });
}

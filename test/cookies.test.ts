/**
 * The session cookie: its attributes, and that no cookie the server did not issue is ever adopted.
 * Every hostile cookie must get a 200, an empty session, and (on a write) a fresh id, which is checked
 * in the store itself: an adopted id needs no Set-Cookie, so the answers alone cannot show it.
 */
import { createHmac } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import type { MemoryStore } from '../app/stores/memory.ts';
import { appForTest, type RunningApp, TEST_KEY } from './helpers/app.ts';
import { Browser, cookieValue, sessionIdOf } from './helpers/browser.ts';
import { storeKeyOf } from './helpers/store-key.ts';

const TTL_MS = 60_000;

function sign(key: string, name: string, payload: string): string {
  return createHmac('sha256', key).update(`${name}=${payload}`).digest('base64url');
}

test('the cookie is HttpOnly, SameSite=Lax, Path=/, has no Expires, and is not Secure over plain HTTP', async (t) => {
  const app = await appForTest(t);
  const [cookie] = (await new Browser(app.url).request('/write')).setCookies;
  t.regex(cookie, /^sid=[A-Za-z0-9_-]{21}\.[0-9a-z]+\.[A-Za-z0-9_-]{43}; /);
  t.regex(cookie, /; httponly/i);
  t.regex(cookie, /; samesite=lax/i);
  t.regex(cookie, /; path=\//i);
  t.notRegex(cookie, /expires|max-age/i, 'a browser-session cookie: the server decides expiry');
  t.notRegex(cookie, /; secure/i);
});

test('cookie name and SameSite come from the settings', async (t) => {
  const app = await appForTest(t, { SESSION_COOKIE_NAME: 'app_session', SESSION_COOKIE_SAMESITE: 'strict' });
  const [cookie] = (await new Browser(app.url).request('/write')).setCookies;
  t.regex(cookie, /^app_session=/);
  t.regex(cookie, /; samesite=strict/i);
});

test('behind a trusted TLS proxy the cookie is Secure (SESSION_COOKIE_SECURE=auto)', async (t) => {
  const app = await appForTest(t, { TRUST_PROXY: 'true' });
  const [cookie] = (await new Browser(app.url).request('/write', { headers: { 'x-forwarded-proto': 'https' } }))
    .setCookies;
  t.regex(cookie, /; secure/i);
});

test('X-Forwarded-Proto from an untrusted client does not make the cookie Secure', async (t) => {
  const app = await appForTest(t);
  const [cookie] = (await new Browser(app.url).request('/write', { headers: { 'x-forwarded-proto': 'https' } }))
    .setCookies;
  t.notRegex(cookie, /; secure/i);
});

test('SESSION_COOKIE_SECURE=true marks the cookie Secure even when the proxy sends no header', async (t) => {
  const app = await appForTest(t, { SESSION_COOKIE_SECURE: 'true' });
  const browser = new Browser(app.url);
  const write = await browser.request('/write?value=secure');
  t.is(write.status, 200);
  t.regex(write.setCookies[0], /; secure/i);
  t.deepEqual(await browser.json('/read'), { value: 'secure' });
});

/** Every store key the (memory) store holds (each a session id's keyed hash: helpers/store-key.ts). */
function storedIds(app: RunningApp): string[] {
  const { probation, protected: kept } = (app.store as MemoryStore).segments();
  return [...probation, ...kept].sort();
}

/**
 * A session made by a write, whose cookie has then been read back once: the server has verified it,
 * so it sits in the signer's cache of verified cookies, which every tampered variant must miss.
 */
async function establishedCookie(t: ExecutionContext, app: RunningApp): Promise<string> {
  const browser = new Browser(app.url);
  await browser.request('/write?value=genuine');
  t.deepEqual(await browser.json('/read'), { value: 'genuine' }, 'the genuine cookie opens its session');
  return browser.cookies.get('sid')!;
}

const hostileCookies: Record<string, (good: string) => string> = {
  'tampered signature': (good) => good.slice(0, -2) + (good.endsWith('AA') ? 'BB' : 'AA'),
  'tampered id': (good) => (good[0] === 'a' ? 'b' : 'a') + good.slice(1),
  'tampered issue time': (good) =>
    good.replace(/\.([0-9a-z]+)\./, (_, issued: string) => `.${(Number.parseInt(issued, 36) + 1).toString(36)}.`),
  unsigned: (good) => sessionIdOf(good)!,
  'signed with another key': (good) => {
    const [id, issued] = good.split('.');
    return `${id}.${issued}.${sign('some-other-key-0123456789abcdefghijkl', 'sid', `${id}.${issued}`)}`;
  },
  'koa default name.sig pair': (good) => `${sessionIdOf(good)}; sid.sig=${good.split('.')[2]}`,
  garbage: () => '%%%;;==\u00ff',
  empty: () => '',
  huge: () => 'x'.repeat(7_000),
  '__proto__ id': () => '__proto__',
};

for (const [kind, makeCookie] of Object.entries(hostileCookies)) {
  test(`hostile cookie (${kind}): a fresh, empty session and a 200, after the genuine cookie was verified`, async (t) => {
    const app = await appForTest(t);
    const good = await establishedCookie(t, app);
    const goodId = sessionIdOf(good)!;
    // A value no request writes: a write into the genuine session, had its id been adopted, would show.
    const goodStored = JSON.stringify({ value: 'put in the store', _session: true });
    t.true(await app.store.update(storeKeyOf(app, goodId), goodStored, TTL_MS));
    const hostile = makeCookie(good);
    t.not(hostile, good);
    const headers = { cookie: `sid=${hostile}` };
    const attacker = new Browser(app.url);

    const read = await attacker.request('/read', { headers });
    t.is(read.status, 200);
    t.is(read.body, '{}');
    t.deepEqual(read.setCookies, [], 'a read sends no cookie');

    const write = await attacker.request('/write?value=attacker', { headers });
    t.is(write.status, 200);
    const issued = sessionIdOf(cookieValue(write.setCookies, 'sid'));
    t.truthy(issued, 'a new session cookie is issued');
    t.not(issued, sessionIdOf(hostile), 'the id the client offered is never adopted');
    t.not(issued, goodId);
    t.deepEqual(
      storedIds(app),
      [storeKeyOf(app, goodId), storeKeyOf(app, issued!)].sort(),
      'the store holds the genuine session and the new one, nothing under an offered id',
    );
    t.is(await app.store.get(storeKeyOf(app, goodId), TTL_MS), goodStored, 'the genuine session was not written to');
    t.deepEqual(
      JSON.parse((await app.store.get(storeKeyOf(app, issued!), TTL_MS))!),
      { value: 'attacker', _session: true },
      'the new session holds what the write stored',
    );
    t.deepEqual(
      await new Browser(app.url).json('/read', { headers: { cookie: `sid=${good}` } }),
      { value: 'put in the store' },
      'the genuine cookie still opens its session',
    );
  });
}

test('the verified-cookie cache: tampered variants miss it whether they come after the genuine cookie or before it', async (t) => {
  // One app (one signer, one cache) for every variant, so each meets a cache holding the genuine cookie.
  const app = await appForTest(t);
  const good = await establishedCookie(t, app);
  const variants = Object.entries(hostileCookies).filter(
    ([kind]) => kind.startsWith('tampered') || kind === 'signed with another key' || kind === 'unsigned',
  );
  const read = async (value: string) => new Browser(app.url).request('/read', { headers: { cookie: `sid=${value}` } });
  for (const [kind, makeCookie] of variants) {
    t.is((await read(makeCookie(good))).body, '{}', `${kind}, after the genuine cookie: refused`);
    t.deepEqual(
      JSON.parse((await read(good)).body),
      { value: 'genuine' },
      `the genuine cookie, after ${kind}: still accepted`,
    );
  }
  // A fresh session whose tampered variants arrive before its genuine cookie is ever read.
  const browser = new Browser(app.url);
  await browser.request('/write?value=fresh');
  const fresh = browser.cookies.get('sid')!;
  for (const [kind, makeCookie] of variants)
    t.is((await read(makeCookie(fresh))).body, '{}', `${kind}, before the genuine cookie: refused`);
  t.deepEqual(
    JSON.parse((await read(fresh)).body),
    { value: 'fresh' },
    'the genuine cookie, after its tampered variants: accepted',
  );
  for (const [kind, makeCookie] of variants)
    t.is((await read(makeCookie(fresh))).body, '{}', `${kind}, once the genuine cookie is cached: refused`);
});

test('a correctly signed cookie for an id the store does not know is not adopted', async (t) => {
  const app = await appForTest(t);
  const newIds: string[] = [];
  for (const id of ['AAAAAAAAAAAAAAAAAAAAA', '__proto__AAAAAAAAAAAA', 'constructorAAAAAAAAAA']) {
    const payload = `${id}.${Date.now().toString(36)}`;
    const forged = `${payload}.${sign(TEST_KEY, 'sid', payload)}`;
    const browser = new Browser(app.url);
    t.is((await browser.request('/read', { headers: { cookie: `sid=${forged}` } })).body, '{}');
    const write = await browser.request('/write?value=forged', { headers: { cookie: `sid=${forged}` } });
    const issued = sessionIdOf(cookieValue(write.setCookies, 'sid'));
    t.truthy(issued, `${id}: a write issues a cookie for a new session`);
    t.not(issued, id, `${id} is not adopted`);
    newIds.push(issued!);
    t.is(await app.store.get(storeKeyOf(app, id), TTL_MS), undefined, `${id}: nothing is stored under the forged id`);
    t.deepEqual(
      JSON.parse((await app.store.get(storeKeyOf(app, issued!), TTL_MS)) ?? '{}'),
      { value: 'forged', _session: true },
      `${id}: the new session is stored`,
    );
  }
  t.deepEqual(
    storedIds(app),
    newIds.map((id) => storeKeyOf(app, id)).sort(),
    'the store holds the new sessions and nothing else',
  );
});

test('key rotation: a cookie signed with an older key still works and is re-signed with the new key', async (t) => {
  const oldKey = 'old-signing-key-0123456789abcdefghijklmn';
  const newKey = 'new-signing-key-0123456789abcdefghijklmn';
  const store = (await appForTest(t, { SESSION_KEYS: oldKey })).store;
  const before = await appForTest(t, { SESSION_KEYS: oldKey }, { store, keepStore: true });
  const browser = new Browser(before.url);
  await browser.request('/write?value=rotated');
  const oldCookie = browser.cookies.get('sid')!;

  const after = await appForTest(t, { SESSION_KEYS: `${newKey},${oldKey}` }, { store, keepStore: true });
  const rotated = new Browser(after.url);
  rotated.cookies.set('sid', oldCookie);
  const read = await rotated.request('/read');
  t.deepEqual(JSON.parse(read.body), { value: 'rotated' }, 'the old cookie still opens the session');
  const resigned = cookieValue(read.setCookies, 'sid');
  t.truthy(resigned, 'the cookie is re-signed');
  t.is(sessionIdOf(resigned), sessionIdOf(oldCookie), 'same session id');
  const [id, issued, signature] = resigned!.split('.');
  t.is(signature, sign(newKey, 'sid', `${id}.${issued}`), 'signed with the first (new) key');

  const newOnly = await appForTest(t, { SESSION_KEYS: newKey }, { store, keepStore: true });
  const later = new Browser(newOnly.url);
  later.cookies.set('sid', resigned!);
  t.deepEqual(
    await later.json('/read'),
    { value: 'rotated' },
    'the re-signed cookie works once the old key is retired',
  );
  const stale = new Browser(newOnly.url);
  stale.cookies.set('sid', oldCookie);
  t.deepEqual(await stale.json('/read'), {}, 'a cookie signed only by a retired key is refused');
});

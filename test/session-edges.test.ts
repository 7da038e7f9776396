/**
 * The session layer at its edges. The stored-data check and the cookie signer on their own (exact
 * reasons, exact bounds), then over real HTTP what the other test files leave open: the absolute
 * lifetime with a forged issue time (or a clock moved forward) instead of waiting, key rotation, the
 * TTL each store call gets, and which Set-Cookie lines a response keeps.
 */
import type Router from '@koa/router';
import test, { type ExecutionContext } from 'ava';
import { nanoid } from 'nanoid';
import type { SessionMiddleware } from '../app/session/middleware.ts';
import { CookieSigner } from '../app/session/signed-cookie.ts';
import {
  decodeStoredSession,
  encodeStoredSession,
  InvalidStoredSessionError,
  MAX_DEPTH,
} from '../app/session/stored-session.ts';
import type { SessionStore, StoreHealth } from '../app/stores/store.ts';
import { appForTest, type RunningApp, TEST_KEY } from './helpers/app.ts';
import { Browser, cookieValue, sessionIdOf } from './helpers/browser.ts';
import { GatedStore } from './helpers/gated-store.ts';
import { addTestRoutes } from './helpers/routes.ts';
import { storeKeyOf } from './helpers/store-key.ts';

/** The reason decodeStoredSession gives for a text (fails the test when it accepts it). */
function reasonFor(text: string): string {
  try {
    decodeStoredSession(text);
  } catch (error) {
    if (!(error instanceof InvalidStoredSessionError)) throw error;
    return error.message;
  }
  throw new Error(`accepted: ${text}`);
}

const nested = (depth: number, inner = '1') => `${'['.repeat(depth)}${inner}${']'.repeat(depth)}`;

test('stored data: what this app writes reads back as it was', (t) => {
  t.deepEqual(decodeStoredSession('{"time":1,"_session":true}'), { time: 1, _session: true });
  t.deepEqual(decodeStoredSession('{}'), {});
  t.deepEqual(decodeStoredSession('{"profile":{"name":"x","tags":["a",{"b":null}]}}'), {
    profile: { name: 'x', tags: ['a', { b: null }] },
  });
  t.deepEqual(decodeStoredSession('{"note":"__proto__ and constructor in a value, \\\\u too"}'), {
    note: '__proto__ and constructor in a value, \\u too',
  });
  t.deepEqual(decodeStoredSession('{"a\\u0062c":1}'), { abc: 1 }, 'an escape that spells no forbidden key');
  t.deepEqual(decodeStoredSession('{"nameconstructor":1,"x__proto__y":{"protoconstructors":2}}'), {
    nameconstructor: 1,
    x__proto__y: { protoconstructors: 2 },
  });
  t.deepEqual(decodeStoredSession('{"prototypes":1,"saved":2,"lengths":3,"session":4}'), {
    prototypes: 1,
    saved: 2,
    lengths: 3,
    session: 4,
  });
});

test('stored data: each rejection names its reason', (t) => {
  t.is(reasonFor('{"time":'), 'not JSON');
  t.is(reasonFor(''), 'not JSON');
  t.is(reasonFor('null'), 'a JSON null, not an object');
  t.is(reasonFor('[1]'), 'a JSON array, not an object');
  t.is(reasonFor('"text"'), 'a JSON string, not an object');
  t.is(reasonFor('42'), 'a JSON number, not an object');
  t.is(reasonFor('true'), 'a JSON boolean, not an object');
  for (const key of [
    '__proto__',
    'constructor',
    'prototype',
    'toJSON',
    'save',
    'regenerate',
    'manuallyCommit',
    'commit',
    'isNew',
    'length',
    'populated',
    'maxAge',
    'externalKey',
  ]) {
    t.is(reasonFor(`{${JSON.stringify(key)}:1}`), `reserved key ${JSON.stringify(key)}`, key);
  }
  t.is(reasonFor('{"_secret":1}'), 'internal key "_secret"');
  t.is(reasonFor(`{"_${'x'.repeat(60)}":1}`), `internal key "_${'x'.repeat(39)}"`, 'at most 40 characters of it');
  t.is(reasonFor('{"_expire":1}'), 'internal key "_expire"');
  t.is(reasonFor('{"_maxAge":1}'), 'internal key "_maxAge"');
  t.is(reasonFor('{"_session":1}'), '_session is not true');
  t.is(reasonFor('{"_session":"true"}'), '_session is not true');
  t.is(reasonFor('{"time":1,"_session":false}'), '_session is not true');
  t.is(reasonFor('{"a":{"__proto__":1}}'), 'a __proto__ or constructor key inside');
  t.is(reasonFor('{"a":[{"b":{"constructor":1}}]}'), 'a __proto__ or constructor key inside');
  t.is(reasonFor('{"a":{"\\u0063onstructor":1}}'), 'a __proto__ or constructor key inside', 'spelled with an escape');
  t.is(
    reasonFor('{"a":1,"b":{"c":2,"__proto__":null}}'),
    'a __proto__ or constructor key inside',
    'after other keys, with a null value',
  );
});

test('stored data: nesting up to MAX_DEPTH levels, strings and escapes not counted', (t) => {
  t.is(MAX_DEPTH, 32);
  t.notThrows(() => decodeStoredSession(`{"a":${nested(MAX_DEPTH - 1)}}`), 'the object itself is level 1');
  t.is(reasonFor(`{"a":${nested(MAX_DEPTH)}}`), 'nested deeper than 32 levels');
  t.is(
    reasonFor(`{"a":${'{"b":'.repeat(MAX_DEPTH)}1${'}'.repeat(MAX_DEPTH)}}`),
    'nested deeper than 32 levels',
    'objects count too',
  );
  t.notThrows(
    () => decodeStoredSession(`{"a":"${'['.repeat(100)}${'{'.repeat(100)}"}`),
    'brackets inside a string are text',
  );
  t.notThrows(
    () => decodeStoredSession(`{"a":"\\"${'['.repeat(100)}","b":${nested(MAX_DEPTH - 1)}}`),
    'an escaped quote does not end the string',
  );
  t.notThrows(
    () => decodeStoredSession(`{"a":"\\\\","b":${nested(MAX_DEPTH - 1)}}`),
    'an escaped backslash does not escape the quote after it',
  );
  t.is(
    reasonFor(`{"a":"\\\\","b":${nested(MAX_DEPTH)}}`),
    'nested deeper than 32 levels',
    'and what follows the string counts again',
  );
  t.notThrows(
    () => decodeStoredSession(`{"a":[${Array.from({ length: 50 }, () => nested(MAX_DEPTH - 2)).join(',')}]}`),
    'closed levels are given back',
  );
  const objects = (depth: number) => `${'{"b":'.repeat(depth)}1${'}'.repeat(depth)}`;
  t.notThrows(
    () => decodeStoredSession(`{"a":[${Array.from({ length: 50 }, () => objects(MAX_DEPTH - 2)).join(',')}]}`),
    'closed objects are given back too',
  );
});

test('stored data: a rejection is an InvalidStoredSessionError, by class and by name (as logs and stack traces show it)', (t) => {
  const error = t.throws(() => decodeStoredSession('null'), { instanceOf: InvalidStoredSessionError });
  t.is(error?.name, 'InvalidStoredSessionError');
});

test('stored data: encode drops koa-session expiry fields, marks the session, refuses what decode would discard', (t) => {
  const session: Record<string, unknown> = { time: 5, _expire: 1, _maxAge: 2, _session: 'anything' };
  t.is(encodeStoredSession(session), '{"time":5,"_session":true}');
  t.deepEqual(session, { time: 5, _session: true }, 'in place');
  t.is(encodeStoredSession({}), '{"_session":true}');
  t.throws(() => encodeStoredSession({ toJSON: 1 }), {
    message: 'cannot store this session: reserved key "toJSON" (rename that session field)',
  });
  t.throws(() => encodeStoredSession({ _private: 1 }), {
    message: 'cannot store this session: internal key "_private" (rename that session field)',
  });
  t.throws(() => encodeStoredSession({ a: JSON.parse(nested(MAX_DEPTH)) }), {
    message: 'cannot store this session: nested deeper than 32 levels',
  });
  t.notThrows(() => encodeStoredSession({ a: JSON.parse(nested(MAX_DEPTH - 1)) }));
  const round = encodeStoredSession({ a: { b: [1, 'two', null] } });
  t.deepEqual(decodeStoredSession(round), { a: { b: [1, 'two', null] }, _session: true });
});

test('cookie signer: needs a key; encodes only session ids; signs the cookie name too', (t) => {
  t.throws(() => new CookieSigner('sid', []), { message: 'CookieSigner needs at least one key' });
  const signer = new CookieSigner('sid', [TEST_KEY]);
  for (const bad of ['short', 'x'.repeat(22), `${'x'.repeat(20)}.`, `${'x'.repeat(20)}/`, `\n${'x'.repeat(20)}`]) {
    t.throws(() => signer.encode(bad, 1), { message: 'not a session id' }, JSON.stringify(bad));
  }
  const id = nanoid();
  const value = signer.encode(id, 1_700_000_000_000);
  t.regex(value, new RegExp(`^${id}\\.${(1_700_000_000_000).toString(36)}\\.[A-Za-z0-9_-]{43}$`));
  t.like(signer.decode(value), { id, issuedAt: 1_700_000_000_000, keyIndex: 0 });
  t.deepEqual(signer.decode(value), signer.decode(value), 'again (from the cache of verified values)');
  t.is(new CookieSigner('other', [TEST_KEY]).decode(value), undefined, 'a cookie signed for another name is refused');
  t.is(signer.decode(undefined), undefined);
  t.is(signer.decode(''), undefined);
  t.is(signer.decode(`${value} `), undefined);
  t.is(signer.decode(` ${value}`), undefined);
  t.is(signer.decode(value.toUpperCase()), undefined);
});

test('cookie signer: the longest value (a 9-digit issue time, year 2059 on) is accepted; longer is not', (t) => {
  const signer = new CookieSigner('sid', [TEST_KEY]);
  const id = nanoid();
  const late = 36 ** 9 - 1; // the largest 9-digit base-36 time
  const value = signer.encode(id, late);
  t.is(value.length, 21 + 1 + 9 + 1 + 43);
  t.like(signer.decode(value), { id, issuedAt: late, keyIndex: 0 });
  t.is(signer.decode(signer.encode(id, 36 ** 9)), undefined, 'a 10-digit time is not a cookie of ours');
  t.like(signer.decode(signer.encode(id, 0)), { id, issuedAt: 0, keyIndex: 0 }, 'a one-digit time');
});

test('cookie signer: every key verifies and says which it was; only the first signs', (t) => {
  const keys = ['key-a', 'key-b', 'key-c'];
  const id = nanoid();
  for (const [index, key] of keys.entries()) {
    const value = new CookieSigner('sid', [key]).encode(id, 5);
    t.like(new CookieSigner('sid', keys).decode(value), { id, issuedAt: 5, keyIndex: index }, key);
  }
  const rotated = new CookieSigner('sid', ['key-b', 'key-a']).encode(id, 5);
  t.like(new CookieSigner('sid', ['key-b']).decode(rotated), { id, issuedAt: 5, keyIndex: 0 });
  t.is(new CookieSigner('sid', ['key-a']).decode(rotated), undefined);
});

test('cookie signer: a value never verified is not remembered as verified', (t) => {
  const signer = new CookieSigner('sid', [TEST_KEY]);
  const id = nanoid();
  const good = signer.encode(id, 7);
  const bad = `${good.slice(0, -1)}${good.endsWith('A') ? 'B' : 'A'}`;
  t.is(signer.decode(bad), undefined);
  t.is(signer.decode(bad), undefined, 'still refused the second time');
  t.like(signer.decode(good), { id, issuedAt: 7, keyIndex: 0 });
  t.is(signer.decode(bad), undefined, 'and after the genuine value');
});

/** A store wrapper that records every call with the TTL it brings. */
class RecordingStore implements SessionStore {
  readonly kind: string;
  readonly calls: Array<{ method: string; id: string; ttlMs?: number }> = [];
  /** What the next create answers instead of asking the store (a genuine id collision cannot be made). */
  createAnswer: boolean | undefined;
  /** Runs as a get reaches the store, before the store answers (a test moves the clock there). */
  onGet: (() => void) | undefined;
  readonly #inner: SessionStore;
  readonly users: SessionStore['users'];

  constructor(inner: SessionStore) {
    this.#inner = inner;
    this.kind = inner.kind;
    this.users = inner.users;
  }

  get(id: string, ttlMs: number): Promise<string | undefined> {
    this.calls.push({ method: 'get', id, ttlMs });
    this.onGet?.();
    return this.#inner.get(id, ttlMs);
  }

  create(id: string, text: string, ttlMs: number): Promise<boolean> {
    this.calls.push({ method: 'create', id, ttlMs });
    if (this.createAnswer !== undefined) return Promise.resolve(this.createAnswer);
    return this.#inner.create(id, text, ttlMs);
  }

  update(id: string, text: string, ttlMs: number): Promise<boolean> {
    this.calls.push({ method: 'update', id, ttlMs });
    return this.#inner.update(id, text, ttlMs);
  }

  destroy(id: string): Promise<boolean> {
    this.calls.push({ method: 'destroy', id });
    return this.#inner.destroy(id);
  }

  health(): Promise<StoreHealth> {
    return this.#inner.health();
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}

/** /theme: a route that sets a cookie of its own (theme=dark) and changes the session (value: 'dark'). */
function addThemeRoute(router: Router, session: SessionMiddleware): void {
  router.all('/theme', session.change, (ctx) => {
    ctx.cookies.set('theme', 'dark', { httpOnly: false });
    ctx.session.value = 'dark';
    ctx.body = 'ok';
  });
}

async function recordingApp(
  t: ExecutionContext,
  env: Record<string, string> = {},
): Promise<{ app: RunningApp; store: RecordingStore }> {
  let store!: RecordingStore;
  const app = await appForTest(t, env, {
    wrapStore: (inner) => (store = new RecordingStore(inner)),
    routes: (router, session) => {
      addTestRoutes(router, session);
      addThemeRoute(router, session);
    },
  });
  return { app, store };
}

/**
 * Runs `body` with Date.now replaced by `now` (the app runs in this process: its lifetime checks see
 * it). Only from serial tests, which ava runs before the concurrent ones, so no other test sees it.
 */
async function withDateNow<T>(now: () => number, body: () => Promise<T>): Promise<T> {
  const realNow = Date.now;
  Date.now = now;
  try {
    return await body();
  } finally {
    Date.now = realNow;
  }
}

const signer = new CookieSigner('sid', [TEST_KEY]);
/** A session this app could have written; the test routes' /read shows it as READ. */
const STORED = JSON.stringify({ value: 'stored', _session: true });
const READ = '{"value":"stored"}';
const CLEARING = /^sid=; path=\/; expires=Thu, 01 Jan 1970 00:00:00 GMT; samesite=lax; httponly$/;

/** A session put straight into the store, and a genuine cookie for it issued `ageMs` ago. */
async function sessionIssuedAgo(
  app: RunningApp,
  ageMs: number,
): Promise<{ id: string; cookie: string; issuedAt: number }> {
  const id = nanoid();
  await app.store.create(storeKeyOf(app, id), STORED, 600_000);
  const issuedAt = Date.now() - ageMs;
  return { id, cookie: `sid=${signer.encode(id, issuedAt)}`, issuedAt };
}

test.serial(
  'the absolute lifetime ends at its very millisecond: a cookie exactly SESSION_MAX_LIFETIME old is refused, 1 ms younger is not',
  async (t) => {
    const { app } = await recordingApp(t, { SESSION_MAX_LIFETIME: '1h' });
    const frozen = Date.now();
    const [refused, alive] = await withDateNow(
      () => frozen,
      async () => {
        const atTheEnd = await sessionIssuedAgo(app, 3_600_000);
        const justBefore = await sessionIssuedAgo(app, 3_600_000 - 1);
        return [
          await new Browser(app.url).request('/read', { headers: { cookie: atTheEnd.cookie } }),
          await new Browser(app.url).request('/read', { headers: { cookie: justBefore.cookie } }),
        ];
      },
    );
    t.is(refused.body, '{}', 'issued exactly SESSION_MAX_LIFETIME ago: refused');
    t.is(refused.setCookies.length, 1);
    t.regex(refused.setCookies[0], CLEARING);
    t.is(alive.body, READ, '1 ms before the end: still open');
    t.deepEqual(alive.setCookies, []);
  },
);

test.serial(
  'a lifetime that ends while a request runs: a read clears the cookie, other cookies of the route stay',
  async (t) => {
    const { app, store } = await recordingApp(t, { SESSION_MAX_LIFETIME: '1h' });
    const clock = { aheadMs: 0 };
    const realNow = Date.now;
    // 30 s of lifetime left when each request comes in; the store read happens a minute later.
    store.onGet = () => (clock.aheadMs = 60_000);
    const send = async (path: string) => {
      const session = await sessionIssuedAgo(app, 3_600_000 - 30_000);
      clock.aheadMs = 0;
      return withDateNow(
        () => realNow() + clock.aheadMs,
        () => new Browser(app.url).request(path, { headers: { cookie: session.cookie } }),
      );
    };

    const read = await send('/read');
    t.is(read.status, 200);
    t.is(read.body, READ, 'the session was still in the store when read');
    t.is(read.setCookies.length, 1, 'no cookie was set: the clearing one is the only line');
    t.regex(read.setCookies[0], CLEARING);

    const theme = await send('/theme');
    t.is(theme.status, 200);
    t.is(theme.setCookies.length, 2, JSON.stringify(theme.setCookies));
    t.is(theme.setCookies[0], 'theme=dark; path=/', "the route's own cookie is kept");
    t.regex(theme.setCookies[1], CLEARING, 'and the session cookie cleared');
  },
);

test.serial(
  'a lifetime that ends while a request runs: a new session saved by that request keeps its cookie',
  async (t) => {
    const { app, store } = await recordingApp(t, { SESSION_MAX_LIFETIME: '1h' });
    const clock = { aheadMs: 0 };
    const realNow = Date.now;
    store.onGet = () => (clock.aheadMs = 60_000);
    // A genuine cookie with 30 s left whose store entry is already gone: this request saves a new session.
    const gone = nanoid();
    const cookie = `sid=${signer.encode(gone, Date.now() - 3_600_000 + 30_000)}`;
    const theme = await withDateNow(
      () => realNow() + clock.aheadMs,
      () => new Browser(app.url).request('/theme', { headers: { cookie } }),
    );
    t.is(theme.status, 200);
    t.is(theme.setCookies.length, 2, JSON.stringify(theme.setCookies));
    t.is(theme.setCookies[0], 'theme=dark; path=/');
    const fresh = sessionIdOf(cookieValue(theme.setCookies, 'sid'));
    t.truthy(fresh, 'the new session cookie, not a clearing one');
    t.not(fresh, gone);
    t.deepEqual(
      JSON.parse((await app.store.get(storeKeyOf(app, fresh!), 60_000))!),
      { value: 'dark', _session: true },
      'and the new session is stored',
    );
  },
);

test('every store call brings SESSION_MAX_AGE as its TTL when there is no absolute lifetime', async (t) => {
  const { app, store } = await recordingApp(t, { SESSION_MAX_AGE: '45s' });
  const browser = new Browser(app.url);
  await browser.request('/write?value=first');
  const id = storeKeyOf(app, sessionIdOf(browser.cookies.get('sid'))!);
  await browser.request('/read');
  await browser.request('/write?value=second');
  t.deepEqual(store.calls, [
    { method: 'create', id, ttlMs: 45_000 },
    { method: 'get', id, ttlMs: 45_000 },
    { method: 'get', id, ttlMs: 45_000 },
    { method: 'update', id, ttlMs: 45_000 },
  ]);
  const ancient = await sessionIssuedAgo(app, Date.now()); // issued at the epoch: no lifetime, no limit
  t.deepEqual(await new Browser(app.url).json('/read', { headers: { cookie: ancient.cookie } }), { value: 'stored' });
});

test('with an absolute lifetime, each TTL is cut to what is left of it, never below 1 ms', async (t) => {
  const { app, store } = await recordingApp(t, { SESSION_MAX_AGE: '1m', SESSION_MAX_LIFETIME: '1h' });
  const browser = new Browser(app.url);
  await browser.request('/write');
  t.deepEqual(
    store.calls.map((call) => call.ttlMs),
    [60_000],
    'a new session: the idle lifetime is the shorter',
  );

  const old = await sessionIssuedAgo(app, 3_600_000 - 20_000);
  store.calls.length = 0;
  const read = await new Browser(app.url).request('/read', { headers: { cookie: old.cookie } });
  t.is(read.body, READ);
  t.deepEqual(read.setCookies, []);
  const [call] = store.calls;
  t.is(call.method, 'get');
  t.true(call.ttlMs! <= 20_000 && call.ttlMs! > 10_000, `20 s of lifetime left: TTL ${call.ttlMs}`);

  store.calls.length = 0;
  await new Browser(app.url).request('/write?value=changed', { headers: { cookie: old.cookie } });
  t.deepEqual(
    store.calls.map((call) => call.method),
    ['get', 'update'],
  );
  t.true(
    store.calls.every((call) => call.ttlMs! <= 20_000 && call.ttlMs! > 10_000),
    JSON.stringify(store.calls),
  );
});

test('a shorter absolute lifetime caps the TTL of a new session, and of the session a login makes', async (t) => {
  const { app, store } = await recordingApp(t, { SESSION_MAX_AGE: '1h', SESSION_MAX_LIFETIME: '90s' });
  const browser = new Browser(app.url);
  await browser.request('/write');
  const [created] = store.calls;
  t.true(created.method === 'create' && created.ttlMs! <= 90_000 && created.ttlMs! > 80_000, JSON.stringify(created));
  store.calls.length = 0;
  const login = await browser.request('/login', { method: 'POST' });
  t.is(login.status, 200);
  const issuedAt = Number.parseInt(cookieValue(login.setCookies, 'sid')!.split('.')[1], 36);
  t.true(Math.abs(issuedAt - Date.now()) < 10_000, 'the new id has its own issue time');
  const writes = store.calls.filter((call) => call.method === 'create' || call.method === 'update');
  t.true(
    writes.length > 0 && writes.every((call) => call.ttlMs! <= 90_000 && call.ttlMs! > 80_000),
    JSON.stringify(store.calls),
  );
});

test('past the absolute lifetime a genuine cookie is refused at once: no store read, its entry destroyed, the cookie cleared', async (t) => {
  const { app, store } = await recordingApp(t, { SESSION_MAX_LIFETIME: '1h' });
  const expired = await sessionIssuedAgo(app, 3_600_000);
  store.calls.length = 0;
  const read = await new Browser(app.url).request('/read', { headers: { cookie: expired.cookie } });
  t.is(read.status, 200);
  t.is(read.body, '{}');
  t.is(read.setCookies.length, 1);
  t.regex(read.setCookies[0], CLEARING);
  t.deepEqual(store.calls, [{ method: 'destroy', id: storeKeyOf(app, expired.id) }], 'only the destroy');
  t.is(await app.store.get(storeKeyOf(app, expired.id), 1_000), undefined, 'the entry is gone');

  const justAlive = await sessionIssuedAgo(app, 3_600_000 - 30_000);
  const alive = await new Browser(app.url).request('/read', { headers: { cookie: justAlive.cookie } });
  t.is(alive.body, READ, '30 s before the end it is alive');
  t.deepEqual(alive.setCookies, []);

  const again = await sessionIssuedAgo(app, 3_700_000);
  const write = await new Browser(app.url).request('/write', { headers: { cookie: again.cookie } });
  t.is(write.status, 200);
  t.is(write.setCookies.length, 1, 'one cookie: the new session replaces the clearing line');
  const fresh = sessionIdOf(cookieValue(write.setCookies, 'sid'));
  t.truthy(fresh);
  t.not(fresh, again.id);
});

test('the cookie that clears a refused session carries the attributes it was set with (Secure, SameSite)', async (t) => {
  const { app } = await recordingApp(t, {
    SESSION_MAX_LIFETIME: '1m',
    SESSION_COOKIE_SECURE: 'true',
    SESSION_COOKIE_NAME: 'sid',
    SESSION_COOKIE_SAMESITE: 'strict',
  });
  const expired = await sessionIssuedAgo(app, 120_000);
  const read = await new Browser(app.url).request('/read', { headers: { cookie: expired.cookie } });
  t.is(read.body, '{}');
  t.deepEqual(read.setCookies, [
    'sid=; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT; samesite=strict; secure; httponly',
  ]);
});

test('SESSION_COOKIE_SECURE=false never marks the cookie Secure, even behind a trusted TLS proxy', async (t) => {
  const app = await appForTest(t, { TRUST_PROXY: 'true', SESSION_COOKIE_SECURE: 'false' });
  const [cookie] = (await new Browser(app.url).request('/write', { headers: { 'x-forwarded-proto': 'https' } }))
    .setCookies;
  t.regex(cookie, /^sid=[^;]+; path=\/; samesite=lax; httponly$/);
});

test('a cookie signed with an older key is re-signed once, with its id and issue time, and then left alone', async (t) => {
  const oldKey = 'old-signing-key-0123456789abcdefghijklmn';
  const { app, store } = await recordingApp(t, { SESSION_KEYS: `${TEST_KEY},${oldKey}` });
  const id = nanoid();
  await app.store.create(storeKeyOf(app, id, 1), STORED, 60_000); // stored when the old key was the current one
  const issuedAt = Date.now() - 5_000;
  const browser = new Browser(app.url);
  browser.cookies.set('sid', new CookieSigner('sid', [oldKey]).encode(id, issuedAt));
  const first = await browser.request('/read');
  t.is(first.body, READ);
  t.deepEqual(first.setCookies, [`sid=${signer.encode(id, issuedAt)}; path=/; samesite=lax; httponly`]);
  const second = await browser.request('/read');
  t.deepEqual(second.setCookies, [], 'the re-signed cookie needs nothing more');
  store.calls.length = 0;
  browser.cookies.set('sid', new CookieSigner('sid', [oldKey]).encode(id, issuedAt));
  const write = await browser.request('/write?value=changed');
  t.deepEqual(
    write.setCookies,
    [`sid=${signer.encode(id, issuedAt)}; path=/; samesite=lax; httponly`],
    'a write re-signs it too, once',
  );
  t.deepEqual(
    store.calls.map((call) => call.method),
    ['get', 'get', 'update'],
    'the session moved to the current key with the first re-signing: the old key finds nothing, the current one does',
  );
});

test('a cookie signed with an older key is never re-signed for a session the store does not have', async (t) => {
  const oldKey = 'old-signing-key-0123456789abcdefghijklmn';
  const { app, store } = await recordingApp(t, { SESSION_KEYS: `${TEST_KEY},${oldKey}` });
  const id = nanoid();
  await app.store.create(storeKeyOf(app, id, 1), STORED, 60_000);
  await app.store.destroy(storeKeyOf(app, id, 1)); // logged out (or expired) since the browser got its cookie
  const issuedAt = Date.now() - 5_000;
  const cookie = `sid=${new CookieSigner('sid', [oldKey]).encode(id, issuedAt)}`;
  const resigned = signer.encode(id, issuedAt);

  const read = await new Browser(app.url).request('/read', { headers: { cookie } });
  t.is(read.body, '{}');
  t.deepEqual(read.setCookies, [], 'no cookie at all: the id is gone');
  t.deepEqual(
    store.calls,
    [
      { method: 'get', id: storeKeyOf(app, id, 1), ttlMs: 60_000 },
      { method: 'get', id: storeKeyOf(app, id), ttlMs: 60_000 },
    ],
    'the store was asked, under the old key and then the current one (where a move would have put it)',
  );

  const end = await new Browser(app.url).request('/end', { headers: { cookie } });
  t.is(end.setCookies.length, 1);
  t.regex(end.setCookies[0], CLEARING, 'only the clearing cookie');

  const write = await new Browser(app.url).request('/write?value=newer', { headers: { cookie } });
  t.is(write.setCookies.length, 1, 'one cookie, for the new session');
  const fresh = sessionIdOf(cookieValue(write.setCookies, 'sid'));
  t.truthy(fresh);
  t.not(fresh, id);
  for (const answer of [read, end, write]) {
    t.false(
      answer.setCookies.some((line) => line.includes(resigned)),
      'the gone id never comes back re-signed',
    );
  }
});

test('a late answer for an older-key cookie whose session was logged out meanwhile does not overwrite the newer session cookie', async (t) => {
  const oldKey = 'old-signing-key-0123456789abcdefghijklmn';
  let gate!: GatedStore;
  const app = await appForTest(
    t,
    { SESSION_KEYS: `${TEST_KEY},${oldKey}` },
    { wrapStore: (inner) => (gate = new GatedStore(inner)) },
  );
  const id = nanoid();
  await app.store.create(storeKeyOf(app, id, 1), STORED, 60_000);
  const issuedAt = Date.now() - 5_000;
  const browser = new Browser(app.url);
  browser.cookies.set('sid', new CookieSigner('sid', [oldKey]).encode(id, issuedAt));
  const held = gate.holdNext('get');
  const late = new Browser(app.url).request('/read', { headers: { cookie: browser.cookieHeader! } });
  await held.reached; // the slow /read has its cookie but has not asked the store yet
  t.is((await browser.request('/end')).body, 'ok');
  t.is((await browser.request('/write?value=newer')).body, 'ok');
  const newer = browser.cookies.get('sid');
  t.not(sessionIdOf(newer), id, 'a new session since');
  held.release();
  const answer = await late;
  t.is(answer.body, '{}');
  t.deepEqual(answer.setCookies, [], 'nothing that would replace the newer cookie in the browser');
});

test('a new session id already in the store is a bug: 500, nothing written, no cookie', async (t) => {
  const { app, store } = await recordingApp(t);
  store.createAnswer = false;
  const write = await new Browser(app.url).request('/write');
  t.is(write.status, 500);
  t.deepEqual(write.setCookies, []);
  t.is((await app.store.health()).sessions, 0);
  const errors = app.logs.filter((line) => line.level === 'error' || line.level === 50);
  t.is(errors.length, 1);
  t.regex(JSON.stringify(errors[0]), /a new session id is already in use/);
});

test('an end of a session only this request made destroys nothing in the store', async (t) => {
  const { app, store } = await recordingApp(t);
  const answer = await new Browser(app.url).request('/end');
  t.is(answer.status, 200);
  t.deepEqual(answer.setCookies, []);
  t.deepEqual(store.calls, []);
});

test('an end with a cookie for an unknown id: nothing to destroy, and the cookie is cleared', async (t) => {
  const { app, store } = await recordingApp(t);
  const id = nanoid();
  const answer = await new Browser(app.url).request('/end', {
    headers: { cookie: `sid=${signer.encode(id, Date.now())}` },
  });
  t.is(answer.status, 200);
  t.deepEqual(
    store.calls.map((call) => call.method),
    ['get'],
  );
  t.is(answer.setCookies.length, 1);
  t.regex(answer.setCookies[0], CLEARING);
});

test("a response keeps the other cookies a route sets when it drops the session's", async (t) => {
  const app = await appForTest(
    t,
    {},
    {
      routes: (router, session) => {
        router.all('/bye', session.change, (ctx) => {
          ctx.cookies.set('theme', 'dark', { httpOnly: false });
          ctx.session = null;
          ctx.body = 'ok';
        });
      },
    },
  );
  const answer = await new Browser(app.url).request('/bye');
  t.is(answer.status, 200);
  t.deepEqual(answer.setCookies, ['theme=dark; path=/'], 'no session cookie (there was none), the other cookie kept');
});

test('a write-back that finds its session logged out meanwhile sends no session cookie (not even a re-signed one) and keeps the other cookies', async (t) => {
  const oldKey = 'old-signing-key-0123456789abcdefghijklmn';
  let gate!: GatedStore;
  const app = await appForTest(
    t,
    { SESSION_KEYS: `${TEST_KEY},${oldKey}` },
    {
      wrapStore: (inner) => (gate = new GatedStore(inner)),
      routes: (router, session) => {
        addTestRoutes(router, session);
        addThemeRoute(router, session);
      },
    },
  );
  const id = nanoid();
  await app.store.create(storeKeyOf(app, id, 1), STORED, 60_000);
  // Signed with the older key: the request that reads it would re-sign it, were the session still there.
  const headers = { cookie: `sid=${new CookieSigner('sid', [oldKey]).encode(id, Date.now())}` };
  const held = gate.holdNext('update');
  const theme = new Browser(app.url).request('/theme', { headers });
  await held.reached; // /theme has read the session and is about to write it back
  t.is((await new Browser(app.url).request('/end', { headers })).body, 'ok');
  held.release();
  const answer = await theme;
  t.is(answer.status, 200);
  t.deepEqual(answer.setCookies, ['theme=dark; path=/'], "only the route's own cookie");
  t.is(await app.store.get(storeKeyOf(app, id, 1), 60_000), undefined, 'the session stays logged out');
  t.is(await app.store.get(storeKeyOf(app, id), 60_000), undefined, 'under either key');
});

test('a discarded stored session is logged at warn with the store kind and the reason', async (t) => {
  const app = await appForTest(t);
  const id = nanoid();
  await app.store.create(storeKeyOf(app, id), '{"value":', 60_000);
  const read = await new Browser(app.url).request('/read', {
    headers: { cookie: `sid=${signer.encode(id, Date.now())}` },
  });
  t.is(read.body, '{}');
  const warnings = app.logs.filter((line) => line.level === 'warn');
  t.is(warnings.length, 1);
  t.like(warnings[0], {
    store: 'memory',
    reason: 'not JSON',
    msg: 'discarded a stored session that is not valid session data',
  });
});

test('a route that saves a session without the session middleware fails with a 500 whose log says so', async (t) => {
  const app = await appForTest(
    t,
    {},
    {
      routes: (router) => {
        router.all('/unmounted', async (ctx) => {
          ctx.session.value = 'unmounted';
          await ctx.session.save();
          ctx.body = 'ok';
        });
      },
    },
  );
  const answer = await new Browser(app.url).request('/unmounted');
  t.is(answer.status, 500);
  t.deepEqual(answer.setCookies, []);
  const errors = app.logs.filter((line) => line.level === 'error');
  t.is(errors.length, 1);
  t.regex(JSON.stringify(errors[0]), /session middleware not mounted for this request/);
});

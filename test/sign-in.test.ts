/**
 * Signing in (app/session/sign-in.ts), with every store, over real HTTP: what each call does, what a
 * user's list shows and never shows, who may revoke what, the bound per user, what it costs in store
 * calls, and that the list never piles up (expiry, eviction, logout, revoke, sign out everywhere).
 * The overlapping cases are in sign-in-overlap.test.ts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { addRoutes } from '../app/routes.ts';
import { MemoryStore } from '../app/stores/memory.ts';
import type { SqliteStore } from '../app/stores/sqlite.ts';
import { appForTest } from './helpers/app.ts';
import { cookieValue, sessionIdOf } from './helpers/browser.ts';
import { Device, storeScenario } from './helpers/sign-in-setup.ts';
import { storeKeyOf } from './helpers/store-key.ts';

const CHROME_ANDROID =
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36';
const SAFARI_IOS =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';

storeScenario(
  'sign-in gives a new id bound to the user, keeps the data, and the old id is dead',
  async (t, { app }) => {
    const laptop = new Device(app.url);
    await laptop.post('/note', { note: 'before' });
    const before = laptop.cookies.get('sid')!;
    const login = await laptop.signIn('alice');
    t.is(login.status, 200);
    t.deepEqual(JSON.parse(login.body), { signedIn: true });
    const after = cookieValue(login.setCookies, 'sid');
    t.truthy(after, 'the answer carries the new id');
    t.not(sessionIdOf(after), sessionIdOf(before), 'a new id: one planted before cannot ride the sign-in');
    t.deepEqual(await laptop.me(), { user: 'alice', note: 'before' }, 'signed in, data kept');
    const planted = new Device(app.url);
    planted.cookies.set('sid', before);
    t.deepEqual(await planted.me(), { user: null, note: null }, 'the old id opens nothing');
    t.is(await app.store.get(storeKeyOf(app, sessionIdOf(before)!), 60_000), undefined, 'and is not in the store');
  },
);

storeScenario(
  'listSessions: a handle, label, times and the current one; never an id or a store key',
  async (t, setup) => {
    const { app } = setup;
    const laptop = new Device(app.url);
    const phone = new Device(app.url, CHROME_ANDROID);
    const tablet = new Device(app.url, SAFARI_IOS);
    const startedAt = Date.now();
    await laptop.signIn('alice');
    await phone.signIn('alice');
    await tablet.signIn('alice', 'Kitchen <b>iPad</b>\u0007');
    await new Device(app.url).signIn('bob');
    await sleep(20);
    await laptop.me(); // the laptop is the most recently used now
    const answer = await laptop.request('/sessions');
    const sessions = await laptop.sessions();
    t.is(sessions.length, 3, "alice's three, not bob's");
    t.deepEqual(
      sessions.map((session) => session.label),
      ['Chrome on Android', 'Kitchen <b>iPad</b>', 'Firefox on Linux'],
      'least recently used first; labels from the User-Agent, or as the route gave it without control characters',
    );
    t.deepEqual(
      sessions.map((session) => session.current),
      [false, false, true],
    );
    for (const session of sessions) {
      t.regex(session.handle, /^[A-Za-z0-9_-]{22}$/);
      t.true(Date.parse(session.createdAt) >= startedAt - 1_000 && Date.parse(session.createdAt) <= Date.now());
      t.true(Date.parse(session.lastUsedAt) >= Date.parse(session.createdAt));
    }
    t.true(Date.parse(sessions[2].lastUsedAt) > Date.parse(sessions[2].createdAt), 'the last use moved on');
    const everyId = [laptop, phone, tablet].map((device) => sessionIdOf(device.cookies.get('sid'))!);
    for (const id of everyId) {
      t.false(answer.body.includes(id), 'no session id in the list');
      t.false(answer.body.includes(storeKeyOf(app, id)), 'no store key in the list');
    }
    t.deepEqual(await new Device(app.url).sessions(), [], 'not signed in: an empty list');
  },
);

storeScenario(
  'revoke: the user ends another of their sessions by its handle, and only their own',
  async (t, { app }) => {
    const laptop = new Device(app.url);
    const phone = new Device(app.url, CHROME_ANDROID);
    const mallory = new Device(app.url);
    await laptop.signIn('alice');
    await phone.signIn('alice');
    await mallory.signIn('mallory');
    const phoneHandle = (await laptop.sessions()).find((session) => !session.current)!.handle;

    t.is((await mallory.post('/revoke', { handle: phoneHandle })).status, 404, "another user's handle: refused");
    t.is((await new Device(app.url).post('/revoke', { handle: phoneHandle })).status, 404, 'not signed in: refused');
    for (const handle of ['', 'x', `${phoneHandle}x`, '__proto__', 'A'.repeat(22)])
      t.is((await laptop.post('/revoke', { handle })).status, 404, `${JSON.stringify(handle)}: not a listed handle`);
    t.deepEqual(await phone.me(), { user: 'alice', note: null }, 'the phone is still signed in');

    const phoneKey = storeKeyOf(app, sessionIdOf(phone.cookies.get('sid'))!);
    t.is((await laptop.post('/revoke', { handle: phoneHandle })).status, 204);
    t.is(await app.store.get(phoneKey, 60_000), undefined, "the phone's session is destroyed");
    t.deepEqual(await phone.me(), { user: null, note: null }, 'the phone is signed out');
    t.is((await laptop.post('/revoke', { handle: phoneHandle })).status, 404, 'once');
    t.deepEqual(
      (await laptop.sessions()).map((session) => session.current),
      [true],
    );

    const ownHandle = (await laptop.sessions())[0].handle;
    const own = await laptop.post('/revoke', { handle: ownHandle });
    t.is(own.status, 204);
    t.regex(own.setCookies[0] ?? '', /^sid=;/, 'its own handle: this session ends, its cookie cleared');
    t.deepEqual(await laptop.me(), { user: null, note: null });
  },
);

storeScenario(
  'sign out ends this session only; sign out everywhere ends every session of the user',
  async (t, setup) => {
    const { app } = setup;
    const laptop = new Device(app.url);
    const phone = new Device(app.url, CHROME_ANDROID);
    const tablet = new Device(app.url, SAFARI_IOS);
    const bob = new Device(app.url);
    for (const device of [laptop, phone, tablet]) await device.signIn('alice');
    await bob.signIn('bob');

    const logout = await tablet.post('/logout');
    t.regex(logout.setCookies[0] ?? '', /^sid=;/, 'the cookie is cleared');
    t.deepEqual(await tablet.me(), { user: null, note: null });
    t.is((await laptop.sessions()).length, 2, 'and it left the list at once');

    const stolen = phone.copy(); // the phone's cookie, copied elsewhere
    const everywhere = await laptop.post('/logout-everywhere');
    t.deepEqual(JSON.parse(everywhere.body), { ended: 2 });
    t.regex(everywhere.setCookies[0] ?? '', /^sid=;/);
    for (const device of [laptop, phone, stolen]) t.deepEqual(await device.me(), { user: null, note: null });
    t.deepEqual(await bob.me(), { user: 'bob', note: null }, "another user's session is untouched");
    t.is((await bob.sessions()).length, 1);
    const keys = await setup.storedKeys();
    const bobKey = storeKeyOf(app, sessionIdOf(bob.cookies.get('sid'))!);
    t.deepEqual(
      keys.filter((key) => !key.includes('{u:')),
      [bobKey],
      "no session of alice's is left in the store: only bob's",
    );
    t.is(JSON.parse((await new Device(app.url).post('/logout-everywhere')).body).ended, 0, 'not signed in: nothing');
  },
);

storeScenario(
  'past SESSION_MAX_PER_USER, signing in signs out the least recently used session',
  async (t, { app }) => {
    const devices = [0, 1, 2].map((i) => new Device(app.url, `device-${i}`));
    await devices[0].signIn('alice');
    await devices[1].signIn('alice');
    await sleep(5);
    await devices[0].me(); // device 1 is now the least recently used
    await devices[2].signIn('alice');
    t.deepEqual(await devices[1].me(), { user: null, note: null }, 'device 1 is signed out');
    t.deepEqual((await devices[0].me()).user, 'alice');
    t.deepEqual((await devices[2].me()).user, 'alice');
    t.deepEqual((await devices[0].sessions()).map((session) => session.label).sort(), ['device-0', 'device-2']);
    t.is(
      await app.store.get(storeKeyOf(app, sessionIdOf(devices[1].cookies.get('sid'))!), 60_000),
      undefined,
      'and its data is gone',
    );
  },
  { env: { SESSION_MAX_PER_USER: '2' } },
);

storeScenario(
  'a request of a session that is not signed in costs one store call, as before; a signed-in one, one more',
  async (t, { app, gate }) => {
    const visitor = new Device(app.url);
    await visitor.post('/note', { note: 'x' });
    gate.calls.length = 0;
    await visitor.me();
    t.deepEqual(
      gate.calls.map((call) => call.method),
      ['get'],
    );
    const user = new Device(app.url);
    await user.signIn('alice');
    gate.calls.length = 0;
    await user.me();
    t.deepEqual(
      gate.calls.map((call) => call.method),
      ['get', 'users.touch'],
      'the check of a signed-in session is one call',
    );
    gate.calls.length = 0;
    await user.post('/note', { note: 'y' });
    t.deepEqual(
      gate.calls.map((call) => call.method),
      ['get', 'users.touch', 'update'],
    );
  },
);

storeScenario(
  'regenerate() of a signed-in session keeps it signed in and listed once, under its new id',
  async (t, { app }) => {
    const laptop = new Device(app.url);
    await laptop.signIn('alice');
    const before = laptop.cookies.get('sid')!;
    const [listed] = await laptop.sessions();
    const answer = await laptop.post('/regenerate');
    t.not(sessionIdOf(cookieValue(answer.setCookies, 'sid')), sessionIdOf(before));
    t.deepEqual(await laptop.me(), { user: 'alice', note: null });
    const after = await laptop.sessions();
    t.is(after.length, 1);
    t.is(after[0].handle, listed.handle, 'the same entry');
    const old = new Device(app.url);
    old.cookies.set('sid', before);
    t.deepEqual(await old.me(), { user: null, note: null });
    // The entry follows the new store key: sign out everywhere from elsewhere destroys the session itself.
    const phone = new Device(app.url);
    await phone.signIn('alice');
    await phone.post('/logout-everywhere');
    t.is(await app.store.get(storeKeyOf(app, sessionIdOf(laptop.cookies.get('sid'))!), 60_000), undefined);
  },
);

storeScenario('signing in a session that is signed in as someone else replaces that sign-in', async (t, { app }) => {
  const shared = new Device(app.url);
  await shared.signIn('alice');
  await shared.signIn('bob');
  t.deepEqual((await shared.me()).user, 'bob');
  t.is((await shared.sessions()).length, 1);
  const alice = new Device(app.url);
  await alice.signIn('alice');
  t.deepEqual(
    (await alice.sessions()).map((session) => session.current),
    [true],
    "alice's list no longer holds the shared computer",
  );
});

storeScenario(
  'the list never piles up: entries go with sessions that expire, and the user keys go with the last one',
  async (t, setup) => {
    const { app } = setup;
    const devices = [0, 1, 2].map((i) => new Device(app.url, `device-${i}`));
    for (const device of devices) await device.signIn('alice');
    t.is((await devices[0].sessions()).length, 3);
    await sleep(900);
    await devices[0].me(); // device 0 stays in use
    await sleep(900); // devices 1 and 2 have been idle longer than SESSION_MAX_AGE now
    const left = await devices[0].sessions();
    t.deepEqual(
      left.map((session) => session.label),
      ['device-0'],
    );
    await sleep(1_600);
    if (setup.storeName === 'redis') {
      // Redis expires every key by itself, the user's with their last entry.
      let keys = await setup.storedKeys();
      for (let attempt = 0; attempt < 40 && keys.length > 0; attempt++) {
        await sleep(100);
        keys = await setup.storedKeys();
      }
      t.deepEqual(keys, [], 'nothing left in Redis');
    } else if (setup.storeName === 'sqlite') {
      const store = app.store as SqliteStore;
      await store.sweep();
      t.deepEqual(store.users.counts, { users: 0, entries: 0 }, 'nothing left in the SQLite store');
    } else {
      const store = app.store as MemoryStore;
      await store.sweep();
      store.users.sweep();
      t.deepEqual(store.users.counts, { users: 0, entries: 0 }, 'nothing left in the memory store');
    }
  },
  { env: { SESSION_MAX_AGE: '1500ms' } },
);

test('memory store: an evicted session leaves its user list at once', async (t) => {
  const store = new MemoryStore({ maxEntries: 3 });
  t.teardown(() => store.close());
  const app = await appForTest(
    t,
    { SESSION_MAX_ENTRIES: '3' },
    { store, keepStore: true, routes: (await import('./helpers/sign-in-routes.ts')).addSignInRoutes },
  );
  const alice = new Device(app.url, 'alice-laptop');
  await alice.signIn('alice');
  const phone = new Device(app.url, 'alice-phone');
  await phone.signIn('alice');
  await alice.me(); // read again: protected; the phone's session stays in probation
  t.deepEqual(store.users.counts, { users: 1, entries: 2 });
  for (let i = 0; i < 5; i++) await new Device(app.url).post('/note', { note: `flood ${i}` });
  t.deepEqual(await phone.me(), { user: null, note: null }, "the phone's session was evicted");
  t.deepEqual(
    (await alice.sessions()).map((session) => session.label),
    ['alice-laptop'],
    'and is no longer listed',
  );
  t.deepEqual(store.users.counts, { users: 1, entries: 1 });
});

test('nothing the template mounts signs anyone in: no login route by default', async (t) => {
  // app/routes.ts's routes, as `npm start` serves them (the tests' default routes have a /login of their own).
  const app = await appForTest(t, {}, { routes: addRoutes });
  for (const path of ['/login', '/signin', '/sign-in', '/sessions', '/logout'])
    t.is((await new Device(app.url).post(path, { user: 'alice' })).status, 404, path);
});

test('signIn() on a route mounted with session.read is a bug: 500, logged, nothing signed in', async (t) => {
  const app = await appForTest(t, {}, { routes: (await import('./helpers/sign-in-routes.ts')).addSignInRoutes });
  const device = new Device(app.url);
  const answer = await device.request('/login-on-read');
  t.is(answer.status, 500);
  t.deepEqual(answer.setCookies, []);
  t.regex(app.logText(), /signIn\(\) needs a route mounted with session\.change/);
  t.is((await app.store.health()).sessions, 0);
});

test('a stored session whose _user is not what the app writes is discarded; a well-formed one nobody listed is refused', async (t) => {
  const app = await appForTest(t, {}, { routes: (await import('./helpers/sign-in-routes.ts')).addSignInRoutes });
  const device = new Device(app.url);
  await device.post('/note', { note: 'x' });
  const key = storeKeyOf(app, sessionIdOf(device.cookies.get('sid'))!);
  await app.store.destroy(key);
  const forged = [
    { id: 'alice', e: 0, h: 'A'.repeat(22), extra: 1 },
    { id: '', e: 0, h: 'A'.repeat(22) },
    { id: 'alice', e: -1, h: 'A'.repeat(22) },
    { id: 'alice', e: 0, h: 'short' },
    ['alice'],
    'alice',
  ];
  for (const user of forged) {
    t.true(await app.store.create(key, JSON.stringify({ note: 'x', _session: true, _user: user }), 60_000));
    t.deepEqual(await device.me(), { user: null, note: null }, JSON.stringify(user));
    t.is(await app.store.get(key, 60_000), undefined, 'and deleted');
  }
  // Well-formed, but no sign-in listed it (written by hand, or by another app sharing the store): refused.
  t.true(
    await app.store.create(
      key,
      JSON.stringify({ _session: true, _user: { id: 'alice', e: 0, h: 'A'.repeat(22) } }),
      60_000,
    ),
  );
  t.deepEqual(await device.me(), { user: null, note: null });
  t.is(await app.store.get(key, 60_000), undefined, 'refused and destroyed');
});

test('SESSION_MAX_PER_USER: a whole number from 1 to 1000, 50 by default', async (t) => {
  const { loadConfig } = await import('../config/index.ts');
  t.is(loadConfig({}).session.maxPerUser, 50);
  t.is(loadConfig({ SESSION_MAX_PER_USER: '1000' }).session.maxPerUser, 1_000);
  for (const bad of ['0', '1001', '-1', 'many', '2.5'])
    t.throws(
      () => loadConfig({ SESSION_MAX_PER_USER: bad }),
      { message: /^SESSION_MAX_PER_USER=.* is not allowed: a whole number from 1 to 1000$/ },
      bad,
    );
});

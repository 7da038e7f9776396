/**
 * Session lifetime over real HTTP, with short max ages and wide margins (the machine is shared and
 * slow at times): idle expiry, sliding expiry, the absolute lifetime, the eviction bound, and many
 * concurrent writes to one session.
 *
 * Margins: an assertion that a session is gone comes after a wait longer than its lifetime (timers
 * never fire early, so no margin is needed there); one that it is still alive leaves at least 1.5 s
 * between the last use the server saw and the end of the lifetime, and is timed: an attempt in which
 * a stall made it come too late runs again (test/helpers/timing.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { appForTest, type RunningApp, startApp } from './helpers/app.ts';
import { Browser, cookieValue, sessionIdOf } from './helpers/browser.ts';
import { GatedStore } from './helpers/gated-store.ts';
import { deleteKeysWithPrefix, PATIENT_REDIS, REDIS_URL, redisTest, uniquePrefix } from './helpers/redis.ts';
import { storeKeyOf } from './helpers/store-key.ts';
import { untilConclusive } from './helpers/timing.ts';

/** A fresh app for one attempt of a timed case, closed when the attempt ends. */
async function withApp(env: Record<string, string>, fn: (app: RunningApp) => Promise<void>): Promise<void> {
  const app = await startApp(env);
  try {
    await fn(app);
  } finally {
    await app.close();
  }
}

test('an idle session expires after SESSION_MAX_AGE; replaying its cookie gives {}', (t) =>
  untilConclusive(t, (tt, watch) =>
    withApp({ SESSION_MAX_AGE: '2s' }, async (app) => {
      const browser = new Browser(app.url);
      watch.start();
      await browser.request('/write?value=idle');
      tt.deepEqual(await browser.json('/read'), { value: 'idle' }, 'alive right after the write');
      watch.checked(2_000, 'the read after the write');
      await sleep(2_500);
      tt.deepEqual(await browser.json('/read'), {}, 'gone after staying idle longer than the max age');
    }),
  ));

test('sliding expiry: a session in use outlives its max age; once idle it is gone for good', (t) =>
  untilConclusive(t, (tt, watch) =>
    withApp({ SESSION_MAX_AGE: '2s' }, async (app) => {
      const browser = new Browser(app.url);
      watch.start();
      await browser.request('/write?value=in use');
      const stored = await browser.json('/read');
      tt.deepEqual(stored, { value: 'in use' });
      watch.checked(2_000, 'the first read');
      // Read it every 500 ms for 5 s, more than twice the max age: each read renews it.
      for (let i = 0; i < 10; i++) {
        await sleep(500);
        const reading = performance.now();
        tt.deepEqual(await browser.json('/read'), stored, `still alive at read ${i + 1}`);
        watch.checked(2_000, `read ${i + 1}`);
        watch.start(reading);
      }
      const idleCookie = browser.cookieHeader!;
      await sleep(2_500);
      tt.deepEqual(await browser.json('/read'), {}, 'expired after 2.5 s idle');
      await sleep(100);
      const replay = await new Browser(app.url).request('/read', { headers: { cookie: idleCookie } });
      tt.is(replay.body, '{}', 'and stays gone');
    }),
  ));

test('SESSION_MAX_LIFETIME: alive until shortly before it ends, refused after it with the cookie cleared, and gone from the store', (t) =>
  untilConclusive(t, (tt, watch) => {
    const lifetimeMs = 4_000;
    return withApp({ SESSION_MAX_AGE: '1m', SESSION_MAX_LIFETIME: `${lifetimeMs}ms` }, async (app) => {
      const browser = new Browser(app.url);
      watch.start();
      const before = Date.now();
      const first = await browser.request('/write?value=bounded');
      const after = Date.now();
      const cookie = cookieValue(first.setCookies, 'sid')!;
      const issuedAt = issuedAtOf(cookie);
      tt.true(
        issuedAt >= before && issuedAt <= after,
        `the cookie carries its issue time to the millisecond (${issuedAt} in [${before}, ${after}])`,
      );

      // 1.5 s before the end it is alive (the issue time's precision is checked above: to the millisecond).
      await sleep(issuedAt + lifetimeMs - 1_500 - Date.now());
      tt.deepEqual(await browser.json('/read'), { value: 'bounded' }, 'alive shortly before the end');
      watch.checked(lifetimeMs, 'the read before the end');

      await sleep(issuedAt + lifetimeMs + 300 - Date.now());
      tt.is(
        await app.store.get(storeKeyOf(app, sessionIdOf(cookie)!), 60_000),
        undefined,
        'the store entry ended with the lifetime (its TTL was capped to it)',
      );
      const refused = await browser.request('/read');
      tt.is(refused.body, '{}', 'refused past the absolute lifetime');
      tt.true(
        refused.setCookies.some((line) => /^sid=;.*expires=Thu, 01 Jan 1970/i.test(line)),
        'and the refused cookie is cleared in that response',
      );
      const again = await browser.request('/write');
      tt.not(sessionIdOf(cookieValue(again.setCookies, 'sid')), sessionIdOf(cookie), 'a new session gets a new id');
    });
  }));

test('regenerate() restarts the absolute lifetime: the new id counts from its own issue time', (t) =>
  untilConclusive(t, (tt, watch) => {
    const lifetimeMs = 3_000;
    return withApp({ SESSION_MAX_AGE: '1m', SESSION_MAX_LIFETIME: `${lifetimeMs}ms` }, async (app) => {
      const browser = new Browser(app.url);
      await browser.request('/write?value=carried');
      const firstIssuedAt = issuedAtOf(browser.cookies.get('sid')!);
      await sleep(2_000);
      watch.start();
      const regenerated = await browser.request('/regenerate', { method: 'POST' });
      const secondIssuedAt = issuedAtOf(cookieValue(regenerated.setCookies, 'sid')!);
      tt.true(secondIssuedAt >= firstIssuedAt + 2_000, 'the new cookie carries a new issue time');

      // Past the first id's lifetime, at least 1.5 s before the second's ends (it was issued 2 s or more later).
      await sleep(firstIssuedAt + lifetimeMs + 300 - Date.now());
      tt.deepEqual(await browser.json('/read'), { value: 'carried' }, "alive past the first id's lifetime");
      watch.checked(lifetimeMs, "the read within the new id's lifetime");
      await sleep(secondIssuedAt + lifetimeMs + 300 - Date.now());
      tt.deepEqual(await browser.json('/read'), {}, 'refused once its own lifetime is over');
    });
  }));

/** The issue time (Unix ms) inside a cookie value `<id>.<issued, base 36>.<signature>`. */
function issuedAtOf(cookie: string): number {
  return Number.parseInt(cookie.split('.')[1], 36);
}

test('SESSION_MAX_ENTRIES bounds the memory store: a session never read again is evicted first', async (t) => {
  const app = await appForTest(t, { SESSION_MAX_ENTRIES: '3' });
  const browsers = [0, 1, 2, 3].map(() => new Browser(app.url));
  for (const [index, browser] of browsers.slice(0, 3).entries()) await browser.request(`/write?value=${index}`);
  // Reading session 0 again protects it; session 1 is then the oldest session never read again.
  t.deepEqual(await browsers[0].json('/read'), { value: '0' });
  await browsers[3].request('/write?value=3');
  t.is((await app.store.health()).sessions, 3, 'never more than SESSION_MAX_ENTRIES');
  t.deepEqual(await browsers[1].json('/read'), {}, 'the oldest session never read again was evicted');
  for (const index of [0, 2, 3]) {
    t.deepEqual(await browsers[index].json('/read'), { value: String(index) }, `session ${index} is kept`);
  }
});

test('100 parallel writes on one session all succeed and leave one valid session', async (t) => {
  const app = await appForTest(t);
  const browser = new Browser(app.url);
  await browser.request('/write?value=first');
  const cookie = browser.cookieHeader!;
  // Each writes a value of its own, so every one of them writes the session back.
  const values = Array.from({ length: 100 }, (_, i) => `parallel ${i}`);
  const answers = await Promise.all(
    values.map((value) => new Browser(app.url).request(`/write?value=${value}`, { headers: { cookie } })),
  );
  t.true(answers.every((answer) => answer.status === 200 && answer.body === 'ok'));
  t.true(
    answers.every((answer) => answer.setCookies.length === 0),
    'no request replaced the session id',
  );
  t.is((await app.store.health()).sessions, 1);
  const data = (await browser.json('/read')) as { value: string };
  t.true(values.includes(data.value), `one of the writes is kept whole: ${JSON.stringify(data)}`);
});

for (const [name, storeTest, env] of [
  ['memory', test, () => ({})],
  [
    'redis',
    redisTest(test),
    () => ({ SESSION_STORE: 'redis', REDIS_URL: REDIS_URL ?? '', REDIS_KEY_PREFIX: uniquePrefix(), ...PATIENT_REDIS }),
  ],
] as const) {
  storeTest(
    `${name} store: the README's login (regenerate(), then a change) keeps the idle lifetime SESSION_MAX_AGE`,
    (t) =>
      untilConclusive(t, async (tt, watch) => {
        const settings: Record<string, string> = { ...env(), SESSION_MAX_AGE: '2s' };
        try {
          await withApp(settings, async (app) => {
            const browser = new Browser(app.url);
            await browser.request('/write');
            // koa-session saves twice in this request: after regenerate(), and after the change.
            tt.is((await browser.request('/login?value=42', { method: 'POST' })).body, 'welcome');
            const id = sessionIdOf(browser.cookies.get('sid'))!;
            watch.start();
            const stored = JSON.parse((await app.store.get(storeKeyOf(app, id), 2_000))!) as Record<string, unknown>;
            tt.deepEqual(
              stored,
              { value: '42', _session: true },
              'no koa-session expiry fields (a one-day _maxAge) stored',
            );
            tt.deepEqual(await browser.json('/read'), { value: '42' });
            watch.checked(2_000, 'the read after the store read');
            await sleep(2_500);
            tt.deepEqual(await browser.json('/read'), {}, 'gone after 2.5 s idle with SESSION_MAX_AGE=2s');
          });
        } finally {
          if (settings.REDIS_KEY_PREFIX) await deleteKeysWithPrefix(settings.REDIS_KEY_PREFIX);
        }
      }),
  );
}

test('a request during which the absolute lifetime ends clears the cookie, even though the cookie was good when it came in', async (t) => {
  let gate!: GatedStore;
  const app = await appForTest(
    t,
    { SESSION_MAX_AGE: '1m', SESSION_MAX_LIFETIME: '3s' },
    { wrapStore: (inner) => (gate = new GatedStore(inner)) },
  );
  const browser = new Browser(app.url);
  await browser.request('/write');
  const issuedAt = issuedAtOf(browser.cookies.get('sid')!);
  const held = gate.holdNext('get');
  const reading = browser.request('/read');
  await held.reached; // the cookie passed its check; the store read waits
  await sleep(issuedAt + 3_000 + 200 - Date.now());
  held.release();
  const answer = await reading;
  t.is(answer.body, '{}');
  t.true(
    answer.setCookies.some((line) => /^sid=;.*expires=Thu, 01 Jan 1970/i.test(line)),
    'the cookie is cleared',
  );
});

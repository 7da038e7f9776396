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
import { addSeedRoutes as addSessionRoutes } from '../app/seed/routes.ts';
import { appForTest, type RunningApp, type StartOptions, startApp } from './helpers/app.ts';
import { Browser, cookieValue, sessionIdOf } from './helpers/browser.ts';
import { GatedStore } from './helpers/gated-store.ts';
import { deleteKeysWithPrefix, PATIENT_REDIS, REDIS_URL, redisTest, uniquePrefix } from './helpers/redis.ts';
import { storeKeyOf } from './helpers/store-key.ts';
import { untilConclusive } from './helpers/timing.ts';

/** A fresh app for one attempt of a timed case, closed when the attempt ends. */
async function withApp(
  env: Record<string, string>,
  options: StartOptions,
  fn: (app: RunningApp) => Promise<void>,
): Promise<void> {
  const app = await startApp(env, options);
  try {
    await fn(app);
  } finally {
    await app.close();
  }
}

/** The seed's routes plus a login that regenerates the session (the README's). */
const withLogin: StartOptions = {
  routes: (router, session) => {
    addSessionRoutes(router, session);
    router.post('/login', session.change, async (ctx) => {
      await ctx.session.regenerate();
      ctx.body = 'welcome';
    });
  },
};

test('an idle session expires after SESSION_MAX_AGE; replaying its cookie gives {}', (t) =>
  untilConclusive(t, (tt, watch) =>
    withApp({ SESSION_MAX_AGE: '2s' }, {}, async (app) => {
      const browser = new Browser(app.url);
      watch.start();
      await browser.request('/set');
      tt.deepEqual(Object.keys(await browser.json('/get')), ['time'], 'alive right after /set');
      watch.checked(2_000, 'the /get after /set');
      await sleep(2_500);
      tt.deepEqual(await browser.json('/get'), {}, 'gone after staying idle longer than the max age');
    }),
  ));

test('sliding expiry: a session in use outlives its max age; once idle it is gone for good', (t) =>
  untilConclusive(t, (tt, watch) =>
    withApp({ SESSION_MAX_AGE: '2s' }, {}, async (app) => {
      const browser = new Browser(app.url);
      watch.start();
      await browser.request('/set');
      const stored = await browser.json('/get');
      watch.checked(2_000, 'the first /get');
      // Read it every 500 ms for 5 s, more than twice the max age: each read renews it.
      for (let i = 0; i < 10; i++) {
        await sleep(500);
        const reading = performance.now();
        tt.deepEqual(await browser.json('/get'), stored, `still alive at read ${i + 1}`);
        watch.checked(2_000, `read ${i + 1}`);
        watch.start(reading);
      }
      const idleCookie = browser.cookieHeader!;
      await sleep(2_500);
      tt.deepEqual(await browser.json('/get'), {}, 'expired after 2.5 s idle');
      await sleep(100);
      const replay = await new Browser(app.url).request('/get', { headers: { cookie: idleCookie } });
      tt.is(replay.body, '{}', 'and stays gone');
    }),
  ));

test('SESSION_MAX_LIFETIME: alive until shortly before it ends, refused after it with the cookie cleared, and gone from the store', (t) =>
  untilConclusive(t, (tt, watch) => {
    const lifetimeMs = 4_000;
    return withApp({ SESSION_MAX_AGE: '1m', SESSION_MAX_LIFETIME: `${lifetimeMs}ms` }, {}, async (app) => {
      const browser = new Browser(app.url);
      watch.start();
      const before = Date.now();
      const first = await browser.request('/set');
      const after = Date.now();
      const cookie = cookieValue(first.setCookies, 'sid')!;
      const issuedAt = issuedAtOf(cookie);
      tt.true(
        issuedAt >= before && issuedAt <= after,
        `the cookie carries its issue time to the millisecond (${issuedAt} in [${before}, ${after}])`,
      );

      // 1.5 s before the end it is alive (the issue time's precision is checked above: to the millisecond).
      await sleep(issuedAt + lifetimeMs - 1_500 - Date.now());
      tt.deepEqual(Object.keys(await browser.json('/get')), ['time'], 'alive shortly before the end');
      watch.checked(lifetimeMs, 'the /get before the end');

      await sleep(issuedAt + lifetimeMs + 300 - Date.now());
      tt.is(
        await app.store.get(storeKeyOf(app, sessionIdOf(cookie)!), 60_000),
        undefined,
        'the store entry ended with the lifetime (its TTL was capped to it)',
      );
      const refused = await browser.request('/get');
      tt.is(refused.body, '{}', 'refused past the absolute lifetime');
      tt.true(
        refused.setCookies.some((line) => /^sid=;.*expires=Thu, 01 Jan 1970/i.test(line)),
        'and the refused cookie is cleared in that response',
      );
      const again = await browser.request('/set');
      tt.not(sessionIdOf(cookieValue(again.setCookies, 'sid')), sessionIdOf(cookie), 'a new session gets a new id');
    });
  }));

test('regenerate() restarts the absolute lifetime: the new id counts from its own issue time', (t) =>
  untilConclusive(t, (tt, watch) => {
    const lifetimeMs = 3_000;
    return withApp({ SESSION_MAX_AGE: '1m', SESSION_MAX_LIFETIME: `${lifetimeMs}ms` }, withLogin, async (app) => {
      const browser = new Browser(app.url);
      await browser.request('/set');
      const firstIssuedAt = issuedAtOf(browser.cookies.get('sid')!);
      await sleep(2_000);
      watch.start();
      const login = await browser.request('/login', { method: 'POST' });
      const secondIssuedAt = issuedAtOf(cookieValue(login.setCookies, 'sid')!);
      tt.true(secondIssuedAt >= firstIssuedAt + 2_000, 'the new cookie carries a new issue time');

      // Past the first id's lifetime, at least 1.5 s before the second's ends (it was issued 2 s or more later).
      await sleep(firstIssuedAt + lifetimeMs + 300 - Date.now());
      tt.deepEqual(Object.keys(await browser.json('/get')), ['time'], "alive past the first id's lifetime");
      watch.checked(lifetimeMs, "the /get within the new id's lifetime");
      await sleep(secondIssuedAt + lifetimeMs + 300 - Date.now());
      tt.deepEqual(await browser.json('/get'), {}, 'refused once its own lifetime is over');
    });
  }));

/** The issue time (Unix ms) inside a cookie value `<id>.<issued, base 36>.<signature>`. */
function issuedAtOf(cookie: string): number {
  return Number.parseInt(cookie.split('.')[1], 36);
}

test('SESSION_MAX_ENTRIES bounds the memory store: a session never read again is evicted first', async (t) => {
  const app = await appForTest(t, { SESSION_MAX_ENTRIES: '3' });
  const browsers = [0, 1, 2, 3].map(() => new Browser(app.url));
  for (const browser of browsers.slice(0, 3)) await browser.request('/set');
  // Reading session 0 again protects it; session 1 is then the oldest session never read again.
  t.deepEqual(Object.keys(await browsers[0].json('/get')), ['time']);
  await browsers[3].request('/set');
  t.is((await app.store.health()).sessions, 3, 'never more than SESSION_MAX_ENTRIES');
  t.deepEqual(await browsers[1].json('/get'), {}, 'the oldest session never read again was evicted');
  for (const index of [0, 2, 3]) {
    t.deepEqual(Object.keys(await browsers[index].json('/get')), ['time'], `session ${index} is kept`);
  }
});

test('100 parallel /set on one session all succeed and leave one valid session', async (t) => {
  const app = await appForTest(t);
  const browser = new Browser(app.url);
  await browser.request('/set');
  const cookie = browser.cookieHeader!;
  const answers = await Promise.all(
    Array.from({ length: 100 }, () => new Browser(app.url).request('/set', { headers: { cookie } })),
  );
  t.true(answers.every((answer) => answer.status === 200 && answer.body === 'ok'));
  t.true(
    answers.every((answer) => answer.setCookies.length === 0),
    'no request replaced the session id',
  );
  t.is((await app.store.health()).sessions, 1);
  const data = (await browser.json('/get')) as { time: number };
  t.true(Number.isInteger(data.time));
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
          await withApp(
            settings,
            {
              routes: (router, session) => {
                addSessionRoutes(router, session);
                router.post('/login', session.change, async (ctx) => {
                  await ctx.session.regenerate();
                  ctx.session.time = 42; // koa-session saves twice in this request
                  ctx.body = 'welcome';
                });
              },
            },
            async (app) => {
              const browser = new Browser(app.url);
              await browser.request('/set');
              await browser.request('/login', { method: 'POST' });
              const id = sessionIdOf(browser.cookies.get('sid'))!;
              watch.start();
              const stored = JSON.parse((await app.store.get(storeKeyOf(app, id), 2_000))!) as Record<string, unknown>;
              tt.deepEqual(
                stored,
                { time: 42, _session: true },
                'no koa-session expiry fields (a one-day _maxAge) stored',
              );
              tt.deepEqual(await browser.json('/get'), { time: 42 });
              watch.checked(2_000, 'the /get after the store read');
              await sleep(2_500);
              tt.deepEqual(await browser.json('/get'), {}, 'gone after 2.5 s idle with SESSION_MAX_AGE=2s');
            },
          );
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
  await browser.request('/set');
  const issuedAt = issuedAtOf(browser.cookies.get('sid')!);
  const held = gate.holdNext('get');
  const reading = browser.request('/get');
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

/**
 * Logout is final, with both stores, when requests overlap. Each bad interleaving is made to happen on
 * purpose: a store wrapper (GatedStore) holds one request between its read and its write while another
 * request logs out or regenerates, then lets it go. Checked through the cookie and through the store.
 */

import { once } from 'node:events';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type Router from '@koa/router';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { addSeedRoutes as addSessionRoutes } from '../app/seed/routes.ts';
import type { SessionMiddleware } from '../app/session/middleware.ts';
import { appForTest, type RunningApp } from './helpers/app.ts';
import { Browser, cookieValue, sessionIdOf } from './helpers/browser.ts';
import { GatedStore } from './helpers/gated-store.ts';
import {
  deleteKeysWithPrefix,
  inspector,
  keysWithPrefix,
  PATIENT_REDIS,
  REDIS_URL,
  redisTest,
  uniquePrefix,
} from './helpers/redis.ts';
import { storeKeyOf } from './helpers/store-key.ts';

const test = anyTest as TestFn;

/**
 * The seed's routes, a login that rotates the id exactly as the README shows, and /touch: a write-back
 * of the loaded session every time (the seed's /set writes only when the second has changed).
 */
function routesWithLogin(router: Router, session: SessionMiddleware): void {
  addSessionRoutes(router, session);
  router.all('/touch', session.change, async (ctx) => {
    await ctx.session.save();
    ctx.body = 'ok';
  });
  router.post('/login', session.change, async (ctx) => {
    await ctx.session.regenerate();
    ctx.body = 'welcome';
  });
}

interface Setup {
  readonly app: RunningApp;
  readonly gate: GatedStore;
  /** How many sessions the store holds right now. */
  sessionCount(): Promise<number>;
}

type Scenario = (t: ExecutionContext, setup: Setup) => Promise<void>;

const STORES: Array<{
  name: string;
  test: TestFn;
  env(): Record<string, string>;
  count(app: RunningApp, env: Record<string, string>): Promise<number>;
}> = [
  {
    name: 'memory',
    test,
    env: () => ({}),
    count: async (app) => (await app.store.health()).sessions as number,
  },
  {
    name: 'redis',
    test: redisTest(test),
    env: () => ({
      SESSION_STORE: 'redis',
      REDIS_URL: REDIS_URL ?? '',
      REDIS_KEY_PREFIX: uniquePrefix(),
      ...PATIENT_REDIS,
    }),
    async count(_app, env) {
      const client = await inspector();
      try {
        return (await keysWithPrefix(client, env.REDIS_KEY_PREFIX)).length;
      } finally {
        await client.close();
      }
    },
  },
];

function scenario(title: string, body: Scenario): void {
  for (const store of STORES) {
    store.test(`${store.name} store: ${title}`, async (t) => {
      const env = store.env();
      if (env.REDIS_KEY_PREFIX) t.teardown(() => deleteKeysWithPrefix(env.REDIS_KEY_PREFIX));
      let gate!: GatedStore;
      const app = await appForTest(t, env, {
        routes: routesWithLogin,
        wrapStore: (inner) => (gate = new GatedStore(inner)),
      });
      await body(t, { app, gate, sessionCount: () => store.count(app, env) });
    });
  }
}

async function establish(url: string): Promise<{ browser: Browser; cookie: string; id: string }> {
  const browser = new Browser(url);
  await browser.request('/set');
  const cookie = browser.cookies.get('sid')!;
  return { browser, cookie, id: sessionIdOf(cookie)! };
}

/** A client that sends this exact cookie and keeps nothing. */
function withCookie(url: string, cookie: string) {
  return (path: string, init: RequestInit = {}) =>
    new Browser(url).request(path, { ...init, headers: { cookie: `sid=${cookie}` } });
}

scenario(
  '/del while a write-back with the same cookie is between its read and its write: the session stays dead',
  async (t, { app, gate, sessionCount }) => {
    const { cookie, id } = await establish(app.url);
    const send = withCookie(app.url, cookie);
    const held = gate.holdNext('update');
    const set = send('/touch');
    await held.reached; // /set has read the session and is about to write it back
    const del = await send('/del');
    t.is(del.body, 'ok');
    held.release();
    const setAnswer = await set;
    t.is(setAnswer.status, 200);
    t.deepEqual(setAnswer.setCookies, [], 'the late write sends no cookie (neither the old id nor a clearing one)');

    t.is(await app.store.get(storeKeyOf(app, id), 60_000), undefined, 'the store has no entry for the old id');
    t.is((await send('/get')).body, '{}', 'the old cookie opens nothing');
    t.is(await sessionCount(), 0, 'nothing was recreated');
  },
);

scenario(
  'regenerate() while a write-back on the old id is between its read and its write: the old id stays dead',
  async (t, { app, gate, sessionCount }) => {
    const { cookie, id } = await establish(app.url);
    const send = withCookie(app.url, cookie);
    const held = gate.holdNext('update');
    const set = send('/touch');
    await held.reached;
    const login = await send('/login', { method: 'POST' });
    t.is(login.body, 'welcome');
    const newCookie = cookieValue(login.setCookies, 'sid')!;
    t.not(sessionIdOf(newCookie), id, 'a new id');
    held.release();
    t.deepEqual((await set).setCookies, []);

    t.is(await app.store.get(storeKeyOf(app, id), 60_000), undefined, 'the old id is not in the store');
    t.is((await send('/get')).body, '{}', 'the old cookie opens nothing');
    t.deepEqual(
      Object.keys(JSON.parse((await withCookie(app.url, newCookie)('/get')).body)),
      ['time'],
      'the new id holds the data',
    );
    t.is(await sessionCount(), 1, 'exactly one session: the new one');
  },
);

scenario(
  'two regenerate()s at once on one session: one new session, the old id dead',
  async (t, { app, gate, sessionCount }) => {
    const { cookie, id } = await establish(app.url);
    const send = withCookie(app.url, cookie);
    // Both logins read the session, then both are held just before destroying the old id.
    const first = gate.holdNext('destroy');
    const second = gate.holdNext('destroy');
    const loginA = send('/login', { method: 'POST' });
    await first.reached;
    const loginB = send('/login', { method: 'POST' });
    await second.reached;
    first.release();
    const a = await loginA;
    second.release();
    const b = await loginB;

    t.is(a.status, 200);
    t.is(b.status, 200);
    const newCookieA = cookieValue(a.setCookies, 'sid');
    t.truthy(newCookieA, 'the first to destroy the old id gets the new session');
    t.deepEqual(
      b.setCookies,
      [],
      'the second finds it gone: writes nothing, sends no cookie (not even a clearing one)',
    );
    t.is(await app.store.get(storeKeyOf(app, id), 60_000), undefined);
    t.is((await send('/get')).body, '{}');
    t.is(await sessionCount(), 1, 'one session, not two copies');
    t.deepEqual(Object.keys(JSON.parse((await withCookie(app.url, newCookieA!)('/get')).body)), ['time']);
  },
);

scenario(
  '/del while a regenerate() has read the session: the logout wins, no new session appears',
  async (t, { app, gate, sessionCount }) => {
    const { cookie, id } = await establish(app.url);
    const send = withCookie(app.url, cookie);
    const held = gate.holdNext('destroy');
    const login = send('/login', { method: 'POST' });
    await held.reached;
    t.is((await send('/del')).body, 'ok');
    held.release();
    t.deepEqual((await login).setCookies, [], 'no new cookie');
    t.is(await app.store.get(storeKeyOf(app, id), 60_000), undefined);
    t.is(await sessionCount(), 0, 'the logout is final');
  },
);

scenario(
  'a /set pipelined right behind /del on one connection never revives the old id',
  async (t, { app, sessionCount }) => {
    const { port } = new URL(app.url);
    for (let round = 0; round < 10; round++) {
      const { cookie, id } = await establish(app.url);
      const socket = connect(Number(port), '127.0.0.1');
      await once(socket, 'connect');
      let answer = '';
      socket.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
      const request = (path: string, close = false) =>
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: sid=${cookie}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;
      socket.write(request('/del') + request('/set', true)); // one write: both requests on the wire at once
      await once(socket, 'close');
      t.is(answer.match(/HTTP\/1\.1 200 OK/g)?.length, 2, `both answered: ${answer}`);
      t.is(
        await app.store.get(storeKeyOf(app, id), 60_000),
        undefined,
        `round ${round}: the old id is not in the store`,
      );
      t.is((await withCookie(app.url, cookie)('/get')).body, '{}', `round ${round}: the old cookie opens nothing`);
    }
    // Each /set after its /del made at most one fresh session of its own; none under an old id.
    t.true((await sessionCount()) <= 10);
  },
);

scenario(
  'a late or retried request with a destroyed cookie starts a fresh session under a new id',
  async (t, { app }) => {
    const { cookie, id } = await establish(app.url);
    const send = withCookie(app.url, cookie);
    t.is((await send('/del')).body, 'ok');
    for (let i = 0; i < 3; i++) {
      const retried = await send('/set');
      const issued = sessionIdOf(cookieValue(retried.setCookies, 'sid'));
      t.truthy(issued);
      t.not(issued, id);
    }
    t.is(await app.store.get(storeKeyOf(app, id), 60_000), undefined);
  },
);

test('concurrent updates of one live session: the last write wins and the session stays alive', async (t) => {
  let gate!: GatedStore;
  const app = await appForTest(t, {}, { wrapStore: (inner) => (gate = new GatedStore(inner)) });
  const { cookie, id } = await establish(app.url);
  const send = withCookie(app.url, cookie);
  const storedTime = async () =>
    (JSON.parse((await app.store.get(storeKeyOf(app, id), 60_000))!) as { time: number }).time;
  // /set stores the time in seconds: step into the next second so that each /set changes it.
  const nextSecond = () => sleep(1_050 - (Date.now() % 1_000));
  await nextSecond();
  const held = gate.holdNext('update');
  const first = send('/set');
  await held.reached;
  await nextSecond();
  t.is((await send('/set')).status, 200);
  const secondTime = await storedTime();
  held.release();
  t.deepEqual((await first).setCookies, [], 'no cookie: the id did not change');
  const finalTime = await storedTime();
  t.true(
    finalTime < secondTime,
    `last write wins: the held /set, written last, replaced the later time (${finalTime} < ${secondTime})`,
  );
  t.is((await send('/get')).status, 200);
});

test('without a cookie, /del sends no Set-Cookie at all', async (t) => {
  const app = await appForTest(t);
  const del = await new Browser(app.url).request('/del');
  t.is(del.body, 'ok');
  t.deepEqual(del.setCookies, []);
});

/**
 * Logout is final, with every store, when requests overlap. Each bad interleaving is made to happen on
 * purpose: a store wrapper (GatedStore) holds one request between its read and its write while another
 * request logs out or regenerates, then lets it go. Checked through the cookie and through the store.
 * The stores: memory, SQLite where node:sqlite exists (Node 22.13 and later; not listed on Node 20), and Redis on every deployment (the one at REDIS_URL, a Cluster and Sentinels of
 * this file's own); one more store is one more entry in STORES.
 */

import { once } from 'node:events';
import { connect } from 'node:net';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { appForTest, type RunningApp } from './helpers/app.ts';
import { Browser, cookieValue, sessionIdOf } from './helpers/browser.ts';
import { GatedStore } from './helpers/gated-store.ts';
import { PATIENT_REDIS, uniquePrefix } from './helpers/redis.ts';
import { redisDeployments } from './helpers/redis-topologies.ts';
import { hasNodeSqlite, sqliteTempFolder } from './helpers/sqlite.ts';
import { storeKeyOf } from './helpers/store-key.ts';

const test = anyTest as TestFn;

interface Setup {
  readonly app: RunningApp;
  readonly gate: GatedStore;
  /** How many sessions the store holds right now. */
  sessionCount(): Promise<number>;
}

type Scenario = (t: ExecutionContext, setup: Setup) => Promise<void>;

interface StoreUnderTest {
  name: string;
  test: TestFn;
  /** The app's settings for this store. */
  env(): Promise<Record<string, string>>;
  count(app: RunningApp, env: Record<string, string>): Promise<number>;
  /** Deletes what the test left in the store, if it outlives the app. */
  cleanUp?(env: Record<string, string>): Promise<void>;
}

const STORES: StoreUnderTest[] = [
  {
    name: 'memory',
    test,
    env: async () => ({}),
    count: async (app) => (await app.store.health()).sessions as number,
  },
  // Listed only where node:sqlite exists (Node 22.13 and later): see test/helpers/sqlite.ts.
  ...(hasNodeSqlite ? [sqliteUnderTest()] : []),
  ...redisDeployments(test).map((deployment) => ({
    name: deployment.name,
    test: deployment.test,
    env: async () => ({
      SESSION_STORE: 'redis',
      ...(await deployment.settings()),
      REDIS_KEY_PREFIX: uniquePrefix(),
      ...PATIENT_REDIS,
    }),
    count: async (_app: RunningApp, env: Record<string, string>) =>
      (await deployment.keysWithPrefix(env.REDIS_KEY_PREFIX)).length,
    cleanUp: (env: Record<string, string>) => deployment.deleteKeysWithPrefix(env.REDIS_KEY_PREFIX),
  })),
];

/** The SQLite store on a file in a folder of the test's own, removed when the test ends. */
function sqliteUnderTest(): StoreUnderTest {
  const folders = new Map<string, () => void>();
  return {
    name: 'sqlite',
    test,
    async env() {
      const { folder, cleanUp } = sqliteTempFolder();
      const file = `${folder}/sessions.db`;
      folders.set(file, cleanUp);
      return { SESSION_STORE: 'sqlite', SESSION_SQLITE_FILE: file };
    },
    count: async (app) => (await app.store.health()).sessions as number,
    async cleanUp(env) {
      folders.get(env.SESSION_SQLITE_FILE)?.();
      folders.delete(env.SESSION_SQLITE_FILE);
    },
  };
}

function scenario(title: string, body: Scenario): void {
  for (const store of STORES) {
    store.test(`${store.name} store: ${title}`, async (t) => {
      const env = await store.env();
      if (store.cleanUp) t.teardown(() => store.cleanUp?.(env));
      let gate!: GatedStore;
      const app = await appForTest(t, env, { wrapStore: (inner) => (gate = new GatedStore(inner)) });
      await body(t, { app, gate, sessionCount: () => store.count(app, env) });
    });
  }
}

/** A session holding { value: 'established' }. */
async function establish(url: string): Promise<{ browser: Browser; cookie: string; id: string }> {
  const browser = new Browser(url);
  await browser.request('/write?value=established');
  const cookie = browser.cookies.get('sid')!;
  return { browser, cookie, id: sessionIdOf(cookie)! };
}

/** A client that sends this exact cookie and keeps nothing. */
function withCookie(url: string, cookie: string) {
  return (path: string, init: RequestInit = {}) =>
    new Browser(url).request(path, { ...init, headers: { cookie: `sid=${cookie}` } });
}

scenario(
  'an end while a write-back with the same cookie is between its read and its write: the session stays dead',
  async (t, { app, gate, sessionCount }) => {
    const { cookie, id } = await establish(app.url);
    const send = withCookie(app.url, cookie);
    const held = gate.holdNext('update');
    const save = send('/save');
    await held.reached; // /save has read the session and is about to write it back
    const end = await send('/end');
    t.is(end.body, 'ok');
    held.release();
    const saveAnswer = await save;
    t.is(saveAnswer.status, 200);
    t.deepEqual(saveAnswer.setCookies, [], 'the late write sends no cookie (neither the old id nor a clearing one)');

    t.is(await app.store.get(storeKeyOf(app, id), 60_000), undefined, 'the store has no entry for the old id');
    t.is((await send('/read')).body, '{}', 'the old cookie opens nothing');
    t.is(await sessionCount(), 0, 'nothing was recreated');
  },
);

scenario(
  'regenerate() while a write-back on the old id is between its read and its write: the old id stays dead',
  async (t, { app, gate, sessionCount }) => {
    const { cookie, id } = await establish(app.url);
    const send = withCookie(app.url, cookie);
    const held = gate.holdNext('update');
    const save = send('/save');
    await held.reached;
    const regenerated = await send('/regenerate', { method: 'POST' });
    t.is(regenerated.body, 'regenerated');
    const newCookie = cookieValue(regenerated.setCookies, 'sid')!;
    t.not(sessionIdOf(newCookie), id, 'a new id');
    held.release();
    t.deepEqual((await save).setCookies, []);

    t.is(await app.store.get(storeKeyOf(app, id), 60_000), undefined, 'the old id is not in the store');
    t.is((await send('/read')).body, '{}', 'the old cookie opens nothing');
    t.deepEqual(
      JSON.parse((await withCookie(app.url, newCookie)('/read')).body),
      { value: 'established' },
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
    // Both read the session, then both are held just before destroying the old id.
    const first = gate.holdNext('destroy');
    const second = gate.holdNext('destroy');
    const regenerateA = send('/regenerate', { method: 'POST' });
    await first.reached;
    const regenerateB = send('/regenerate', { method: 'POST' });
    await second.reached;
    first.release();
    const a = await regenerateA;
    second.release();
    const b = await regenerateB;

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
    t.is((await send('/read')).body, '{}');
    t.is(await sessionCount(), 1, 'one session, not two copies');
    t.deepEqual(JSON.parse((await withCookie(app.url, newCookieA!)('/read')).body), { value: 'established' });
  },
);

scenario(
  'an end while a regenerate() has read the session: the logout wins, no new session appears',
  async (t, { app, gate, sessionCount }) => {
    const { cookie, id } = await establish(app.url);
    const send = withCookie(app.url, cookie);
    const held = gate.holdNext('destroy');
    const regenerated = send('/regenerate', { method: 'POST' });
    await held.reached;
    t.is((await send('/end')).body, 'ok');
    held.release();
    t.deepEqual((await regenerated).setCookies, [], 'no new cookie');
    t.is(await app.store.get(storeKeyOf(app, id), 60_000), undefined);
    t.is(await sessionCount(), 0, 'the logout is final');
  },
);

scenario(
  'a write pipelined right behind an end on one connection never revives the old id',
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
      socket.write(request('/end') + request('/write?value=late', true)); // one write: both requests on the wire at once
      await once(socket, 'close');
      t.is(answer.match(/HTTP\/1\.1 200 OK/g)?.length, 2, `both answered: ${answer}`);
      t.is(
        await app.store.get(storeKeyOf(app, id), 60_000),
        undefined,
        `round ${round}: the old id is not in the store`,
      );
      t.is((await withCookie(app.url, cookie)('/read')).body, '{}', `round ${round}: the old cookie opens nothing`);
    }
    // Each write after its end made at most one fresh session of its own; none under an old id.
    t.true((await sessionCount()) <= 10);
  },
);

scenario(
  'a late or retried request with a destroyed cookie starts a fresh session under a new id',
  async (t, { app }) => {
    const { cookie, id } = await establish(app.url);
    const send = withCookie(app.url, cookie);
    t.is((await send('/end')).body, 'ok');
    for (let i = 0; i < 3; i++) {
      const retried = await send('/write');
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
  const storedValue = async () =>
    (JSON.parse((await app.store.get(storeKeyOf(app, id), 60_000))!) as { value: string }).value;
  const held = gate.holdNext('update');
  const first = send('/write?value=first');
  await held.reached;
  t.is((await send('/write?value=second')).status, 200);
  t.is(await storedValue(), 'second', 'the later write, not held, is stored first');
  held.release();
  t.deepEqual((await first).setCookies, [], 'no cookie: the id did not change');
  t.is(await storedValue(), 'first', 'last write wins: the held write, written last, replaced the later value');
  t.deepEqual(JSON.parse((await send('/read')).body), { value: 'first' }, 'and the session stays alive');
});

test('without a cookie, an end sends no Set-Cookie at all', async (t) => {
  const app = await appForTest(t);
  const end = await new Browser(app.url).request('/end');
  t.is(end.body, 'ok');
  t.deepEqual(end.setCookies, []);
});

/**
 * Stored data is input. A value under a session key that this app would not have written (not JSON,
 * not an object, keys that would break koa-session's Session object, a Redis key of another type) reads
 * as no session, is deleted, and is logged once at warn without the id: never a 500 or 503.
 */
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { nanoid } from 'nanoid';
import { CookieSigner } from '../app/session/signed-cookie.ts';
import { appForTest, type RunningApp, TEST_KEY } from './helpers/app.ts';
import { Browser } from './helpers/browser.ts';
import { deleteKeysWithPrefix, inspector, PATIENT_REDIS, REDIS_URL, redisTest, uniquePrefix } from './helpers/redis.ts';
import { storeKeyOf } from './helpers/store-key.ts';

const test = anyTest as TestFn;
const signer = new CookieSigner('sid', [TEST_KEY]);

const INVALID_VALUES: Record<string, string> = {
  'not JSON': '{"value":',
  'a JSON array': '[1,2]',
  'a JSON string': '"text"',
  'a JSON number': '42',
  'JSON null': 'null',
  'a __proto__ key': '{"__proto__":{"polluted":true},"value":"x"}',
  'a toJSON key': '{"toJSON":1}',
  'a constructor key': '{"constructor":{"name":"x"}}',
  'a nested __proto__ key': '{"profile":{"__proto__":{"admin":true}}}',
  'a nested __proto__ key spelled with an escape': '{"profile":{"\\u005f_proto__":{"admin":true}}}',
  'a constructor key deep inside, past any recursion limit': `{"a":${'['.repeat(20_000)}{"constructor":1}${']'.repeat(20_000)}}`,
  'an unknown internal key': '{"_secret":1}',
  "koa-session's _maxAge, which this app never stores": '{"value":"x","_maxAge":1e308}',
  "koa-session's _expire, which this app never stores": '{"value":"x","_expire":1}',
  'nesting deeper than 32 levels': `{"value":"x","a":${'['.repeat(33)}${']'.repeat(33)}}`,
  'nesting 6,000 levels deep (overflows a recursive JSON.stringify)': `{"value":"x","a":${'['.repeat(6_000)}${']'.repeat(6_000)}}`,
  'an internal key of the wrong type': '{"_session":"yes"}',
  'an empty text': '',
};

const STORES = [
  { name: 'memory', test, env: (): Record<string, string> => ({}) },
  {
    name: 'redis',
    test: redisTest(test),
    env: (): Record<string, string> => ({
      SESSION_STORE: 'redis',
      REDIS_URL: REDIS_URL ?? '',
      REDIS_KEY_PREFIX: uniquePrefix(),
      ...PATIENT_REDIS,
    }),
  },
];

async function appFor(t: ExecutionContext, env: Record<string, string>): Promise<RunningApp> {
  if (env.REDIS_KEY_PREFIX) t.teardown(() => deleteKeysWithPrefix(env.REDIS_KEY_PREFIX));
  return appForTest(t, env);
}

/** Sends a read, an end and a write with a valid signed cookie for `id` and checks the answers and the store. */
async function expectDiscarded(t: ExecutionContext, app: RunningApp, id: string): Promise<void> {
  const cookie = `sid=${signer.encode(id, Date.now())}`;
  const browser = new Browser(app.url);
  const read = await browser.request('/read', { headers: { cookie } });
  t.is(read.status, 200);
  t.is(read.body, '{}', 'reads as no session');
  t.is(await app.store.get(storeKeyOf(app, id), 60_000), undefined, 'and is deleted from the store');
  const warnings = app.logs.filter((line) => line.level === 'warn');
  t.is(warnings.length, 1, 'logged once');
  t.regex(String(warnings[0].msg), /not valid session data/);
  t.false(app.logText().includes(id), 'the log never shows the session id');

  t.is((await browser.request('/end', { headers: { cookie } })).status, 200, 'an end is fine too');
  const write = await browser.request('/write', { headers: { cookie } });
  t.is(write.status, 200);
  t.not(write.setCookies.length, 0, 'a write starts a fresh session under a new id');
  t.false(write.setCookies[0].includes(id));
}

for (const store of STORES) {
  for (const [kind, text] of Object.entries(INVALID_VALUES)) {
    store.test(
      `${store.name} store: a stored value (${kind}) reads as no session, is deleted and logged once`,
      async (t) => {
        const app = await appFor(t, store.env());
        const id = nanoid();
        t.true(await app.store.create(storeKeyOf(app, id), text, 60_000));
        await expectDiscarded(t, app, id);
      },
    );
  }
}

redisTest(test)(
  'redis store: a session key holding another Redis type reads as no session, is deleted and logged once',
  async (t) => {
    const env = STORES[1].env();
    const app = await appFor(t, env);
    const id = nanoid();
    const client = await inspector();
    t.teardown(() => client.close());
    await client.rPush(`${env.REDIS_KEY_PREFIX}${storeKeyOf(app, id)}`, ['a', 'b']);
    await expectDiscarded(t, app, id);
    t.is(await client.exists(`${env.REDIS_KEY_PREFIX}${storeKeyOf(app, id)}`), 0, 'the list is gone');
  },
);

test('a handler that stores a reserved field name fails loudly at write instead of losing the session later', async (t) => {
  const app = await appForTest(
    t,
    {},
    {
      routes: (router, session) => {
        router.all('/bad', session.change, (ctx) => {
          Reflect.set(ctx.session, 'constructor', 'x');
          ctx.body = 'ok';
        });
      },
    },
  );
  const answer = await new Browser(app.url).request('/bad');
  t.is(answer.status, 500);
  t.deepEqual(answer.setCookies, []);
  t.is((await app.store.health()).sessions, 0);
});

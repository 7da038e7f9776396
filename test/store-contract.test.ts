/**
 * One contract, every store: the memory store always, the Redis store whenever REDIS_URL is set.
 * Real time here (Redis keeps its own clock), with short lifetimes and wide margins.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { MemoryStore } from '../app/stores/memory.ts';
import type { SessionStore } from '../app/stores/store.ts';
import { openTestRedisStore, redisTest } from './helpers/redis.ts';

const test = anyTest as TestFn;
const DEFAULT_MAX_AGE_MS = 600;

interface StoreUnderTest {
  readonly name: string;
  readonly test: TestFn;
  open(): Promise<{ store: SessionStore; cleanUp(): Promise<void> }>;
}

const STORES: StoreUnderTest[] = [
  {
    name: 'memory',
    test,
    async open() {
      const store = new MemoryStore({ defaultMaxAgeMs: DEFAULT_MAX_AGE_MS, maxEntries: 1_000 });
      return { store, cleanUp: () => store.close() };
    },
  },
  {
    name: 'redis',
    test: redisTest(test),
    async open() {
      const { store, close } = await openTestRedisStore(DEFAULT_MAX_AGE_MS);
      return { store, cleanUp: close };
    },
  },
];

for (const { name, test: storeTest, open } of STORES) {
  const contract = (title: string, body: (t: ExecutionContext, store: SessionStore) => Promise<void>) =>
    storeTest(`${name} store: ${title}`, async (t) => {
      const { store, cleanUp } = await open();
      t.teardown(cleanUp);
      await body(t, store);
    });

  contract('an unknown id is undefined, including object-property names', async (t, store) => {
    for (const id of ['never-set', '__proto__', 'constructor', 'toString']) t.is(await store.get(id, 'session'), undefined, id);
  });

  contract('set then get returns an equal copy of JSON values', async (t, store) => {
    const session = { time: 1_795_712_607, nested: { list: [1, 'two', null, true] }, _session: true };
    await store.set('a', session, 'session');
    const read = await store.get('a', 'session');
    t.deepEqual(read, session);
    t.not(read, session, 'not the object that was saved');
    (read!.nested as { list: unknown[] }).list.push('changed');
    t.deepEqual(await store.get('a', 'session'), session, 'changing a read copy changes nothing stored');
  });

  contract('set replaces; destroy removes; destroying an unknown id is fine', async (t, store) => {
    await store.set('a', { n: 1 }, 'session');
    await store.set('a', { n: 2 }, 'session');
    t.deepEqual(await store.get('a', 'session'), { n: 2 });
    await store.destroy('a');
    await store.destroy('a');
    t.is(await store.get('a', 'session'), undefined);
  });

  contract("an idle session expires after the default lifetime, for maxAge undefined and 'session'", async (t, store) => {
    await store.set('undefined', { n: 1 }, undefined);
    await store.set('session', { n: 1 }, 'session');
    await sleep(DEFAULT_MAX_AGE_MS * 2.5);
    t.is(await store.get('undefined', undefined), undefined);
    t.is(await store.get('session', 'session'), undefined);
  });

  contract('a numeric maxAge is that call\'s idle lifetime', async (t, store) => {
    await store.set('long', { n: 1 }, 20_000);
    await sleep(DEFAULT_MAX_AGE_MS * 2.5);
    t.deepEqual(await store.get('long', 20_000), { n: 1 });
  });

  contract('sliding expiry: reads renew the lifetime', async (t, store) => {
    await store.set('a', { n: 1 }, 'session');
    for (let i = 0; i < 6; i++) {
      await sleep(DEFAULT_MAX_AGE_MS / 3);
      t.deepEqual(await store.get('a', 'session'), { n: 1 }, `read ${i + 1}`);
    }
    await sleep(DEFAULT_MAX_AGE_MS * 2.5);
    t.is(await store.get('a', 'session'), undefined);
  });

  contract('health reports ok', async (t, store) => {
    t.true((await store.health()).ok);
  });
}

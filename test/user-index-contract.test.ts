/**
 * The users' index of the store contract (UserSessionIndex in app/stores/store.ts), every store: the
 * memory store always, the SQLite store where node:sqlite exists (Node 22.13 and later; not listed on
 * Node 20), the Redis store whenever REDIS_URL answers. Called directly, without the session
 * layer: the epoch and the list each refuse on their own, the bound, pruning, and (Redis) one hash slot
 * and TTLs for every key of a user.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { MemoryStore } from '../app/stores/memory.ts';
import { SqliteStore } from '../app/stores/sqlite.ts';
import { type SessionStore, StoreUnavailableError } from '../app/stores/store.ts';
import { inspector, keysWithPrefix, openTestRedisStore, ownRedisServer, redisTest } from './helpers/redis.ts';
import { hasNodeSqlite, openTestSqliteStore } from './helpers/sqlite.ts';

const test = anyTest as TestFn;
const LONG = 60_000;
const entry = (handle: string, storeKey = `key-of-${handle}`, label = 'a laptop') => ({ handle, storeKey, label });
const H = (n: number) => `handle-${String(n).padStart(15, '0')}`; // 22 characters, as the session layer makes them

interface Opened {
  readonly store: SessionStore;
  /** Every key (Redis) under the store's prefix, the prefix cut off; undefined for the other stores. */
  readonly keys: () => Promise<string[] | undefined>;
  /** The Redis store's key prefix ('' for the other stores). */
  readonly prefix: string;
  readonly cleanUp: () => Promise<void>;
}

const STORES: Array<{ name: string; test: TestFn; open(): Promise<Opened> }> = [
  {
    name: 'memory',
    test,
    async open() {
      const store = new MemoryStore({ maxEntries: 1_000 });
      return { store, keys: async () => undefined, prefix: '', cleanUp: () => store.close() };
    },
  },
  // Listed only where node:sqlite exists (Node 22.13 and later): see test/helpers/sqlite.ts.
  ...(hasNodeSqlite
    ? [
        {
          name: 'sqlite',
          test,
          async open() {
            const { store, cleanUp } = await openTestSqliteStore();
            return { store, keys: async () => undefined, prefix: '', cleanUp };
          },
        },
      ]
    : []),
  {
    name: 'redis',
    test: redisTest(test),
    async open() {
      const { store, keyPrefix, close } = await openTestRedisStore();
      const keys = async () => {
        const client = await inspector();
        try {
          return (await keysWithPrefix(client, keyPrefix)).map((key) => key.slice(keyPrefix.length)).sort();
        } finally {
          await client.close();
        }
      };
      return { store, keys, prefix: keyPrefix, cleanUp: close };
    },
  },
];

for (const { name, test: storeTest, open } of STORES) {
  const contract = (title: string, body: (t: ExecutionContext, opened: Opened) => Promise<void>) =>
    storeTest(`${name} store: ${title}`, async (t) => {
      const opened = await open();
      t.teardown(opened.cleanUp);
      await body(t, opened);
    });

  contract(
    'add answers the epoch, 0 for a new user; touch holds while epoch and entry both do',
    async (t, { store }) => {
      const { users } = store;
      t.deepEqual(await users.add('u:alice', entry(H(1)), LONG, 10), { epoch: 0, dropped: [] });
      t.true(await users.touch('u:alice', H(1), 0, LONG));
      t.false(await users.touch('u:alice', H(1), 1, LONG), 'another epoch');
      t.false(await users.touch('u:alice', H(2), 0, LONG), 'a handle not listed');
      t.false(await users.touch('u:bob', H(1), 0, LONG), "another user's list");
      t.deepEqual(await users.list('u:bob'), []);
    },
  );

  contract(
    'endAll bumps the epoch and empties the list in one step, answering the store keys',
    async (t, { store }) => {
      const { users } = store;
      await users.add('u:alice', entry(H(1)), LONG, 10);
      await users.add('u:alice', entry(H(2)), LONG, 10);
      await users.add('u:bob', entry(H(3)), LONG, 10);
      t.deepEqual((await users.endAll('u:alice', LONG)).sort(), [
        'key-of-handle-000000000000001',
        'key-of-handle-000000000000002',
      ]);
      t.deepEqual(await users.list('u:alice'), []);
      t.false(await users.touch('u:alice', H(1), 0, LONG));
      t.is((await users.list('u:bob')).length, 1, 'other users untouched');
      // A sign-in after it gets the new epoch; the old epoch alone refuses even a listed handle.
      t.deepEqual(await users.add('u:alice', entry(H(4)), LONG, 10), { epoch: 1, dropped: [] });
      t.true(await users.touch('u:alice', H(4), 1, LONG));
      t.false(await users.touch('u:alice', H(4), 0, LONG), 'listed, but under an epoch that was signed out');
      t.deepEqual(await users.endAll('u:alice', LONG), ['key-of-handle-000000000000004']);
      t.is((await users.add('u:alice', entry(H(5)), LONG, 10)).epoch, 2);
      t.deepEqual(await users.endAll('u:nobody', LONG), [], 'a user with nothing listed');
      t.is((await users.add('u:nobody', entry(H(6)), LONG, 10)).epoch, 1, 'still bumped');
    },
  );

  contract(
    'list: live entries, least recently used first, with times; remove answers the store key once',
    async (t, { store }) => {
      const { users } = store;
      const before = Date.now();
      await users.add('u:alice', entry(H(1), 'k1', 'Firefox on Linux'), LONG, 10);
      await sleep(5);
      await users.add('u:alice', entry(H(2), 'k2', 'Safari on iOS'), LONG, 10);
      await sleep(5);
      t.true(await users.touch('u:alice', H(1), 0, LONG));
      const listed = await users.list('u:alice');
      t.deepEqual(
        listed.map(({ handle, storeKey, label }) => ({ handle, storeKey, label })),
        [
          { handle: H(2), storeKey: 'k2', label: 'Safari on iOS' },
          { handle: H(1), storeKey: 'k1', label: 'Firefox on Linux' },
        ],
      );
      const [second, first] = listed;
      t.true(first.createdAt >= before && first.createdAt < second.createdAt);
      t.true(first.lastUsedAt > first.createdAt, 'the touch moved the last use');
      t.is(first.expiresAt, first.lastUsedAt + LONG);
      t.is(await users.remove('u:alice', H(2)), 'k2');
      t.is(await users.remove('u:alice', H(2)), undefined);
      t.is(await users.remove('u:bob', H(1)), undefined, "another user's handle");
      t.deepEqual(
        (await users.list('u:alice')).map((listedEntry) => listedEntry.handle),
        [H(1)],
      );
    },
  );

  contract(
    'touch with a store key moves the entry to it (what a destroy from elsewhere then hits)',
    async (t, { store }) => {
      const { users } = store;
      await users.add('u:alice', entry(H(1), 'old-key'), LONG, 10);
      t.true(await users.touch('u:alice', H(1), 0, LONG, 'new-key'));
      t.deepEqual(
        (await users.list('u:alice')).map((listed) => listed.storeKey),
        ['new-key'],
      );
      t.deepEqual(await users.endAll('u:alice', LONG), ['new-key']);
      t.false(await users.touch('u:alice', H(1), 0, LONG, 'newer-key'), 'nothing written once unlisted');
    },
  );

  contract(
    'the bound: past maxEntries the least recently used entries go, their store keys answered',
    async (t, { store }) => {
      const { users } = store;
      for (let i = 1; i <= 3; i++) {
        t.deepEqual((await users.add('u:alice', entry(H(i), `k${i}`), LONG, 3)).dropped, []);
        await sleep(3);
      }
      t.true(await users.touch('u:alice', H(1), 0, LONG)); // k2 is the least recently used now
      t.deepEqual((await users.add('u:alice', entry(H(4), 'k4'), LONG, 3)).dropped, ['k2']);
      t.false(await users.touch('u:alice', H(2), 0, LONG), 'a dropped entry refuses its session');
      t.deepEqual(
        [...(await users.add('u:alice', entry(H(5), 'k5'), LONG, 2)).dropped].sort(),
        ['k1', 'k3'],
        'a lower bound',
      );
      t.is((await users.list('u:alice')).length, 2);
    },
  );

  contract('expired entries are never listed nor touched, and go as calls meet them', async (t, { store }) => {
    const { users } = store;
    await users.add('u:alice', entry(H(1), 'short'), 300, 10);
    await users.add('u:alice', entry(H(2), 'long'), LONG, 10);
    await sleep(450);
    t.deepEqual(
      (await users.list('u:alice')).map((listed) => listed.storeKey),
      ['long'],
    );
    t.false(await users.touch('u:alice', H(1), 0, LONG), 'pruned: refused');
    t.deepEqual(await users.endAll('u:alice', LONG), ['long']);
  });

  contract(
    'a user with no entry left keeps nothing, but an epoch bumped by endAll for its keep time',
    async (t, { store, keys }) => {
      const { users } = store;
      await users.add('u:alice', entry(H(1)), 300, 10);
      await users.add('u:bob', entry(H(2)), LONG, 10);
      await users.endAll('u:bob', 400);
      await sleep(700);
      if (store instanceof MemoryStore) {
        store.users.sweep();
        t.deepEqual(store.users.counts, { users: 0, entries: 0 });
      } else if (store instanceof SqliteStore) {
        await store.sweep();
        t.deepEqual(store.users.counts, { users: 0, entries: 0 });
      } else {
        let left = await keys();
        for (let attempt = 0; attempt < 40 && left!.length > 0; attempt++) {
          await sleep(100); // Redis's active expiry samples keys about ten times a second
          left = await keys();
        }
        t.deepEqual(left, [], 'every key of both users expired in Redis');
      }
    },
  );

  if (name === 'redis') {
    contract(
      'every key of a user shares one hash tag (one slot on Redis Cluster), each with a TTL',
      async (t, { store, keys, prefix }) => {
        await store.users.add('u:alice', entry(H(1)), LONG, 10);
        await store.users.endAll('u:alice', LONG);
        await store.users.add('u:alice', entry(H(2)), LONG, 10);
        const all = (await keys())!;
        t.deepEqual(all, ['{u:alice}:epoch', '{u:alice}:expires', '{u:alice}:sessions', '{u:alice}:used']);
        const client = await inspector();
        t.teardown(() => client.close());
        for (const key of all) {
          const ttl = await client.pTTL(prefix + key);
          t.true(ttl > 0 && ttl <= LONG, `${key}: TTL ${ttl}`);
        }
      },
    );
  }
}

redisTest(test)(
  'redis store: with Redis paused, every users call fails with StoreUnavailableError at its deadline',
  async (t) => {
    const server = await ownRedisServer(t);
    const deadline = 500;
    const calls: Array<[string, (store: SessionStore) => Promise<unknown>]> = [
      ['add', (store) => store.users.add('u:alice', entry(H(9)), LONG, 10)],
      ['touch', (store) => store.users.touch('u:alice', H(1), 0, LONG)],
      ['list', (store) => store.users.list('u:alice')],
      ['remove', (store) => store.users.remove('u:alice', H(1))],
      ['endAll', (store) => store.users.endAll('u:alice', LONG)],
    ];
    for (const [name, call] of calls) {
      // A fresh store each time, so that each call meets a stalled connection, not a recycled one.
      const { store, close } = await openTestRedisStore({ url: server.url, commandTimeoutMs: deadline });
      await store.users.add('u:alice', entry(H(1)), LONG, 10);
      server.pause();
      const started = performance.now();
      await t.throwsAsync(call(store), { instanceOf: StoreUnavailableError }, name);
      const elapsed = performance.now() - started;
      t.true(elapsed >= deadline - 50, `${name} waited for its deadline (${Math.round(elapsed)} ms)`);
      server.resume();
      await close();
    }
  },
);

redisTest(test)(
  'redis store: a Redis that lost its scripts (SCRIPT FLUSH, a restart) gets them again in the same call',
  async (t) => {
    const { store, close } = await openTestRedisStore();
    t.teardown(close);
    await store.users.add('u:alice', entry(H(1)), LONG, 10);
    const client = await inspector();
    t.teardown(() => client.close());
    await client.scriptFlush();
    t.true(await store.users.touch('u:alice', H(1), 0, LONG));
    t.is((await store.users.list('u:alice')).length, 1);
  },
);

/**
 * One contract (app/stores/store.ts), every store: the memory store always; the SQLite store where
 * node:sqlite exists (Node 22.13 and later; not listed on Node 20); the Redis store whenever
 * REDIS_URL is set, and on a Redis Cluster and on Sentinels of this file's own whenever redis-server is
 * there (test/helpers/redis-topologies.ts). One suite (storeContract) over a list of stores: a store of
 * your own is one more entry in STORES. Real time here (Redis keeps its own clock), with short
 * lifetimes: every wait stays at least 0.2 TTL away from an expiry edge. A check that an id is gone only
 * ever comes later than planned on a loaded machine, which keeps it true; a check that an id is still
 * alive can come too late (a stall of a second or more, seen beside a second `npm test`), so those cases
 * time themselves and run again when a stall made the check inconclusive (test/helpers/timing.ts): each
 * answer is timed before it is asserted, since a failed assertion ends the attempt.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { MemoryStore } from '../app/stores/memory.ts';
import type { SessionStore } from '../app/stores/store.ts';
import { openStoreOn, redisDeployments } from './helpers/redis-topologies.ts';
import { hasNodeSqlite, openTestSqliteStore } from './helpers/sqlite.ts';
import { type LifetimeWatch, untilConclusive } from './helpers/timing.ts';

const test = anyTest as TestFn;
/** The short idle lifetime most cases use: long enough that a loaded machine (four stores run at once) answers within it. */
const TTL = 1_500;
/** A lifetime no case outlives. */
const LONG = 60_000;

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
      const store = new MemoryStore({ maxEntries: 1_000 });
      return { store, cleanUp: () => store.close() };
    },
  },
  // Listed only where node:sqlite exists (Node 22.13 and later): see test/helpers/sqlite.ts.
  ...(hasNodeSqlite ? [{ name: 'sqlite', test, open: () => openTestSqliteStore() }] : []),
  ...redisDeployments(test).map((deployment) => ({
    name: deployment.name,
    test: deployment.test,
    async open() {
      const { store, close } = await openStoreOn(deployment);
      return { store, cleanUp: close };
    },
  })),
];

for (const store of STORES) storeContract(store);

/** The contract's cases, for one store. */
function storeContract({ name, test: storeTest, open }: StoreUnderTest): void {
  const contract = (title: string, body: (t: ExecutionContext, store: SessionStore) => Promise<void>) =>
    storeTest(`${name} store: ${title}`, async (t) => {
      const { store, cleanUp } = await open();
      t.teardown(cleanUp);
      await body(t, store);
    });

  /**
   * A case with an "it is still alive" check (see test/helpers/timing.ts): each attempt on a fresh
   * store; one that a stall made inconclusive runs again, up to 5 attempts (the four stores' cases run at
   * once in this file, so stalls are more likely than alone).
   */
  const timedContract = (
    title: string,
    body: (t: ExecutionContext, store: SessionStore, watch: LifetimeWatch) => Promise<void>,
  ) =>
    storeTest(`${name} store: ${title}`, (t) =>
      untilConclusive(
        t,
        async (tt, watch) => {
          const { store, cleanUp } = await open();
          try {
            await body(tt, store, watch);
          } finally {
            await cleanUp();
          }
        },
        5,
      ),
    );

  contract('an unknown id is undefined, including object-property names', async (t, store) => {
    for (const id of ['never-set', '__proto__', 'constructor', 'toString', 'hasOwnProperty'])
      t.is(await store.get(id, TTL), undefined, id);
  });

  contract('create then get returns the same text, whatever it holds', async (t, store) => {
    const texts = {
      json: '{"time":1795712607,"nested":{"list":[1,"two",null,true]},"_session":true}',
      notJson: 'not json {',
      unicode: 'é 😀 \u2028 "quoted" \\ \u0000',
      long: 'x'.repeat(64 * 1024),
    };
    for (const [id, text] of Object.entries(texts)) t.true(await store.create(id, text, LONG), id);
    for (const [id, text] of Object.entries(texts)) t.is(await store.get(id, LONG), text, id);
    t.true(await store.create('__proto__', 'proto', LONG), 'object-property names are ordinary ids');
    t.is(await store.get('__proto__', LONG), 'proto');
    t.is(await store.get('constructor', LONG), undefined);
  });

  timedContract(
    'create on an existing id is false and changes nothing, not even the lifetime',
    async (t, store, watch) => {
      watch.start();
      t.true(await store.create('a', 'first', TTL));
      await sleep(TTL * 0.6);
      const second = await store.create('a', 'second', LONG);
      watch.checked(TTL, 'the second create');
      t.false(second);
      await sleep(TTL * 0.6); // 1.2 TTL since the create, no read in between: the failed create renewed nothing
      t.is(await store.get('a', TTL), undefined);
    },
  );

  contract('create on an existing id leaves the text as it was', async (t, store) => {
    t.true(await store.create('a', 'first', LONG));
    t.false(await store.create('a', 'second', LONG));
    t.is(await store.get('a', LONG), 'first');
  });

  contract('of concurrent creates of one id, exactly one succeeds, and its text is stored', async (t, store) => {
    const results = await Promise.all(['t0', 't1', 't2', 't3', 't4'].map((text) => store.create('race', text, LONG)));
    t.is(results.filter(Boolean).length, 1);
    t.is(await store.get('race', LONG), `t${results.indexOf(true)}`);
  });

  contract('an expired id counts as unused: create succeeds again', async (t, store) => {
    t.true(await store.create('a', 'old', TTL));
    await sleep(TTL * 2);
    t.true(await store.create('a', 'new', LONG));
    t.is(await store.get('a', LONG), 'new');
  });

  timedContract(
    'update replaces the text of an existing id and renews it to its own lifetime',
    async (t, store, watch) => {
      watch.start();
      t.true(await store.create('a', 'v1', TTL));
      await sleep(TTL * 0.6);
      const updated = await store.update('a', 'v2', LONG);
      watch.checked(TTL, 'the update');
      t.true(updated);
      await sleep(TTL * 1.5); // past the first lifetime: the update's own lifetime holds
      t.is(await store.get('a', LONG), 'v2');
    },
  );

  contract('update of an unknown id is false and creates nothing', async (t, store) => {
    t.false(await store.update('never-set', 'text', LONG));
    t.is(await store.get('never-set', LONG), undefined);
    t.false(await store.update('never-set', 'text', LONG), 'still nothing there');
  });

  contract('update of a destroyed id is false and brings nothing back', async (t, store) => {
    t.true(await store.create('a', 'v1', LONG));
    t.true(await store.destroy('a'));
    t.false(await store.update('a', 'v2', LONG));
    t.is(await store.get('a', LONG), undefined);
  });

  contract('update of an expired id is false and brings nothing back', async (t, store) => {
    t.true(await store.create('a', 'v1', TTL));
    await sleep(TTL * 2);
    t.false(await store.update('a', 'v2', LONG));
    t.is(await store.get('a', LONG), undefined);
  });

  contract('destroy is true for an existing id, then false; false for unknown and expired ids', async (t, store) => {
    t.true(await store.create('a', 'v1', LONG));
    t.true(await store.create('short', 'v1', TTL));
    t.true(await store.destroy('a'));
    t.false(await store.destroy('a'), 'the second destroy finds nothing');
    t.is(await store.get('a', LONG), undefined);
    t.false(await store.destroy('never-set'));
    await sleep(TTL * 2);
    t.false(await store.destroy('short'), 'an expired id did not exist a moment before');
  });

  contract('a destroy racing an update leaves the id gone, whichever runs first', async (t, store) => {
    t.true(await store.create('a', 'v1', LONG));
    const [updated, destroyed] = await Promise.all([store.update('a', 'v2', LONG), store.destroy('a')]);
    t.true(destroyed, 'the destroy found the id (the update never removes it)');
    t.is(typeof updated, 'boolean');
    t.is(await store.get('a', LONG), undefined);
    t.false(await store.update('a', 'v3', LONG));
  });

  timedContract('an idle id expires after its lifetime', async (t, store, watch) => {
    watch.start();
    t.true(await store.create('a', 'v1', TTL));
    await sleep(TTL * 0.6);
    const before = await store.get('a', TTL);
    watch.checked(TTL, 'the read');
    t.is(before, 'v1', 'alive before');
    await sleep(TTL * 1.6);
    t.is(await store.get('a', TTL), undefined, 'gone after');
  });

  timedContract('sliding expiry: each read renews the lifetime', async (t, store, watch) => {
    watch.start();
    t.true(await store.create('a', 'v1', TTL));
    for (let i = 0; i < 6; i++) {
      await sleep(TTL / 3);
      const reading = performance.now();
      const read = await store.get('a', TTL); // 2 TTL in all: alive only thanks to the reads
      watch.checked(TTL, `read ${i + 1}`);
      t.is(read, 'v1', `read ${i + 1}`);
      watch.start(reading);
    }
    await sleep(TTL * 1.6);
    t.is(await store.get('a', TTL), undefined);
  });

  timedContract(
    "a read renews to the read's lifetime, shorter or longer than the one before",
    async (t, store, watch) => {
      t.true(await store.create('shortened', 'v', LONG));
      watch.start();
      t.true(await store.create('lengthened', 'v', TTL));
      const shortened = await store.get('shortened', TTL);
      const lengthened = await store.get('lengthened', LONG);
      watch.checked(TTL, 'the read of lengthened');
      t.is(shortened, 'v');
      t.is(lengthened, 'v');
      await sleep(TTL * 1.6);
      t.is(await store.get('shortened', LONG), undefined, 'the read cut the lifetime to TTL');
      t.is(await store.get('lengthened', LONG), 'v', 'the read extended it');
    },
  );

  contract('health reports ok', async (t, store) => {
    t.true((await store.health()).ok);
  });
}

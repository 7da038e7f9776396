/**
 * The store contract (app/stores/store.ts) for the SQLite store, case for case as
 * test/store-contract.test.ts holds the memory and Redis stores to it: `storeContract` takes a store
 * factory, so that the SQLite store can join that shared suite's list. Real time, short lifetimes, and
 * the same care for stalls (test/helpers/timing.ts). A file of its own, away from the heavier SQLite
 * tests (test/sqlite-store.test.ts), which would stall these timed cases if they shared a worker.
 *
 * On a Node without node:sqlite (Node 20) the one test here asserts the refusal instead (its title
 * says so); nothing is skipped.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { SqliteStore } from '../app/stores/sqlite.ts';
import type { SessionStore } from '../app/stores/store.ts';
import { StartupError } from '../config/index.ts';
import { type LifetimeWatch, untilConclusive } from './helpers/timing.ts';

const test = anyTest as TestFn;
const hasNodeSqlite = await import('node:sqlite').then(
  () => true,
  () => false,
);

type OpenStore = () => Promise<{ store: SessionStore; cleanUp(): Promise<void> }>;
/** The short idle lifetime most cases use. */
const TTL = 600;
/** A lifetime no case outlives. */
const LONG = 60_000;

const storeContract = (name: string, open: OpenStore) => {
  const contract = (title: string, body: (t: ExecutionContext, store: SessionStore) => Promise<void>) =>
    test(`${name} store: ${title}`, async (t) => {
      const { store, cleanUp } = await open();
      t.teardown(cleanUp);
      await body(t, store);
    });
  const timedContract = (
    title: string,
    body: (t: ExecutionContext, store: SessionStore, watch: LifetimeWatch) => Promise<void>,
  ) =>
    test(`${name} store: ${title}`, (t) =>
      untilConclusive(t, async (tt, watch) => {
        const { store, cleanUp } = await open();
        try {
          await body(tt, store, watch);
        } finally {
          await cleanUp();
        }
      }));

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
      t.false(await store.create('a', 'second', LONG));
      watch.checked(TTL, 'the second create');
      await sleep(TTL * 0.6);
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
      t.true(await store.update('a', 'v2', LONG));
      watch.checked(TTL, 'the update');
      await sleep(TTL * 1.5);
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
    t.is(await store.get('a', TTL), 'v1', 'alive before');
    watch.checked(TTL, 'the read');
    await sleep(TTL * 1.6);
    t.is(await store.get('a', TTL), undefined, 'gone after');
  });

  timedContract('sliding expiry: each read renews the lifetime', async (t, store, watch) => {
    watch.start();
    t.true(await store.create('a', 'v1', TTL));
    for (let i = 0; i < 6; i++) {
      await sleep(TTL / 3);
      const reading = performance.now();
      t.is(await store.get('a', TTL), 'v1', `read ${i + 1}`);
      watch.checked(TTL, `read ${i + 1}`);
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
      t.is(await store.get('shortened', TTL), 'v');
      t.is(await store.get('lengthened', LONG), 'v');
      watch.checked(TTL, 'the read of lengthened');
      await sleep(TTL * 1.6);
      t.is(await store.get('shortened', LONG), undefined, 'the read cut the lifetime to TTL');
      t.is(await store.get('lengthened', LONG), 'v', 'the read extended it');
    },
  );

  contract('health reports ok', async (t, store) => {
    t.true((await store.health()).ok);
  });
};

if (hasNodeSqlite) {
  storeContract('sqlite', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'sqlite-store-test-'));
    const store = await SqliteStore.open({ file: join(folder, 'sessions.db'), maxEntries: 1_000 });
    return {
      store,
      async cleanUp() {
        await store.close();
        rmSync(folder, { recursive: true, force: true });
      },
    };
  });
} else {
  test(`on ${process.version}, which has no node:sqlite (instead of the contract): the SQLite store refuses to open in one line`, async (t) => {
    const folder = mkdtempSync(join(tmpdir(), 'sqlite-store-test-'));
    t.teardown(() => rmSync(folder, { recursive: true, force: true }));
    const error = await t.throwsAsync(SqliteStore.open({ file: join(folder, 'sessions.db'), maxEntries: 10 }), {
      instanceOf: StartupError,
    });
    t.is(
      error.message,
      `SESSION_STORE=sqlite needs node:sqlite, in Node 22.13 and later; this is Node ${process.version}`,
    );
  });
}

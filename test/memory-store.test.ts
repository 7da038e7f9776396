/** The memory store on its own, with an injected clock: no waiting, exact boundaries. */
import { setTimeout as sleep, setImmediate as tick } from 'node:timers/promises';
import test from 'ava';
import { MemoryStore } from '../app/stores/memory.ts';

function storeWithClock(options: { maxEntries?: number; sweepBatchSize?: number } = {}) {
  const clock = { now: 1_000_000 };
  const store = new MemoryStore({
    defaultMaxAgeMs: 1_000,
    maxEntries: options.maxEntries ?? 100,
    sweepIntervalMs: 3_600_000, // tests call sweep() themselves
    sweepBatchSize: options.sweepBatchSize,
    now: () => clock.now,
  });
  return { store, clock };
}

test('expires exactly at the idle lifetime', async (t) => {
  const { store, clock } = storeWithClock();
  await store.set('a', { n: 1 }, undefined);
  clock.now += 999;
  t.deepEqual(await store.get('a', undefined), { n: 1 }, 'alive 1 ms before');
  clock.now += 999; // the read above renewed it
  t.deepEqual(await store.get('a', undefined), { n: 1 });
  clock.now += 1_000;
  t.is(await store.get('a', undefined), undefined, 'gone at exactly the idle lifetime');
  t.is(store.size, 0, 'and reclaimed on the spot');
  t.like(store.stats, { hits: 2, misses: 1, expired: 1 });
});

test("maxAge undefined or 'session' uses the configured idle lifetime; a number is honoured", async (t) => {
  const { store, clock } = storeWithClock();
  await store.set('undefined', { n: 1 }, undefined);
  await store.set('session', { n: 1 }, 'session');
  await store.set('number', { n: 1 }, 5_000);
  clock.now += 1_000;
  t.is(await store.get('undefined'), undefined);
  t.is(await store.get('session', 'session'), undefined);
  t.deepEqual(await store.get('number', 5_000), { n: 1 });
});

test('values are copies: neither the caller nor another reader shares the stored object', async (t) => {
  const { store } = storeWithClock();
  const original = { list: [1] };
  await store.set('a', original);
  original.list.push(2);
  const first = (await store.get('a')) as { list: number[] };
  t.deepEqual(first, { list: [1] }, 'later changes to the saved object do not reach the store');
  first.list.push(3);
  t.deepEqual(await store.get('a'), { list: [1] }, 'changes to a read copy do not reach the store');
  t.not(await store.get('a'), await store.get('a'));
});

test('ids such as __proto__ and constructor are ordinary unknown ids', async (t) => {
  const { store } = storeWithClock();
  for (const id of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
    t.is(await store.get(id), undefined, id);
  }
  await store.set('__proto__', { n: 1 });
  t.deepEqual(await store.get('__proto__'), { n: 1 });
  t.is(await store.get('constructor'), undefined);
});

test('at most maxEntries sessions; the least recently used is evicted and a read counts as use', async (t) => {
  const { store } = storeWithClock({ maxEntries: 3 });
  await store.set('a', {});
  await store.set('b', {});
  await store.set('c', {});
  await store.get('a');
  await store.set('d', {});
  t.is(store.size, 3);
  t.is(await store.get('b'), undefined, 'b was least recently used');
  await store.set('c', { again: true }); // a write counts as use too
  await store.set('e', {});
  t.is(await store.get('a'), undefined, 'then a');
  t.deepEqual(await store.get('c'), { again: true });
  t.is(store.stats.evicted, 2);
});

test('destroy removes; clear empties; counters count', async (t) => {
  const { store } = storeWithClock();
  await store.set('a', {});
  await store.set('b', {});
  await store.destroy('a');
  await store.destroy('never-there');
  t.is(await store.get('a'), undefined);
  t.is(store.size, 1);
  store.clear();
  t.is(store.size, 0);
  t.like(store.stats, { hits: 0, misses: 1 });
});

test('the sweep reclaims expired entries in bounded steps, yielding between them', async (t) => {
  const { store, clock } = storeWithClock({ maxEntries: 10_000, sweepBatchSize: 100 });
  for (let i = 0; i < 1_000; i++) await store.set(`old${i}`, {});
  clock.now += 500;
  for (let i = 0; i < 10; i++) await store.set(`new${i}`, {});
  clock.now += 600; // the old ones are past 1 s idle, the new ones are not
  store.sweep();
  t.true(store.size > 10 && store.size <= 1_010 - 100, 'one step reclaims at most one batch before yielding');
  for (let i = 0; i < 20 && store.size > 10; i++) await tick();
  t.is(store.size, 10, 'the pass completes over a few event-loop turns');
  t.is(store.stats.expired, 1_000);
  t.deepEqual(await store.get('new0'), {});
});

test('the timer sweeps on its own, and close stops it', async (t) => {
  const clock = { now: 0 };
  const make = () => new MemoryStore({ defaultMaxAgeMs: 1_000, maxEntries: 10, sweepIntervalMs: 20, now: () => clock.now });
  const running = make();
  const closed = make();
  t.teardown(() => running.close());
  await running.set('a', {});
  await closed.set('a', {});
  await closed.close();
  clock.now += 5_000;
  await sleep(200);
  t.is(running.size, 0, 'the running store reclaimed the expired entry by itself');
  t.is(closed.size, 1, 'the closed store no longer sweeps');
});

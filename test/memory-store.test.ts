/**
 * The memory store on its own, with an injected clock: no waiting, exact boundaries. Its eviction
 * policy (a segmented LRU, see app/stores/memory.ts) is checked here case by case, and against an
 * independent model in test/store-model.test.ts.
 */
import { setTimeout as sleep, setImmediate as tick } from 'node:timers/promises';
import test from 'ava';
import { MemoryStore, type MemoryStoreOptions } from '../app/stores/memory.ts';

const TTL = 1_000;
const LONG = 3_600_000;

function storeWithClock(options: Partial<MemoryStoreOptions> = {}) {
  const clock = { now: 1_000_000 };
  const store = new MemoryStore({
    maxEntries: 100,
    sweepIntervalMs: 3_600_000, // tests call sweep() themselves
    now: () => clock.now,
    ...options,
  });
  return { store, clock };
}

/** Creates each id with the long lifetime, expecting success. */
async function createAll(store: MemoryStore, ids: string[], ttl = LONG): Promise<void> {
  for (const id of ids) if (!(await store.create(id, `text of ${id}`, ttl))) throw new Error(`create ${id} failed`);
}

test('expires exactly at its lifetime; a read renews it to the lifetime the read brings', async (t) => {
  const { store, clock } = storeWithClock();
  await store.create('a', 'v', TTL);
  clock.now += 999;
  t.is(await store.get('a', TTL), 'v', 'alive 1 ms before');
  clock.now += 999; // the read above renewed it
  t.is(await store.get('a', 5_000), 'v');
  clock.now += 4_999;
  t.is(await store.get('a', TTL), 'v', 'the read before set 5 s');
  clock.now += 1_000;
  t.is(await store.get('a', TTL), undefined, 'gone at exactly the lifetime');
  t.is(store.size, 0, 'and reclaimed on the spot');
  t.like(store.stats, { hits: 3, misses: 1, expired: 1 });
});

test('create is only for an unused id; an expired one counts as unused', async (t) => {
  const { store, clock } = storeWithClock();
  t.true(await store.create('a', 'first', TTL));
  t.false(await store.create('a', 'second', LONG));
  t.is(await store.get('a', TTL), 'first');
  clock.now += 999;
  t.false(await store.create('a', 'third', LONG), 'the read renewed it: still in use');
  clock.now += 1;
  t.true(await store.create('a', 'fourth', TTL), 'expired: unused');
  t.is(await store.get('a', TTL), 'fourth');
  t.like(store.stats, { expired: 1 });
});

test('update only changes a live id: unknown, destroyed and expired ids stay absent', async (t) => {
  const { store, clock } = storeWithClock();
  t.false(await store.update('never', 'v', LONG));
  await store.create('a', 'v1', TTL);
  t.true(await store.update('a', 'v2', 5_000));
  clock.now += 4_999;
  t.is(await store.get('a', TTL), 'v2', "renewed to the update's lifetime");
  await store.destroy('a');
  t.false(await store.update('a', 'v3', LONG), 'destroyed');
  await store.create('b', 'v1', TTL);
  clock.now += TTL;
  t.false(await store.update('b', 'v2', LONG), 'expired');
  t.is(store.size, 0, 'nothing was created');
  t.like(store.stats, { expired: 1 });
});

test('destroy says whether a live session was there', async (t) => {
  const { store, clock } = storeWithClock();
  await store.create('a', 'v', TTL);
  await store.create('b', 'v', TTL);
  t.true(await store.destroy('a'));
  t.false(await store.destroy('a'));
  t.false(await store.destroy('never'));
  clock.now += TTL;
  t.false(await store.destroy('b'), 'expired');
  t.is(store.size, 0);
  t.like(store.stats, { expired: 1, hits: 0, misses: 0 });
});

test('ids such as __proto__ and constructor are ordinary ids', async (t) => {
  const { store } = storeWithClock();
  for (const id of ['__proto__', 'constructor', 'toString', 'hasOwnProperty'])
    t.is(await store.get(id, TTL), undefined, id);
  t.true(await store.create('__proto__', 'v', TTL));
  t.is(await store.get('__proto__', TTL), 'v');
  t.is(await store.get('constructor', TTL), undefined);
  t.false(await store.update('toString', 'v', TTL));
});

test('lifetimes and sizes that are not positive integers are refused', async (t) => {
  const { store } = storeWithClock();
  for (const ttl of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    await t.throwsAsync(store.create('a', 'v', ttl), { instanceOf: RangeError }, String(ttl));
    await t.throwsAsync(store.get('a', ttl), { instanceOf: RangeError }, String(ttl));
    await t.throwsAsync(store.update('a', 'v', ttl), { instanceOf: RangeError }, String(ttl));
  }
  t.is(store.size, 0);
  t.throws(() => new MemoryStore({ maxEntries: 0 }), { instanceOf: RangeError });
  t.throws(() => new MemoryStore({ maxEntries: 10, protectedShare: 1.5 }), { instanceOf: RangeError });
});

test('segmented LRU: new sessions go to probation; a second use promotes; an update does not', async (t) => {
  const { store } = storeWithClock({ maxEntries: 10 });
  await createAll(store, ['a', 'b', 'c']);
  t.deepEqual(store.segments(), { probation: ['a', 'b', 'c'], protected: [] });
  t.true(await store.update('a', 'v2', LONG));
  t.deepEqual(
    store.segments(),
    { probation: ['b', 'c', 'a'], protected: [] },
    'an update makes it most recent in its segment',
  );
  t.is(await store.get('b', LONG), 'text of b');
  t.deepEqual(store.segments(), { probation: ['c', 'a'], protected: ['b'] }, 'read again: promoted');
  await store.get('c', LONG);
  await store.get('b', LONG);
  t.deepEqual(
    store.segments(),
    { probation: ['a'], protected: ['c', 'b'] },
    'a hit in protected moves to its most recent end',
  );
  t.true(await store.update('c', 'v2', LONG));
  t.deepEqual(store.segments(), { probation: ['a'], protected: ['b', 'c'] }, 'an update in protected stays there');
});

test('segmented LRU: protected past its share demotes its least recent to the most recent end of probation', async (t) => {
  const { store } = storeWithClock({ maxEntries: 5 }); // protected holds floor(5 * 0.8) = 4
  await createAll(store, ['a', 'b', 'c', 'd', 'e']);
  for (const id of ['a', 'b', 'c', 'd']) await store.get(id, LONG);
  t.deepEqual(store.segments(), { probation: ['e'], protected: ['a', 'b', 'c', 'd'] });
  await store.get('e', LONG);
  t.deepEqual(store.segments(), { probation: ['a'], protected: ['b', 'c', 'd', 'e'] });
  await store.get('a', LONG); // back again: promoted, and b, now least recent in protected, is demoted
  t.deepEqual(store.segments(), { probation: ['b'], protected: ['c', 'd', 'e', 'a'] });
});

test('segmented LRU: an expired entry due for demotion is dropped and counted as expired', async (t) => {
  const { store, clock } = storeWithClock({ maxEntries: 5, protectedShare: 0.4 }); // protected holds 2
  await createAll(store, ['short'], TTL);
  await createAll(store, ['a', 'b']);
  await store.get('short', TTL);
  await store.get('a', LONG);
  clock.now += TTL;
  await store.get('b', LONG);
  t.deepEqual(store.segments(), { probation: [], protected: ['a', 'b'] });
  t.like(store.stats, { expired: 1, evictedProbation: 0, evictedProtected: 0 });
});

test('segmented LRU: a full store evicts the least recent of probation, never a protected session while probation has one', async (t) => {
  const { store } = storeWithClock({ maxEntries: 5, protectedShare: 0.6 }); // protected holds 3
  await createAll(store, ['p1', 'p2', 'p3', 'a', 'b']);
  for (const id of ['p1', 'p2', 'p3']) await store.get(id, LONG);
  await store.get('a', LONG); // protected would hold 4: p1 is demoted to probation's most recent end
  t.deepEqual(store.segments(), { probation: ['b', 'p1'], protected: ['p2', 'p3', 'a'] });
  await createAll(store, ['c']);
  t.deepEqual(
    store.segments(),
    { probation: ['p1', 'c'], protected: ['p2', 'p3', 'a'] },
    'b, least recent in probation, went first',
  );
  await createAll(store, ['d']);
  t.deepEqual(store.segments(), { probation: ['c', 'd'], protected: ['p2', 'p3', 'a'] }, 'then the demoted p1');
  await createAll(store, ['e', 'f', 'g']);
  t.deepEqual(store.segments(), { probation: ['f', 'g'], protected: ['p2', 'p3', 'a'] });
  t.like(store.stats, { evictedProbation: 5, evictedProtected: 0, expired: 0 });
  for (const id of ['b', 'p1', 'c', 'd', 'e']) t.is(await store.get(id, LONG), undefined, id);
});

test('segmented LRU: protected gives up its least recent only when probation is empty', async (t) => {
  const { store } = storeWithClock({ maxEntries: 3, protectedShare: 1 });
  await createAll(store, ['a', 'b', 'c']);
  for (const id of ['b', 'a', 'c']) await store.get(id, LONG);
  t.deepEqual(store.segments(), { probation: [], protected: ['b', 'a', 'c'] });
  await createAll(store, ['d']);
  t.deepEqual(store.segments(), { probation: ['d'], protected: ['a', 'c'] });
  await createAll(store, ['e']);
  t.deepEqual(store.segments(), { probation: ['e'], protected: ['a', 'c'] }, 'then probation again');
  t.like(store.stats, { evictedProbation: 1, evictedProtected: 1 });
});

test('segmented LRU: an expired entry met by eviction is counted as expired, not evicted', async (t) => {
  const { store, clock } = storeWithClock({ maxEntries: 2 });
  await createAll(store, ['dead'], TTL);
  await createAll(store, ['live']);
  clock.now += TTL;
  await createAll(store, ['new']);
  t.deepEqual(store.segments(), { probation: ['live', 'new'], protected: [] });
  t.like(store.stats, { expired: 1, evictedProbation: 0, evictedProtected: 0 });
});

test('with protectedShare 0 the policy is a plain LRU in which a read counts as use', async (t) => {
  const { store } = storeWithClock({ maxEntries: 3, protectedShare: 0 });
  await createAll(store, ['a', 'b', 'c']);
  await store.get('a', LONG);
  await createAll(store, ['d']);
  t.is(await store.get('b', LONG), undefined, 'b was least recently used');
  t.deepEqual(store.segments(), { probation: ['c', 'a', 'd'], protected: [] });
});

test('the cap is absolute: size never exceeds maxEntries, whatever the mix of calls', async (t) => {
  for (const protectedShare of [0, 0.5, 0.8, 1]) {
    const { store, clock } = storeWithClock({ maxEntries: 50, protectedShare });
    let seed = 42;
    const random = (n: number) => {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
      return (seed >>> 8) % n;
    };
    let largest = 0;
    for (let i = 0; i < 20_000; i++) {
      const id = `id${random(200)}`;
      const ttl = [TTL, 5 * TTL, LONG][random(3)];
      switch (random(5)) {
        case 0:
        case 1:
          await store.create(id, 'v', ttl);
          break;
        case 2:
          await store.get(id, ttl);
          break;
        case 3:
          await store.update(id, 'v2', ttl);
          break;
        case 4:
          if (random(4) === 0) await store.destroy(id);
          else clock.now += random(2 * TTL);
      }
      largest = Math.max(largest, store.size);
      const { probation, protected: prot } = store.segments();
      if (
        store.size > 50 ||
        prot.length > Math.floor(50 * protectedShare) ||
        probation.length + prot.length !== store.size
      ) {
        t.fail(`step ${i}: size ${store.size}, protected ${prot.length}, probation ${probation.length}`);
        return;
      }
    }
    t.is(largest, 50, `share ${protectedShare}: the store did fill up`);
    const { evictedProbation, evictedProtected } = store.stats;
    t.true(evictedProbation + evictedProtected > 0, `share ${protectedShare}: and evicted`);
    await store.close();
  }
});

test('scan resistance, measured: an established user survives 10 times maxEntries one-shot sessions', async (t) => {
  const { store } = storeWithClock({ maxEntries: 1_000 });
  await store.create('user', '{"time":1}', LONG);
  t.is(await store.get('user', LONG), '{"time":1}', 'the user comes back once');
  for (let i = 0; i < 10_000; i++) await store.create(`flood${i}`, '{"time":2}', LONG);
  t.is(store.size, 1_000);
  t.is(await store.get('user', LONG), '{"time":1}', 'the user is still signed in');
  t.like(store.stats, { evictedProbation: 9_001, evictedProtected: 0 });
  t.log(
    `after 10,000 one-shot sessions into 1,000 places: user kept, ${store.stats.evictedProbation} one-shot sessions evicted`,
  );
});

test('scan resistance: 700 returning users all survive the flood; in a plain LRU none would', async (t) => {
  const users = Array.from({ length: 700 }, (_, i) => `user${i}`);
  const survivors = async (protectedShare: number) => {
    const { store } = storeWithClock({ maxEntries: 1_000, protectedShare });
    await createAll(store, users);
    for (const id of users) await store.get(id, LONG);
    for (let i = 0; i < 10_000; i++) await store.create(`flood${i}`, 'v', LONG);
    let kept = 0;
    for (const id of users) if ((await store.get(id, LONG)) !== undefined) kept++;
    await store.close();
    return kept;
  };
  t.is(await survivors(0.8), 700, 'segmented LRU');
  t.is(await survivors(0), 0, 'plain LRU');
});

test('clear empties both segments', async (t) => {
  const { store } = storeWithClock();
  await createAll(store, ['a', 'b']);
  await store.get('a', LONG);
  store.clear();
  t.is(store.size, 0);
  t.deepEqual(store.segments(), { probation: [], protected: [] });
  t.true(await store.create('a', 'again', LONG));
  t.deepEqual(store.segments(), { probation: ['a'], protected: [] });
});

test('the sweep reclaims expired entries of both segments in bounded steps, yielding between them', async (t) => {
  const { store, clock } = storeWithClock({ maxEntries: 10_000, sweepBatchSize: 100 });
  for (let i = 0; i < 1_000; i++) await store.create(`old${i}`, 'v', TTL);
  for (let i = 0; i < 500; i++) await store.get(`old${i}`, TTL); // half of them protected
  clock.now += 500;
  for (let i = 0; i < 10; i++) await store.create(`new${i}`, 'v', TTL);
  clock.now += 600; // the old ones are past their lifetime, the new ones are not
  const pass = store.sweep();
  t.is(store.sweep(), pass, 'a second call joins the pass under way');
  t.is(store.size, 1_010 - 100, 'the first step runs at once, and looks at one batch');
  await tick();
  t.is(store.size, 1_010 - 200, 'one more batch per turn of the event loop');
  await pass;
  t.is(store.size, 10, 'the pass completes');
  t.is(store.stats.expired, 1_000);
  t.deepEqual(store.segments(), { probation: Array.from({ length: 10 }, (_, i) => `new${i}`), protected: [] });
});

test('the timer sweeps on its own, and close stops it (and ends a pass under way)', async (t) => {
  const clock = { now: 0 };
  const make = () => new MemoryStore({ maxEntries: 10, sweepIntervalMs: 20, sweepBatchSize: 1, now: () => clock.now });
  const running = make();
  const closed = make();
  t.teardown(() => running.close());
  await running.create('a', 'v', TTL);
  await closed.create('a', 'v', TTL);
  await closed.create('b', 'v', TTL);
  clock.now += 5_000;
  const pass = closed.sweep();
  t.is(closed.size, 1, 'one entry per step');
  await closed.close();
  await pass; // resolves: close ended it
  await sleep(200);
  t.is(running.size, 0, 'the running store reclaimed the expired entry by itself');
  t.is(closed.size, 1, 'the closed store no longer sweeps');
});

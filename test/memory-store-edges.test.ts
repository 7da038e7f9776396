/**
 * The memory store at its edges, and the rest of app/stores/ that the contract and model tests leave
 * open: the options' bounds and defaults (share, batch size, clock, sweep timer), the exact errors,
 * health, the store factory and the error type of an outage.
 */
import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import test from 'ava';
import { createLogger } from '../app/logger.ts';
import { createStore } from '../app/stores/index.ts';
import { MemoryStore, type MemoryStoreOptions } from '../app/stores/memory.ts';
import { StoreUnavailableError } from '../app/stores/store.ts';
import { loadConfig } from '../config/index.ts';
import { TEST_KEY } from './helpers/app.ts';
import { REDIS_URL, redisTest } from './helpers/redis.ts';

const LONG = 3_600_000;

function storeWithClock(options: Partial<MemoryStoreOptions> = {}) {
  const clock = { now: 1_000_000 };
  const store = new MemoryStore({ maxEntries: 100, sweepIntervalMs: LONG, now: () => clock.now, ...options });
  return { store, clock };
}

async function createAll(store: MemoryStore, ids: string[], ttl = LONG): Promise<void> {
  for (const id of ids) if (!(await store.create(id, `text of ${id}`, ttl))) throw new Error(`create ${id} failed`);
}

const ids = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}${i}`);

test('options out of bounds are refused with a message that says so', (t) => {
  for (const maxEntries of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
    t.throws(() => new MemoryStore({ maxEntries }), {
      instanceOf: RangeError,
      message: `maxEntries must be a positive integer, not ${maxEntries}`,
    });
  }
  for (const protectedShare of [-0.01, 1.01, Number.NaN]) {
    t.throws(() => new MemoryStore({ maxEntries: 10, protectedShare }), {
      instanceOf: RangeError,
      message: `protectedShare must be from 0 to 1, not ${protectedShare}`,
    });
  }
  for (const [maxEntries, protectedShare] of [
    [1, 0],
    [1, 1],
    [Number.MAX_SAFE_INTEGER, 0.5],
  ]) {
    const store = new MemoryStore({ maxEntries, protectedShare });
    t.is(store.size, 0);
    void store.close();
  }
});

test('a TTL that is not a positive integer is refused with its value in the message', async (t) => {
  const { store } = storeWithClock();
  for (const ttl of [0, -5, 0.5, Number.NaN]) {
    for (const call of [
      () => store.get('a', ttl),
      () => store.create('a', 'v', ttl),
      () => store.update('a', 'v', ttl),
    ]) {
      await t.throwsAsync(call(), { instanceOf: RangeError, message: `ttlMs must be a positive integer, not ${ttl}` });
    }
  }
  t.true(await store.create('a', 'v', 1), '1 ms is a lifetime');
});

test('protected holds floor(maxEntries × protectedShare) entries, 80% by default', async (t) => {
  for (const [options, kept] of [
    [{ maxEntries: 10 }, 8],
    [{ maxEntries: 10, protectedShare: 0.85 }, 8],
    [{ maxEntries: 10, protectedShare: 0.89 }, 8],
    [{ maxEntries: 10, protectedShare: 0.9 }, 9],
    [{ maxEntries: 10, protectedShare: 1 }, 10],
    [{ maxEntries: 3, protectedShare: 0.5 }, 1],
  ] as const) {
    const { store } = storeWithClock(options);
    const all = ids('u', options.maxEntries);
    await createAll(store, all);
    for (const id of all) await store.get(id, LONG);
    const { probation, protected: kept_ } = store.segments();
    t.is(kept_.length, kept, JSON.stringify(options));
    t.deepEqual(kept_, all.slice(0, kept), 'the first read: established first, kept first');
    t.deepEqual(probation, all.slice(kept), 'the rest wait, in the order of their reads');
    t.is(store.size, options.maxEntries);
  }
});

test('stats start at zero and count each kind of event once', async (t) => {
  const { store, clock } = storeWithClock({ maxEntries: 2, protectedShare: 0.5 });
  t.deepEqual(store.stats, { hits: 0, misses: 0, expired: 0, evictedProbation: 0, evictedProtected: 0 });
  await store.get('none', LONG);
  await createAll(store, ['a']);
  await store.get('a', LONG);
  await store.create('b', 'v', 10);
  clock.now += 10;
  await store.get('b', LONG);
  t.deepEqual(store.stats, { hits: 1, misses: 2, expired: 1, evictedProbation: 0, evictedProtected: 0 });
  await createAll(store, ['c', 'd']); // full: c evicted from probation for d
  t.deepEqual(store.stats, { hits: 1, misses: 2, expired: 1, evictedProbation: 1, evictedProtected: 0 });
  await store.get('d', LONG); // established, but protected (its share is 1) holds a: d waits
  await store.get('a', LONG);
  await store.get('d', LONG);
  t.deepEqual(store.segments(), { probation: ['d'], protected: ['a'] });
  await store.destroy('a');
  await createAll(store, ['e', 'f']); // e fills the place of a; f evicts e, a one-shot session, not d
  t.deepEqual(store.stats, { hits: 4, misses: 2, expired: 1, evictedProbation: 2, evictedProtected: 0 });
  await store.destroy('f');
  await store.destroy('d');
  t.is(store.size, 0);
});

test('health reports the number of sessions; the kind is memory', async (t) => {
  const { store } = storeWithClock();
  t.is(store.kind, 'memory');
  t.deepEqual(await store.health(), { ok: true, sessions: 0 });
  await createAll(store, ['a', 'b', 'c']);
  await store.destroy('b');
  t.deepEqual(await store.health(), { ok: true, sessions: 2 });
  store.clear();
  t.deepEqual(await store.health(), { ok: true, sessions: 0 });
});

test('an update changes neither the segment of an entry nor its place there: it is not a use', async (t) => {
  const { store } = storeWithClock({ maxEntries: 10 });
  await createAll(store, ['a', 'b', 'c', 'x', 'y', 'z']);
  for (const id of ['x', 'y', 'z']) await store.get(id, LONG);
  t.deepEqual(store.segments(), { probation: ['a', 'b', 'c'], protected: ['x', 'y', 'z'] });
  for (const id of ['z', 'a', 'x']) t.true(await store.update(id, `new ${id}`, LONG));
  t.deepEqual(store.segments(), { probation: ['a', 'b', 'c'], protected: ['x', 'y', 'z'] });
  t.is(await store.get('a', LONG), 'new a');
  t.is(await store.get('x', LONG), 'new x');
});

test('without a clock the store uses the real time', async (t) => {
  const store = new MemoryStore({ maxEntries: 10, sweepIntervalMs: LONG });
  t.teardown(() => store.close());
  await store.create('a', 'v', 2_000); // wide margins: the machine may be busy
  t.is(await store.get('a', 2_000), 'v');
  await sleep(2_500);
  t.is(await store.get('a', 2_000), undefined);
  t.is(store.stats.expired, 1);
});

test('a sweep looks at 5,000 entries per step by default, and at least one', async (t) => {
  const { store, clock } = storeWithClock({ maxEntries: 10_000 });
  await createAll(store, ids('s', 5_003), 1);
  clock.now += 1;
  const pass = store.sweep();
  t.is(store.size, 3, 'the first step: 5,000 entries');
  await pass;
  t.is(store.size, 0);

  const one = storeWithClock({ maxEntries: 10, sweepBatchSize: 0 });
  await createAll(one.store, ['a', 'b', 'c'], 1);
  one.clock.now += 1;
  const stepwise = one.store.sweep();
  t.is(one.store.size, 2, 'a batch size of 0 means 1');
  await stepwise;
  t.is(one.store.size, 0);
  t.is(one.store.stats.expired, 3);
});

test('a sweep reclaims only what has expired, and a new pass can start after one ends', async (t) => {
  const { store, clock } = storeWithClock({ sweepBatchSize: 2 });
  await store.create('short', 'v', 10);
  await store.create('long', 'v', LONG);
  await store.create('edge', 'v', 20);
  clock.now += 20;
  await store.sweep();
  t.deepEqual(store.segments(), { probation: ['long'], protected: [] }, 'expired at exactly its lifetime');
  t.is(store.stats.expired, 2);
  await store.create('later', 'v', 5);
  clock.now += 5;
  const second = store.sweep();
  t.not(second, undefined);
  await second;
  t.deepEqual(store.segments(), { probation: ['long'], protected: [] });
  t.is(store.stats.expired, 3);
  await store.sweep(); // nothing to do: settles too
  await store.close();
  await store.sweep().then(() => t.pass('a sweep asked for after close still settles'));
});

test('the sweep timer runs every 5 s by default and never keeps the process alive', (t) => {
  const original = globalThis.setInterval;
  const made: Array<{ ms: number | undefined; timer: NodeJS.Timeout }> = [];
  globalThis.setInterval = ((handler: () => void, ms?: number) => {
    const timer = original(handler, ms);
    made.push({ ms, timer });
    return timer;
  }) as typeof setInterval;
  let store: MemoryStore;
  let custom: MemoryStore;
  try {
    store = new MemoryStore({ maxEntries: 1 });
    custom = new MemoryStore({ maxEntries: 1, sweepIntervalMs: 1_234 });
  } finally {
    globalThis.setInterval = original;
  }
  t.teardown(async () => {
    await store.close();
    await custom.close();
  });
  t.is(made.length, 2);
  t.is(made[0].ms, 5_000);
  t.is(made[1].ms, 1_234);
  t.false(made[0].timer.hasRef(), 'unref');
});

test('close stops the timer: a closed store is reclaimed only when touched', async (t) => {
  const clock = { now: 0 };
  const store = new MemoryStore({ maxEntries: 10, sweepIntervalMs: 10, now: () => clock.now });
  await store.create('a', 'v', 5);
  await store.close();
  clock.now = 100;
  await sleep(100);
  t.is(store.size, 1, 'no sweep ran');
  t.is(await store.get('a', 5), undefined);
  t.is(store.size, 0);
});

const execFileAsync = promisify(execFile);

/** Runs a module in a fresh Node process (the store's own file, so a mutated copy in a sandbox too). */
async function runScript(source: string): Promise<{ code: number; stdout: string }> {
  const storeUrl = new URL('../app/stores/memory.ts', import.meta.url).href;
  const script = `import { MemoryStore } from ${JSON.stringify(storeUrl)};\n${source}`;
  try {
    const { stdout } = await execFileAsync(
      process.execPath,
      ['--import=tsx', '--input-type=module', '--eval', script],
      { timeout: 20_000 },
    );
    return { code: 0, stdout };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; killed?: boolean };
    return { code: failed.killed ? -1 : (failed.code ?? -1), stdout: failed.stdout ?? '' };
  }
}

test('a store left open does not keep the process alive; a sweep asked for does, until it ends', async (t) => {
  const idle = await runScript(`
    const store = new MemoryStore({ maxEntries: 10, sweepIntervalMs: 5 });
    await store.create('a', 'v', 1_000);
    console.log('done');
  `);
  t.deepEqual(idle, { code: 0, stdout: 'done\n' }, 'exits although the timer is set and the store never closed');
  const swept = await runScript(`
    const clock = { now: 0 };
    const store = new MemoryStore({ maxEntries: 1_000, sweepBatchSize: 1, sweepIntervalMs: 3_600_000, now: () => clock.now });
    for (let i = 0; i < 500; i++) await store.create('k' + i, 'v', 1);
    clock.now = 1;
    await store.sweep();
    console.log('swept to', store.size);
  `);
  t.deepEqual(
    swept,
    { code: 0, stdout: 'swept to 0\n' },
    'the awaited pass ran to its end (exit 13 would mean it was dropped)',
  );
});

test('a sweep asked for while the timer pass runs joins that pass and holds the process until it ends', async (t) => {
  const joined = await runScript(`
    const clock = { now: 0 };
    const store = new MemoryStore({ maxEntries: 5_000, sweepBatchSize: 1, sweepIntervalMs: 1, now: () => clock.now });
    for (let i = 0; i < 2_000; i++) await store.create('k' + i, 'v', 1);
    clock.now = 10;
    // Wait (holding the loop with a timer of our own) until the timer's pass has reclaimed its first entries.
    while (store.size === 2_000) await new Promise((resolve) => setTimeout(resolve, 5));
    const under_way = store.size > 0;
    await store.sweep();
    console.log(under_way ? 'joined, swept to ' + store.size : 'the timer pass had already ended');
  `);
  t.deepEqual(
    joined,
    { code: 0, stdout: 'joined, swept to 0\n' },
    'exit 13 would mean the joined pass did not hold the process',
  );
});

test('a pass the timer started never holds the process, even when the timer fires again during it', async (t) => {
  // The timer is driven by hand (its handler is captured), so the pass is under way when the script ends.
  const timerPass = await runScript(`
    const realSetInterval = globalThis.setInterval;
    let tick;
    globalThis.setInterval = (handler) => {
      tick = handler;
      return realSetInterval(() => {}, 3_600_000);
    };
    const clock = { now: 0 };
    const store = new MemoryStore({ maxEntries: 1_000, sweepBatchSize: 1, now: () => clock.now });
    globalThis.setInterval = realSetInterval;
    for (let i = 0; i < 1_000; i++) await store.create('k' + i, 'v', 1);
    clock.now = 1;
    tick(); // the timer starts a pass: one entry per step
    tick(); // and fires again while it runs
    process.on('exit', () => console.log(store.size > 0 ? 'exited during the pass' : 'held until the pass ended'));
  `);
  t.deepEqual(timerPass, { code: 0, stdout: 'exited during the pass\n' });
});

test('StoreUnavailableError: its name, message and cause', (t) => {
  const cause = new Error('ECONNREFUSED');
  const error = new StoreUnavailableError('redis is not connected', { cause });
  t.true(error instanceof Error);
  t.is(error.name, 'StoreUnavailableError');
  t.is(error.message, 'redis is not connected');
  t.is(error.cause, cause);
});

const logger = createLogger({ level: 'silent', format: 'json', production: false }, { write: () => {} });

test('createStore: the memory store with SESSION_MAX_ENTRIES as its bound', async (t) => {
  const store = await createStore(loadConfig({ SESSION_KEYS: TEST_KEY, SESSION_MAX_ENTRIES: '2' }), logger);
  t.teardown(() => store.close());
  t.true(store instanceof MemoryStore);
  for (const id of ['a', 'b', 'c']) t.true(await store.create(id, 'v', LONG));
  t.is((store as MemoryStore).size, 2);
});

test('createStore: SESSION_STORE=redis without Redis settings is refused', async (t) => {
  const config = loadConfig({ SESSION_KEYS: TEST_KEY, SESSION_STORE: 'redis' });
  await t.throwsAsync(createStore({ ...config, redis: null }, logger), {
    message: 'SESSION_STORE=redis without Redis settings',
  });
});

redisTest(test)('createStore: the Redis store on REDIS_URL', async (t) => {
  const store = await createStore(
    loadConfig({ SESSION_KEYS: TEST_KEY, SESSION_STORE: 'redis', REDIS_URL: REDIS_URL ?? '' }),
    logger,
  );
  t.teardown(() => store.close());
  t.is(store.kind, 'redis');
  t.deepEqual(await store.health(), { ok: true, reachable: true });
});

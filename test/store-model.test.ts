/**
 * Property-based checks (fast-check): random sequences of set, get, destroy, sweeps, counter reads
 * and time passing, run against each store and against a small reference model; every answer must
 * match. Small runs by default; FC_RUNS=1000 npm test (or npx ava test/store-model.test.ts) for more.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import fc from 'fast-check';
import { MemoryStore } from '../app/stores/memory.ts';
import { openTestRedisStore, redisTest } from './helpers/redis.ts';

const RUNS = Number(process.env.FC_RUNS ?? 0) || undefined;
// Few ids, so that sequences keep coming back to the same sessions.
const id = fc.constantFrom('a', 'b', 'c', '__proto__', 'constructor');
const value = fc.record({ time: fc.integer(), tags: fc.array(fc.string({ maxLength: 3 }), { maxLength: 2 }) });

type Command =
  | { kind: 'set'; id: string; value: { time: number; tags: string[] } }
  | { kind: 'get'; id: string; mutate: boolean }
  | { kind: 'destroy'; id: string }
  | { kind: 'advance'; ms: number }
  | { kind: 'sweep' }
  | { kind: 'stats' };

/** The reference: a Map in recency order, with the same counters, in a dozen obvious lines each. */
class MemoryModel {
  readonly entries = new Map<string, { value: unknown; expiresAt: number }>();
  readonly stats = { hits: 0, misses: 0, expired: 0, evicted: 0 };
  readonly ttl: number;
  readonly max: number;
  now = 0;

  constructor(ttl: number, max: number) {
    this.ttl = ttl;
    this.max = max;
  }

  get(id: string): unknown {
    const entry = this.entries.get(id);
    if (entry && entry.expiresAt <= this.now) {
      this.entries.delete(id);
      this.stats.expired++;
    }
    const live = this.entries.get(id);
    if (!live) {
      this.stats.misses++;
      return undefined;
    }
    this.stats.hits++;
    this.entries.delete(id);
    this.entries.set(id, { value: live.value, expiresAt: this.now + this.ttl });
    return structuredClone(live.value);
  }

  set(id: string, value: unknown): void {
    this.entries.delete(id);
    this.entries.set(id, { value: structuredClone(value), expiresAt: this.now + this.ttl });
    if (this.entries.size > this.max) {
      const [oldestId, oldest] = this.entries.entries().next().value!;
      this.entries.delete(oldestId);
      if (oldest.expiresAt <= this.now) this.stats.expired++;
      else this.stats.evicted++;
    }
  }

  sweep(): void {
    for (const [id, entry] of this.entries) {
      if (entry.expiresAt <= this.now) {
        this.entries.delete(id);
        this.stats.expired++;
      }
    }
  }
}

const memoryCommand: fc.Arbitrary<Command> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('set' as const), id, value }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('get' as const), id, mutate: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('destroy' as const), id }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      // Mostly less than the 1 s lifetime (so sliding matters), and its exact edges.
      ms: fc.oneof(fc.integer({ min: 0, max: 800 }), fc.constantFrom(999, 1_000, 1_001), fc.integer({ min: 0, max: 3_000 })),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('sweep' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('stats' as const) }) },
);

test('memory store matches the model: expiry at the idle lifetime, sliding, LRU eviction, copies, counters', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.array(memoryCommand, { minLength: 5, maxLength: 80, size: 'medium' }), async (max, commands) => {
      const model = new MemoryModel(1_000, max);
      const clock = { now: 5_000_000 };
      const store = new MemoryStore({ defaultMaxAgeMs: 1_000, maxEntries: max, sweepIntervalMs: 3_600_000, now: () => clock.now + model.now });
      try {
        for (const command of commands) {
          switch (command.kind) {
            case 'set':
              await store.set(command.id, command.value, 'session');
              model.set(command.id, command.value);
              break;
            case 'get': {
              const actual = await store.get(command.id, 'session');
              t.deepEqual(actual, model.get(command.id));
              if (command.mutate && actual) (actual.tags as string[]).push('mutated'); // must not reach the store
              break;
            }
            case 'destroy':
              await store.destroy(command.id);
              model.entries.delete(command.id);
              break;
            case 'advance':
              model.now += command.ms;
              break;
            case 'sweep':
              store.sweep(); // small stores finish the pass in one step
              model.sweep();
              break;
            case 'stats':
              t.deepEqual(store.stats, model.stats);
              break;
          }
          if (store.size !== model.entries.size) return false;
        }
        t.deepEqual(store.stats, model.stats);
        return store.size === model.entries.size;
      } finally {
        await store.close();
      }
    }),
    { numRuns: RUNS ?? 300 },
  );
  t.pass();
});

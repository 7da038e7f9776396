/**
 * Property-based check (fast-check) of the memory store against a small reference model: random
 * sequences of create, update, get, destroy, clear, time passing, and sweeps stepped one event-loop
 * turn at a time between the other calls; every answer, the contents and order of both segments, and
 * the counters must match the model after every call. (The Redis store's model is in
 * test/redis-model.test.ts.) 1,000 runs by default (about a second); FC_RUNS=10000 npx ava test/store-model.test.ts for more.
 *
 * The model implements the same policy (app/stores/memory.ts: seniority with decay) in its own way:
 * one Map of plain records, each with its segment's name, its count of uses, the epoch of its last
 * use and a sequence number of its last move; a segment's order is a sort of its records by the rule
 * written out (standing, then epoch of last use, then bit length of the count, then last move), the
 * first to go found by that sort, decay computed by division, the clock a count of ticks, and the
 * sweep a cursor over creation sequence numbers. It shares no code and no data structure with the store.
 */
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import test from 'ava';
import fc from 'fast-check';
import { MemoryStore } from '../app/stores/memory.ts';

const RUNS = Number(process.env.FC_RUNS ?? 0) || undefined;

// More ids than most stores have places, so sequences keep evicting and coming back to the same ids.
const id = fc.constantFrom('a', 'b', 'c', 'd', '__proto__', 'constructor');
const text = fc.oneof(fc.string({ maxLength: 6 }), fc.string({ unit: 'binary', maxLength: 4 }));
// Lifetimes that differ, so that the most recently used entry is not always the last to expire.
const ttl = fc.constantFrom(300, 1_000, 2_500);

type Command =
  | { kind: 'create'; id: string; text: string; ttl: number }
  | { kind: 'update'; id: string; text: string; ttl: number }
  | { kind: 'get'; id: string; ttl: number }
  | { kind: 'reads'; id: string; ttl: number; times: number }
  | { kind: 'destroy'; id: string }
  | { kind: 'clear' }
  | { kind: 'advance'; ms: number }
  | { kind: 'sweep' }
  | { kind: 'tick' }
  | { kind: 'finishSweep' };

const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('create' as const), id, text, ttl }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('update' as const), id, text, ttl }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('get' as const), id, ttl }) },
  // Runs of reads: the clock ticks on, and the other entries' counts decay (a half-life is 10 to 50 ticks here).
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('reads' as const),
      id,
      ttl,
      times: fc.integer({ min: 2, max: 25 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('destroy' as const), id }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'clear' as const }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      // Mostly less than the lifetimes (so sliding matters), and their exact edges.
      ms: fc.oneof(
        fc.integer({ min: 0, max: 800 }),
        fc.constantFrom(299, 300, 301, 999, 1_000, 1_001, 2_500),
        fc.integer({ min: 0, max: 3_000 }),
      ),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ kind: 'sweep' as const }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'tick' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'finishSweep' as const }) },
);

interface ModelEntry {
  readonly id: string;
  text: string;
  expiresAt: number;
  /** When it was created: the sweep visits entries in this order. */
  readonly seq: number;
  segment: 'probation' | 'protected';
  /** Uses, counted up to 15, as of the epoch usedIn. */
  uses: number;
  usedIn: number;
  /** When it last joined its segment's order (its list, in the store). */
  moved: number;
}

/** Seniority with decay, the slow and obvious way. */
class MemoryModel {
  readonly entries = new Map<string, ModelEntry>();
  readonly stats = { hits: 0, misses: 0, expired: 0, evictedProbation: 0, evictedProtected: 0 };
  readonly max: number;
  readonly maxProtected: number;
  readonly batch: number;
  now = 0;
  /** Creates and reads that found a session, ever: an epoch is `max` of them. */
  ticks = 0;
  #seq = 0;
  #moves = 0;
  /** The sweep pass under way: the last sequence number it looked at. */
  sweepCursor: number | undefined;

  constructor(max: number, protectedShare: number, batch: number) {
    this.max = max;
    this.maxProtected = Math.floor(max * protectedShare);
    this.batch = batch;
  }

  get size(): number {
    return this.entries.size;
  }

  get epoch(): number {
    return Math.floor(this.ticks / this.max);
  }

  /** Uses halved once per 10 epochs unused, rounding down. */
  decayed(entry: ModelEntry): number {
    const halvings = Math.floor((this.epoch - entry.usedIn) / 10);
    return Math.floor(entry.uses / 2 ** halvings);
  }

  /** The ids of a segment, the first to go first. */
  order(segment: ModelEntry['segment']): string[] {
    const bitLength = (uses: number) => (uses === 0 ? 0 : Math.floor(Math.log2(uses)) + 1);
    const key = (entry: ModelEntry) => [
      Math.min(this.decayed(entry), 2),
      entry.usedIn,
      bitLength(entry.uses),
      entry.moved,
    ];
    return [...this.entries.values()]
      .filter((entry) => entry.segment === segment)
      .sort((x, y) => {
        const [kx, ky] = [key(x), key(y)];
        const at = kx.findIndex((value, i) => value !== ky[i]);
        return at < 0 ? 0 : kx[at] - ky[at];
      })
      .map((entry) => entry.id);
  }

  #count(segment: ModelEntry['segment']): number {
    return [...this.entries.values()].filter((entry) => entry.segment === segment).length;
  }

  #expired(id: string): boolean {
    return this.entries.get(id)!.expiresAt <= this.now;
  }

  /** Whether a live entry is there; an expired one is removed and counted. */
  #lookUp(id: string): boolean {
    if (!this.entries.has(id)) return false;
    if (!this.#expired(id)) return true;
    this.entries.delete(id);
    this.stats.expired++;
    return false;
  }

  /** Sets what a use (or a demotion) writes: uses, epoch, and a new place in the order. */
  #move(entry: ModelEntry, segment: ModelEntry['segment'], uses: number): void {
    Object.assign(entry, { segment, uses, usedIn: this.epoch, moved: ++this.#moves });
  }

  /** Whether protected can take one more: room, or its first has expired or is no longer established. */
  #roomInProtected(): boolean {
    if (this.#count('protected') < this.maxProtected) return true;
    const [firstId] = this.order('protected');
    if (firstId === undefined) return false;
    if (this.#expired(firstId)) {
      this.entries.delete(firstId);
      this.stats.expired++;
      return true;
    }
    const first = this.entries.get(firstId)!;
    if (this.decayed(first) >= 2) return false;
    this.#move(first, 'probation', this.decayed(first));
    return true;
  }

  get(id: string, ttl: number): string | undefined {
    if (!this.#lookUp(id)) {
      this.stats.misses++;
      return undefined;
    }
    this.stats.hits++;
    this.ticks++;
    const entry = this.entries.get(id)!;
    entry.expiresAt = this.now + ttl;
    const uses = Math.min(15, this.decayed(entry) + 1);
    const wasProtected = entry.segment === 'protected';
    const promoted = !wasProtected && uses >= 2 && this.#roomInProtected();
    this.#move(entry, wasProtected || promoted ? 'protected' : 'probation', uses);
    return entry.text;
  }

  create(id: string, text: string, ttl: number): boolean {
    if (this.#lookUp(id)) return false;
    this.ticks++;
    if (this.size >= this.max) {
      const [victim] = this.#count('probation') > 0 ? this.order('probation') : this.order('protected');
      if (this.#expired(victim)) this.stats.expired++;
      else if (this.entries.get(victim)!.segment === 'probation') this.stats.evictedProbation++;
      else this.stats.evictedProtected++;
      this.entries.delete(victim);
    }
    const entry: ModelEntry = {
      id,
      text,
      expiresAt: this.now + ttl,
      seq: ++this.#seq,
      segment: 'probation',
      uses: 1,
      usedIn: this.epoch,
      moved: 0,
    };
    this.entries.set(id, entry);
    this.#move(entry, 'probation', 1);
    return true;
  }

  update(id: string, text: string, ttl: number): boolean {
    if (!this.#lookUp(id)) return false;
    Object.assign(this.entries.get(id)!, { text, expiresAt: this.now + ttl });
    return true;
  }

  destroy(id: string): boolean {
    if (!this.#lookUp(id)) return false;
    this.entries.delete(id);
    return true;
  }

  clear(): void {
    this.entries.clear();
  }

  /** sweep(): starts a pass unless one is under way; the first step runs at once. */
  startSweep(): void {
    if (this.sweepCursor !== undefined) return;
    this.sweepCursor = 0;
    this.sweepStep();
  }

  /** One step: the next `batch` entries in creation order; a step that runs out ends the pass. */
  sweepStep(): void {
    if (this.sweepCursor === undefined) return;
    const due = [...this.entries]
      .filter(([, entry]) => entry.seq > this.sweepCursor!)
      .sort(([, x], [, y]) => x.seq - y.seq)
      .slice(0, this.batch);
    for (const [id, entry] of due) {
      this.sweepCursor = entry.seq;
      if (entry.expiresAt <= this.now) {
        this.entries.delete(id);
        this.stats.expired++;
      }
    }
    if (due.length < this.batch) this.sweepCursor = undefined;
  }
}

test('memory store matches the model: conditional writes, sliding expiry, seniority with decay, sweeps, counters', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        max: fc.integer({ min: 1, max: 5 }),
        protectedShare: fc.constantFrom(0, 0.5, 0.8, 1),
        batch: fc.integer({ min: 1, max: 3 }),
      }),
      fc.array(command, { minLength: 5, maxLength: 160, size: 'medium' }),
      async ({ max, protectedShare, batch }, commands) => {
        const model = new MemoryModel(max, protectedShare, batch);
        const start = 5_000_000;
        const store = new MemoryStore({
          maxEntries: max,
          protectedShare,
          sweepBatchSize: batch,
          sweepIntervalMs: 3_600_000,
          now: () => start + model.now,
        });
        try {
          for (const [step, c] of commands.entries()) {
            const at = `step ${step}: ${JSON.stringify(c)}`;
            switch (c.kind) {
              case 'create':
                assert.equal(await store.create(c.id, c.text, c.ttl), model.create(c.id, c.text, c.ttl), at);
                break;
              case 'update':
                assert.equal(await store.update(c.id, c.text, c.ttl), model.update(c.id, c.text, c.ttl), at);
                break;
              case 'get':
                assert.equal(await store.get(c.id, c.ttl), model.get(c.id, c.ttl), at);
                break;
              case 'reads':
                for (let i = 0; i < c.times; i++)
                  assert.equal(await store.get(c.id, c.ttl), model.get(c.id, c.ttl), `${at}, read ${i + 1}`);
                break;
              case 'destroy':
                assert.equal(await store.destroy(c.id), model.destroy(c.id), at);
                break;
              case 'clear':
                store.clear();
                model.clear();
                break;
              case 'advance':
                model.now += c.ms;
                break;
              case 'sweep':
                void store.sweep();
                model.startSweep();
                break;
              case 'tick':
                await tick(); // the store's next step, if a pass is under way, runs before this resolves
                model.sweepStep();
                break;
              case 'finishSweep':
                await store.sweep();
                model.startSweep();
                while (model.sweepCursor !== undefined) model.sweepStep();
                break;
            }
            assert.deepEqual(
              store.segments(),
              { probation: model.order('probation'), protected: model.order('protected') },
              at,
            );
            assert.equal(store.size, model.size, at);
            assert.deepEqual(store.stats, model.stats, at);
            assert.ok(store.size <= max, at);
          }
        } finally {
          await store.close();
        }
      },
    ),
    { numRuns: RUNS ?? 1_000 },
  );
  t.pass();
});

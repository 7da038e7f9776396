/**
 * What it costs a client to log out an established user of a bounded memory store: the attacks of
 * docs/memory-store-eviction.md, simulated directly against the stores (no HTTP), for three policies:
 *
 * - the segmented LRU this store had before (app/stores/memory.ts at BEFORE, from git, in a temporary copy);
 * - W-TinyLFU, the usual answer, as a reference simulation below (it is no store of this project);
 * - seniority, the policy of app/stores/memory.ts now.
 *
 * An established user is a session created and then read 5 times. In "after", the attack starts once the
 * user is established, in a store holding nothing else; in "prepared", the attacker's sessions fill
 * the store before the user arrives, and only the requests after the user's fifth read count. Every
 * attacker request is one store call (a create or a read of its own sessions); the user never comes back.
 * The count is the attacker's requests until the user's session is gone, or "survives" past LIMIT
 * times the cap. For attack 3, every strategy below runs and the cheapest counts.
 *
 *   node --import tsx tools/bench/eviction-cost.ts [caps, default 1000,10000,100000] [--limit 30]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MemoryStore } from '../../app/stores/memory.ts';

/** The last commit with the segmented LRU. */
const BEFORE = '15e6e9b6179817b99cc48b91cd0b1d272a409d5e';
const USER = 'user';
const TEXT = '{"time":1700000000,"_session":true}';
const TTL = 3_600_000; // the clock stands still: nothing expires

const args = process.argv.slice(2);
const limitAt = args.indexOf('--limit');
const LIMIT = limitAt >= 0 ? Number(args.splice(limitAt, 2)[1]) : 30;
const CAPS = (args[0] ?? '1000,10000,100000').split(',').map(Number);

interface Store {
  create(id: string, text: string, ttlMs: number): Promise<boolean>;
  get(id: string, ttlMs: number): Promise<string | undefined>;
  close(): Promise<void>;
}

// The stores give no way to look at an entry without using it, and using it would be the user coming
// back. Every store keeps its entries in a Map and deletes the id when the entry goes, and the user
// never expires or logs out here: so the user is gone when some Map deletes its id.
let userGone = false;
const mapDelete = Map.prototype.delete;
Map.prototype.delete = function (this: Map<unknown, unknown>, key: unknown): boolean {
  if (key === USER) userGone = true;
  return mapDelete.call(this, key);
};

// --- W-TinyLFU, after Caffeine: a window LRU of 1% in front of a segmented LRU (probation, protected
// 80% of the main space); a count-min sketch of 4-bit counters, 4 per id, halved (with its sample
// count) each time the sample reaches 10 × the cap; a candidate leaving the window enters a full main
// space only if its estimate beats that of probation's least recent entry. Left out: the adaptive
// window size and the random admission of 1 in 128 warm candidates (it would only help an attacker).

class Node {
  prev: Node = this;
  next: Node = this;
  segment: Lru | null = null;
  readonly key: string;
  constructor(key: string) {
    this.key = key;
  }
}

class Lru {
  readonly #sentinel = new Node('');
  size = 0;
  get oldest(): Node | undefined {
    return this.#sentinel.next === this.#sentinel ? undefined : this.#sentinel.next;
  }
  push(node: Node): void {
    node.prev = this.#sentinel.prev;
    node.next = this.#sentinel;
    this.#sentinel.prev.next = node;
    this.#sentinel.prev = node;
    node.segment = this;
    this.size++;
  }
  remove(node: Node): void {
    node.prev.next = node.next;
    node.next.prev = node.prev;
    node.segment = null;
    this.size--;
  }
}

class FrequencySketch {
  readonly #counters: Uint8Array;
  readonly #shift: number;
  readonly #sampleSize: number;
  #additions = 0;

  constructor(cap: number) {
    const width = 2 ** Math.ceil(Math.log2(Math.max(16, 4 * cap))); // 16 counters per id of the cap, as Caffeine
    this.#counters = new Uint8Array(4 * width);
    this.#shift = 32 - Math.log2(width);
    this.#sampleSize = 10 * cap;
  }

  #index(hash: number, row: number): number {
    const mixed = Math.imul(hash ^ (hash >>> 15), [0x9e3779b1, 0x85ebca77, 0xc2b2ae3d, 0x27d4eb2f][row]);
    return row * (1 << (32 - this.#shift)) + ((mixed ^ (mixed >>> 13)) >>> this.#shift);
  }

  static hash(key: string): number {
    let hash = 0x811c9dc5;
    for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193);
    return hash;
  }

  estimate(key: string): number {
    const hash = FrequencySketch.hash(key);
    let least = 15;
    for (let row = 0; row < 4; row++) least = Math.min(least, this.#counters[this.#index(hash, row)]);
    return least;
  }

  increment(key: string): void {
    const hash = FrequencySketch.hash(key);
    let added = false;
    for (let row = 0; row < 4; row++) {
      const at = this.#index(hash, row);
      if (this.#counters[at] < 15) {
        this.#counters[at]++;
        added = true;
      }
    }
    if (added && ++this.#additions >= this.#sampleSize) this.#halve();
  }

  #halve(): void {
    let odd = 0;
    for (let at = 0; at < this.#counters.length; at++) {
      odd += this.#counters[at] & 1;
      this.#counters[at] >>>= 1;
    }
    this.#additions = (this.#additions - (odd >>> 2)) >>> 1;
  }
}

class WTinyLfu implements Store {
  readonly #nodes = new Map<string, Node>();
  readonly #window = new Lru();
  readonly #probation = new Lru();
  readonly #protected = new Lru();
  readonly #windowMax: number;
  readonly #mainMax: number;
  readonly #protectedMax: number;
  readonly #sketch: FrequencySketch;

  constructor(cap: number) {
    this.#windowMax = Math.max(1, Math.floor(cap * 0.01));
    this.#mainMax = cap - this.#windowMax;
    this.#protectedMax = Math.floor(this.#mainMax * 0.8);
    this.#sketch = new FrequencySketch(cap);
  }

  async create(id: string): Promise<boolean> {
    if (this.#nodes.has(id)) return false;
    this.#sketch.increment(id);
    const node = new Node(id);
    this.#nodes.set(id, node);
    this.#window.push(node);
    if (this.#window.size <= this.#windowMax) return true;
    const candidate = this.#window.oldest as Node;
    this.#window.remove(candidate);
    this.#probation.push(candidate);
    if (this.#probation.size + this.#protected.size > this.#mainMax) {
      const oldest = this.#probation.oldest as Node;
      const victim = oldest !== candidate ? oldest : this.#protected.oldest;
      const evicted =
        victim && this.#sketch.estimate(candidate.key) > this.#sketch.estimate(victim.key) ? victim : candidate;
      evicted.segment?.remove(evicted);
      this.#nodes.delete(evicted.key);
    }
    return true;
  }

  async get(id: string): Promise<string | undefined> {
    const node = this.#nodes.get(id);
    if (node === undefined) return undefined;
    this.#sketch.increment(id);
    const segment = node.segment as Lru;
    segment.remove(node);
    if (segment === this.#window) this.#window.push(node);
    else {
      this.#protected.push(node);
      if (this.#protected.size > this.#protectedMax) {
        const demoted = this.#protected.oldest as Node;
        this.#protected.remove(demoted);
        this.#probation.push(demoted);
      }
    }
    return TEXT;
  }

  async close(): Promise<void> {}
}

// --- The attacker and its strategies.

class Attacker {
  requests = 0;
  limit = Number.POSITIVE_INFINITY;
  /** Its sessions, oldest first. */
  readonly own: string[] = [];

  readonly store: Store;
  constructor(store: Store) {
    this.store = store;
  }

  get going(): boolean {
    return !userGone && this.requests < this.limit;
  }

  async create(): Promise<string> {
    const id = `a${this.own.length}`;
    this.own.push(id);
    this.requests++;
    await this.store.create(id, TEXT, TTL);
    return id;
  }

  async read(id: string): Promise<void> {
    this.requests++;
    await this.store.get(id, TTL);
  }
}

type Strategy = (attacker: Attacker, cap: number) => Promise<void>;

const createOnly: Strategy = async (a) => {
  while (a.going) await a.create();
};

const pairs: Strategy = async (a) => {
  while (a.going) {
    const id = await a.create();
    if (a.going) await a.read(id);
  }
};

/** Each new session read `reads` times at once: past any admission filter that counts uses. */
const pump =
  (reads: number): Strategy =>
  async (a) => {
    while (a.going) {
      const id = await a.create();
      for (let i = 0; i < reads && a.going; i++) await a.read(id);
    }
  };

/** Each new session read once, `lag` of its own sessions later (past a window, into the main space). */
const readLater =
  (share: number): Strategy =>
  async (a, cap) => {
    const lag = Math.max(1, Math.floor(cap * share));
    while (a.going) {
      await a.create();
      const due = a.own.length - 1 - lag;
      if (due >= 0 && a.going) await a.read(a.own[due]);
    }
  };

/**
 * Pairs until protected is full, then per step one pair and one read of its oldest sessions in turn, so that
 * they stay the most recent and the most used.
 */
const pairsKeepingFresh: Strategy = async (a, cap) => {
  const kept = Math.floor(cap * 0.8);
  for (let i = 0; i < kept && a.going; i++) await a.read(await a.create());
  for (let turn = 0; a.going; turn = (turn + 1) % kept) {
    await a.read(a.own[turn]);
    if (a.going) await a.read(await a.create());
  }
};

/** One-shot sessions until the attacker has made as many as the cap, then `then`. */
const oneShotsThen =
  (then: Strategy): Strategy =>
  async (a, cap) => {
    while (a.going && a.own.length < cap) await a.create();
    await then(a, cap);
  };

/** Pairs until the attacker has made 80% of the cap (protected's share), then `then`. */
const pairsThen =
  (then: Strategy): Strategy =>
  async (a, cap) => {
    while (a.going && a.own.length < Math.floor(cap * 0.8)) {
      const id = await a.create();
      if (a.going) await a.read(id);
    }
    await then(a, cap);
  };

/** Prepared: reads each of its sessions once, oldest first (the user then is the least recent of all), then `then`. */
const rotateThen =
  (then: Strategy): Strategy =>
  async (a, cap) => {
    const prepared = a.own.slice();
    for (const id of prepared) {
      if (!a.going) return;
      await a.read(id);
    }
    await then(a, cap);
  };

/**
 * The preparation of "prepared": pairs for 80% of the cap (protected, in both segmented stores), then
 * one-shot sessions to the cap.
 */
async function prepare(a: Attacker, cap: number): Promise<void> {
  const kept = Math.floor(cap * 0.8);
  for (let i = 0; i < kept; i++) await a.read(await a.create());
  while (a.own.length < cap) await a.create();
}

const attacks: Array<{ name: string; prepared: boolean; strategies: Record<string, Strategy> }> = [
  { name: '1. create-only', prepared: false, strategies: { 'create-only': createOnly } },
  { name: '2. create+read pairs', prepared: false, strategies: { pairs } },
  {
    name: '3. re-reads of its own sessions',
    prepared: false,
    strategies: {
      'create, read 6 times': pump(6),
      'create, read 14 times': pump(14),
      'one-shots to the cap, then create, read 6 times': oneShotsThen(pump(6)),
      'pairs to 80% of the cap, then create-only': pairsThen(createOnly),
      'create, read 5% of the cap later': readLater(0.05),
      'create, read 50% of the cap later': readLater(0.5),
      'pairs, keeping protected fresh': pairsKeepingFresh,
    },
  },
  {
    name: '3. prepared',
    prepared: true,
    strategies: {
      'read each once, then create-only': rotateThen(createOnly),
      'read each once, then pairs': rotateThen(pairs),
      pairs,
      'create-only': createOnly,
      'create, read twice': pump(2),
      'create, read 6 times': pump(6),
    },
  },
];

const policies: Array<{ name: string; make: (cap: number) => Store }> = [];

async function loadBefore(): Promise<(cap: number) => Store> {
  const source = execFileSync('git', ['show', `${BEFORE}:app/stores/memory.ts`], {
    cwd: new URL('../..', import.meta.url),
    encoding: 'utf8',
  });
  const dir = mkdtempSync(join(tmpdir(), 'eviction-cost-'));
  const file = join(dir, 'memory.ts');
  const strings = new URL('../../app/strings.ts', import.meta.url).href;
  writeFileSync(file, source.replace("'../strings.ts'", JSON.stringify(strings)));
  const module = (await import(pathToFileURL(file).href)) as { MemoryStore: typeof MemoryStore };
  rmSync(dir, { recursive: true });
  return (cap) => new module.MemoryStore({ maxEntries: cap, sweepIntervalMs: 3_600_000, now: () => 0 });
}

/** The attacker's requests until the user is gone, or undefined if it survives LIMIT × cap. */
async function cost(make: (cap: number) => Store, cap: number, strategy: Strategy, prepared: boolean) {
  userGone = false;
  const store = make(cap);
  const attacker = new Attacker(store);
  if (prepared) await prepare(attacker, cap);
  await store.create(USER, TEXT, TTL);
  for (let i = 0; i < 5; i++) await store.get(USER, TTL);
  if (userGone) throw new Error('the user did not get established');
  attacker.requests = 0;
  attacker.limit = LIMIT * cap;
  await strategy(attacker, cap);
  await store.close();
  return userGone ? attacker.requests : undefined;
}

const show = (requests: number | undefined, cap: number) =>
  requests === undefined
    ? `survives ${LIMIT}×`
    : `${requests.toLocaleString('en')} (${(requests / cap).toFixed(requests < 10 * cap ? 2 : 1)}×)`;

// The store's earlier policy comes from git history; a clone without that commit measures the others.
const before = await loadBefore().catch(() => {
  process.stderr.write(`the segmented LRU of ${BEFORE.slice(0, 7)} is not in this clone's history: left out\n`);
  return undefined;
});
if (before) policies.push({ name: 'segmented LRU (before)', make: before });
policies.push(
  { name: 'W-TinyLFU (simulated)', make: (cap) => new WTinyLfu(cap) },
  {
    name: 'seniority (now)',
    make: (cap) => new MemoryStore({ maxEntries: cap, sweepIntervalMs: 3_600_000, now: () => 0 }),
  },
);

const header = `| attack | policy | ${CAPS.map((cap) => `cap ${cap.toLocaleString('en')}`).join(' | ')} | cheapest strategy |`;
process.stdout.write(`${header}\n${header.replace(/[^|]+/g, ' --- ')}\n`);
for (const attack of attacks) {
  for (const policy of policies) {
    const cells: string[] = [];
    const best = new Set<string>();
    for (const cap of CAPS) {
      let cheapest: { name: string; requests: number | undefined } | undefined;
      for (const [name, strategy] of Object.entries(attack.strategies)) {
        const requests = await cost(policy.make, cap, strategy, attack.prepared);
        if (cheapest === undefined || (requests !== undefined && (cheapest.requests ?? Infinity) > requests))
          cheapest = { name, requests };
      }
      cells.push(show(cheapest?.requests, cap));
      if (cheapest?.requests !== undefined) best.add(cheapest.name);
    }
    const strategies = Object.keys(attack.strategies).length > 1 ? [...best].join('; ') : '';
    process.stdout.write(`| ${attack.name} | ${policy.name} | ${cells.join(' | ')} | ${strategies} |\n`);
  }
}

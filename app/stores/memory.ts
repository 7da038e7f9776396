/**
 * Sessions in this process's memory, as GoFrame's StorageMemory: fast, gone on restart, and not shared
 * between processes (use the Redis store for that).
 *
 * One Map holds every session. Its insertion order is kept as recency order (a read or write moves
 * the entry to the end), which gives LRU eviction in O(1): the first key is the least recently used.
 * Each entry keeps a serialized copy, so no request ever shares an object with the store or with
 * another request, exactly as with a networked store.
 */
import { ownCopy } from '../strings.ts';
import { idleLifetimeMs, type MaxAge, type SessionStore, type StoreHealth, type StoredSession } from './store.ts';

export interface MemoryStoreOptions {
  /** Idle lifetime used when a call brings none of its own. */
  readonly defaultMaxAgeMs: number;
  /** The most sessions held; past it the least recently used one is evicted. */
  readonly maxEntries: number;
  /** How often the background sweep starts a pass over the sessions. */
  readonly sweepIntervalMs?: number;
  /** Entries looked at per sweep step; the pass yields to the event loop between steps. */
  readonly sweepBatchSize?: number;
  /** Injectable clock for tests. */
  readonly now?: () => number;
}

export interface MemoryStoreStats {
  readonly hits: number;
  readonly misses: number;
  readonly expired: number;
  readonly evicted: number;
}

interface Entry {
  /** The Map key, kept so that a touch re-inserts this string and not the caller's (see strings.ts). */
  readonly key: string;
  readonly json: string;
  expiresAt: number;
}

export class MemoryStore implements SessionStore {
  readonly kind = 'memory';
  readonly #entries = new Map<string, Entry>();
  readonly #defaultMaxAgeMs: number;
  readonly #maxEntries: number;
  readonly #sweepBatchSize: number;
  readonly #now: () => number;
  readonly #sweepTimer: NodeJS.Timeout;
  #sweepCursor: MapIterator<Entry> | undefined;
  #sweepStep: NodeJS.Immediate | undefined;
  #hits = 0;
  #misses = 0;
  #expired = 0;
  #evicted = 0;

  constructor(options: MemoryStoreOptions) {
    this.#defaultMaxAgeMs = options.defaultMaxAgeMs;
    this.#maxEntries = options.maxEntries;
    this.#sweepBatchSize = options.sweepBatchSize ?? 5_000;
    this.#now = options.now ?? Date.now;
    // unref: a pending sweep never keeps the process alive.
    this.#sweepTimer = setInterval(() => this.#startSweep(), options.sweepIntervalMs ?? 5_000).unref();
  }

  get size(): number {
    return this.#entries.size;
  }

  get stats(): MemoryStoreStats {
    return { hits: this.#hits, misses: this.#misses, expired: this.#expired, evicted: this.#evicted };
  }

  async get(id: string, maxAge?: MaxAge): Promise<StoredSession | undefined> {
    const entry = this.#entries.get(id);
    const now = this.#now();
    if (entry === undefined || this.#dropIfExpired(entry, now)) {
      this.#misses++;
      return undefined;
    }
    this.#hits++;
    entry.expiresAt = now + idleLifetimeMs(maxAge, this.#defaultMaxAgeMs);
    this.#touch(entry);
    return JSON.parse(entry.json) as StoredSession;
  }

  async set(id: string, session: StoredSession, maxAge?: MaxAge): Promise<void> {
    const key = this.#entries.get(id)?.key ?? ownCopy(id);
    const entry: Entry = { key, json: ownCopy(JSON.stringify(session)), expiresAt: this.#now() + idleLifetimeMs(maxAge, this.#defaultMaxAgeMs) };
    this.#touch(entry);
    if (this.#entries.size > this.#maxEntries) this.#evictLeastRecentlyUsed();
  }

  async destroy(id: string): Promise<void> {
    this.#entries.delete(id);
  }

  async health(): Promise<StoreHealth> {
    return { ok: true, sessions: this.#entries.size };
  }

  clear(): void {
    this.#entries.clear();
  }

  async close(): Promise<void> {
    clearInterval(this.#sweepTimer);
    if (this.#sweepStep) clearImmediate(this.#sweepStep);
    this.#sweepStep = undefined;
    this.#sweepCursor = undefined;
  }

  /** Runs a sweep pass right away (tests and benchmarks use it; the timer does the same). */
  sweep(): void {
    this.#startSweep();
  }

  /** Puts the entry at the most recently used end of the Map. */
  #touch(entry: Entry): void {
    this.#entries.delete(entry.key);
    this.#entries.set(entry.key, entry);
  }

  #dropIfExpired(entry: Entry, now: number): boolean {
    if (entry.expiresAt > now) return false;
    this.#entries.delete(entry.key);
    this.#expired++;
    return true;
  }

  #evictLeastRecentlyUsed(): void {
    const oldest = this.#entries.values().next();
    if (oldest.done) return;
    // An expired entry at the front is reclaimed, not evicted: it was already dead.
    if (this.#dropIfExpired(oldest.value, this.#now())) return;
    this.#entries.delete(oldest.value.key);
    this.#evicted++;
  }

  /**
   * One pass over every entry, reclaiming the expired ones, in steps of at most sweepBatchSize
   * entries with a yield to the event loop between steps: a million sessions never pause the server
   * for long. Map iterators stay valid while entries are deleted or added.
   */
  #startSweep(): void {
    if (this.#sweepCursor) return; // a pass is already under way
    this.#sweepCursor = this.#entries.values(); // entries carry their key: no [key, value] pair per step
    this.#sweepBatch();
  }

  #sweepBatch(): void {
    this.#sweepStep = undefined;
    const cursor = this.#sweepCursor;
    if (!cursor) return;
    const now = this.#now();
    for (let looked = 0; looked < this.#sweepBatchSize; looked++) {
      const next = cursor.next();
      if (next.done) {
        this.#sweepCursor = undefined;
        return;
      }
      this.#dropIfExpired(next.value, now);
    }
    this.#sweepStep = setImmediate(() => this.#sweepBatch()).unref();
  }
}

/**
 * Sessions in this process's memory, as GoFrame's StorageMemory: fast, gone on restart, and not shared
 * between processes (use the Redis store for that). It keeps the text the session layer hands it, with
 * a sliding idle lifetime, under the conditional contract of store.ts (create only if unused, update
 * only if still there, destroy says whether it was).
 *
 * Eviction is scan-resistant: a segmented LRU, as the main space of Caffeine's W-TinyLFU. A bounded
 * store evicts something when it is full, and a plain LRU evicts whatever was used least recently. A
 * flood of one-shot sessions (a crawler, a load test, a client that drops cookies: every request
 * makes a session that is never read again) is always "more recent" than a user who last clicked a
 * minute ago, so with plain LRU a flood of maxEntries such requests logs out every real user. Here
 * the sessions are split in two segments:
 *
 * - probation: where every new session starts. Most one-shot sessions die here.
 * - protected: sessions that were read again after the request that created them (a `get` hit on a
 *   probation entry promotes it). Real users who come back live here. At most protectedShare of
 *   maxEntries (80% by default); when a promotion takes it past that, its least recent entry is
 *   demoted to the most recent end of probation (so it gets one more chance to be read before it
 *   could be evicted), or dropped if it has expired.
 *
 * When a create finds the store full, the least recent entry of probation makes room (it is counted
 * as expired, not evicted, when it had expired anyway); only when probation is empty does protected
 * give up its least recent entry. A flood therefore churns through probation and cannot push out the
 * users in protected: measured in test/memory-store.test.ts, a user who came back once survives ten
 * times maxEntries one-shot sessions. The price is paid by brand-new sessions during such a flood:
 * one must be read again before the flood has pushed it out of probation (at least 20% of
 * maxEntries newer sessions with the default share), as with any LRU, only in a smaller space.
 * The cap is absolute: size never exceeds maxEntries.
 *
 * One Map finds an entry by id; each segment keeps its entries in recency order in a doubly linked
 * list through the entries (least recent first), so every operation is O(1). Not a Map per segment
 * in insertion order (delete and re-insert to move an entry to the end, the first key the least
 * recent), though that is the usual trick: in V8, deleted Map entries stay as holes in the table
 * until the next rehash and a fresh `map.keys().next()` walks over every hole before the first live
 * entry, so finding the least recent entry costs O(holes), not O(1) (measured on Node 20: 34 µs per
 * create at the cap of 100k sessions that way, under 3 µs with the lists, ownCopy included); and a
 * Map iterator kept alive to step over each hole once holds on to every table the Map has outgrown or
 * rehashed away from until it is next advanced (measured: 100 MB kept by one idle iterator over a
 * 10k-entry Map after 2M moves). The lists cost two references per entry (222 heap bytes per stored
 * session at 100k, test/bench/heap.ts), and moving an entry leaves the Map untouched.
 *
 * Entries hold flat copies of the text and the id (ownCopy, see strings.ts), so a stored session
 * never keeps a request's buffers alive. Expired entries are reclaimed when touched, when eviction
 * meets them, and by an incremental sweep on an unref'd timer that looks at sweepBatchSize entries
 * at a time and yields to the event loop between steps.
 */
import { ownCopy } from '../strings.ts';
import { MemoryUsers } from './memory-users.ts';
import type { SessionStore, StoreHealth } from './store.ts';

export interface MemoryStoreOptions {
  /** The most sessions held; past it the store evicts (see the policy above). */
  readonly maxEntries: number;
  /** The share of maxEntries the protected segment may hold, from 0 to 1; 0.8 by default. */
  readonly protectedShare?: number;
  /** How often the background sweep starts a pass over the sessions. */
  readonly sweepIntervalMs?: number;
  /** Entries looked at per sweep step; the pass yields to the event loop between steps. */
  readonly sweepBatchSize?: number;
  /** Injectable clock for tests. */
  readonly now?: () => number;
}

export interface MemoryStoreStats {
  /** Reads that found a live session. */
  readonly hits: number;
  /** Reads that found nothing (unknown, or expired just now). */
  readonly misses: number;
  /** Entries reclaimed because their lifetime had run out, however they were found. */
  readonly expired: number;
  /** Live sessions evicted from probation to make room: mostly sessions never used again. */
  readonly evictedProbation: number;
  /** Live sessions evicted from protected: only when probation was empty. */
  readonly evictedProtected: number;
}

/** The ids in each segment, least recent first. */
export interface MemoryStoreSegments {
  readonly probation: string[];
  readonly protected: string[];
}

/** A stored session, and a link in its segment's recency list. */
class Entry {
  /** The Map key, kept flat (see strings.ts). */
  readonly key: string;
  text: string;
  expiresAt: number;
  /** The segment whose list holds the entry (null only for a list's sentinel). */
  segment: Segment | null;
  /** The next less recent entry, or the sentinel. */
  prev: Entry;
  /** The next more recent entry, or the sentinel. */
  next: Entry;

  constructor(key: string, text: string, expiresAt: number, segment: Segment | null) {
    this.key = key;
    this.text = text;
    this.expiresAt = expiresAt;
    this.segment = segment;
    this.prev = this;
    this.next = this;
  }
}

/** A segment: a circular doubly linked list around a sentinel, least recent first. */
class Segment {
  /** sentinel.next is the least recent entry, sentinel.prev the most recent. */
  readonly #sentinel = new Entry('', '', 0, null);
  size = 0;

  get leastRecent(): Entry | undefined {
    const first = this.#sentinel.next;
    return first === this.#sentinel ? undefined : first;
  }

  /** Links the entry in as the most recent; it must be in no list. */
  append(entry: Entry): void {
    const last = this.#sentinel.prev;
    entry.prev = last;
    entry.next = this.#sentinel;
    last.next = entry;
    this.#sentinel.prev = entry;
    entry.segment = this;
    this.size++;
  }

  remove(entry: Entry): void {
    entry.prev.next = entry.next;
    entry.next.prev = entry.prev;
    entry.prev = entry;
    entry.next = entry;
    entry.segment = null;
    this.size--;
  }

  /** Makes an entry of this segment the most recent. */
  touch(entry: Entry): void {
    if (this.#sentinel.prev === entry) return;
    this.remove(entry);
    this.append(entry);
  }

  /** The ids, least recent first. */
  ids(): string[] {
    const ids: string[] = [];
    for (let entry = this.#sentinel.next; entry !== this.#sentinel; entry = entry.next) ids.push(entry.key);
    return ids;
  }

  clear(): void {
    this.#sentinel.prev = this.#sentinel;
    this.#sentinel.next = this.#sentinel;
    this.size = 0;
  }
}

/** ttlMs comes from the session layer and is always a positive integer; anything else is a bug there. */
function checkTtl(ttlMs: number): void {
  if (!(Number.isInteger(ttlMs) && ttlMs > 0)) throw new RangeError(`ttlMs must be a positive integer, not ${ttlMs}`);
}

export class MemoryStore implements SessionStore {
  readonly kind = 'memory';
  /** Users' signed-in sessions (memory-users.ts): told here when a session is expired or evicted. */
  readonly users: MemoryUsers;
  readonly #entries = new Map<string, Entry>();
  readonly #probation = new Segment();
  readonly #protected = new Segment();
  readonly #maxEntries: number;
  readonly #maxProtected: number;
  readonly #sweepBatchSize: number;
  readonly #now: () => number;
  readonly #sweepTimer: NodeJS.Timeout;
  #sweep: { cursor: MapIterator<Entry>; done: Promise<void>; finish: () => void; keepAlive: boolean } | undefined;
  #sweepStep: NodeJS.Immediate | undefined;
  #hits = 0;
  #misses = 0;
  #expired = 0;
  #evictedProbation = 0;
  #evictedProtected = 0;

  constructor(options: MemoryStoreOptions) {
    const { maxEntries, protectedShare = 0.8 } = options;
    if (!(Number.isSafeInteger(maxEntries) && maxEntries > 0))
      throw new RangeError(`maxEntries must be a positive integer, not ${maxEntries}`);
    if (!(protectedShare >= 0 && protectedShare <= 1))
      throw new RangeError(`protectedShare must be from 0 to 1, not ${protectedShare}`);
    this.#maxEntries = maxEntries;
    this.#maxProtected = Math.floor(maxEntries * protectedShare);
    this.#sweepBatchSize = Math.max(1, options.sweepBatchSize ?? 5_000);
    this.#now = options.now ?? Date.now;
    this.users = new MemoryUsers({ now: this.#now, sweepBatchSize: options.sweepBatchSize });
    // unref: a pending sweep never keeps the process alive.
    this.#sweepTimer = setInterval(() => {
      void this.#startSweep(false);
      this.users.startSweep(); // the users' lists sweep on the same beat (memory-users.ts)
    }, options.sweepIntervalMs ?? 5_000).unref();
  }

  get size(): number {
    return this.#entries.size;
  }

  get stats(): MemoryStoreStats {
    return {
      hits: this.#hits,
      misses: this.#misses,
      expired: this.#expired,
      evictedProbation: this.#evictedProbation,
      evictedProtected: this.#evictedProtected,
    };
  }

  /** The ids in each segment, least recent first: O(size), for tests and debugging. */
  segments(): MemoryStoreSegments {
    return { probation: this.#probation.ids(), protected: this.#protected.ids() };
  }

  async get(id: string, ttlMs: number): Promise<string | undefined> {
    checkTtl(ttlMs);
    const now = this.#now();
    const entry = this.#live(id, now);
    if (entry === undefined) {
      this.#misses++;
      return undefined;
    }
    this.#hits++;
    entry.expiresAt = now + ttlMs;
    if (entry.segment === this.#protected) {
      this.#protected.touch(entry);
    } else {
      // Used again after the request that created it: promote.
      this.#probation.remove(entry);
      this.#protected.append(entry);
      if (this.#protected.size > this.#maxProtected) this.#demote(now);
    }
    return entry.text;
  }

  async create(id: string, text: string, ttlMs: number): Promise<boolean> {
    checkTtl(ttlMs);
    const now = this.#now();
    if (this.#live(id, now) !== undefined) return false;
    if (this.#entries.size >= this.#maxEntries) this.#makeRoom(now);
    const entry = new Entry(ownCopy(id), ownCopy(text), now + ttlMs, null);
    this.#entries.set(entry.key, entry);
    this.#probation.append(entry);
    return true;
  }

  async update(id: string, text: string, ttlMs: number): Promise<boolean> {
    checkTtl(ttlMs);
    const now = this.#now();
    const entry = this.#live(id, now);
    if (entry === undefined) return false;
    entry.text = ownCopy(text);
    entry.expiresAt = now + ttlMs;
    entry.segment?.touch(entry); // stays in its segment (a live entry always has one)
    return true;
  }

  async destroy(id: string): Promise<boolean> {
    const entry = this.#live(id, this.#now());
    if (entry === undefined) return false;
    this.#remove(entry);
    return true;
  }

  async health(): Promise<StoreHealth> {
    return { ok: true, sessions: this.#entries.size };
  }

  clear(): void {
    this.users.clear();
    this.#entries.clear();
    this.#probation.clear();
    this.#protected.clear();
  }

  async close(): Promise<void> {
    this.users.close();
    clearInterval(this.#sweepTimer);
    this.#endSweep();
  }

  /**
   * Starts a sweep pass right away (the timer does the same) and resolves when it ends, or when
   * close() stops it; while a pass is under way, returns that pass's promise. The first step runs
   * before this returns. A pass the timer started never keeps the process alive; one asked for here
   * does, so that the promise settles.
   */
  sweep(): Promise<void> {
    return this.#startSweep(true);
  }

  /** The entry under id if it is alive; an expired one is reclaimed and counts as absent. */
  #live(id: string, now: number): Entry | undefined {
    const entry = this.#entries.get(id);
    if (entry === undefined || this.#dropIfExpired(entry, now)) return undefined;
    return entry;
  }

  #remove(entry: Entry): void {
    this.#entries.delete(entry.key);
    entry.segment?.remove(entry);
  }

  #dropIfExpired(entry: Entry, now: number): boolean {
    if (entry.expiresAt > now) return false;
    this.#remove(entry);
    this.users.forget(entry.key);
    this.#expired++;
    return true;
  }

  /** Protected is over its share: its least recent entry goes back to probation, or away if expired. */
  #demote(now: number): void {
    const entry = this.#protected.leastRecent;
    if (entry === undefined || this.#dropIfExpired(entry, now)) return;
    this.#protected.remove(entry);
    this.#probation.append(entry);
  }

  /** Frees one place: the least recent entry of probation, or of protected when probation is empty. */
  #makeRoom(now: number): void {
    const fromProbation = this.#probation.size > 0;
    const victim = (fromProbation ? this.#probation : this.#protected).leastRecent;
    if (victim === undefined || this.#dropIfExpired(victim, now)) return; // an expired one was dead already
    this.#remove(victim);
    this.users.forget(victim.key);
    if (fromProbation) this.#evictedProbation++;
    else this.#evictedProtected++;
  }

  #startSweep(keepAlive: boolean): Promise<void> {
    if (this.#sweep) {
      if (keepAlive && !this.#sweep.keepAlive) {
        // sweep() joins a pass the timer started: from now on its steps hold the process, so the
        // promise it returns settles (the step already scheduled was unref'd).
        this.#sweep.keepAlive = true;
        this.#sweepStep?.ref();
      }
      return this.#sweep.done;
    }
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    // entries carry their key: no [key, value] pair per step
    this.#sweep = { cursor: this.#entries.values(), done, finish, keepAlive };
    this.#sweepBatch();
    return done;
  }

  /**
   * One step of a pass over every entry, reclaiming the expired ones: at most sweepBatchSize entries,
   * then a yield to the event loop, so a million sessions never pause the server for long. A Map
   * iterator stays valid while entries are deleted or added, and entries never move in the Map, so
   * the pass sees each entry once (and those created during the pass).
   */
  #sweepBatch(): void {
    this.#sweepStep = undefined;
    const sweep = this.#sweep;
    if (!sweep) return;
    const now = this.#now();
    for (let looked = 0; looked < this.#sweepBatchSize; looked++) {
      const next = sweep.cursor.next();
      if (next.done) {
        this.#endSweep();
        return;
      }
      this.#dropIfExpired(next.value, now);
    }
    this.#sweepStep = setImmediate(() => this.#sweepBatch());
    if (!sweep.keepAlive) this.#sweepStep.unref();
  }

  #endSweep(): void {
    if (this.#sweepStep) clearImmediate(this.#sweepStep);
    this.#sweepStep = undefined;
    const sweep = this.#sweep;
    this.#sweep = undefined;
    sweep?.finish();
  }
}

/**
 * Sessions in this process's memory, as GoFrame's StorageMemory: fast, gone on restart, and not shared
 * between processes (use the Redis store for that). It keeps the text the session layer hands it, with
 * a sliding idle lifetime, under the conditional contract of store.ts (create only if unused, update
 * only if still there, destroy says whether it was).
 *
 * Eviction. A bounded store must drop a live session when it is full, and dropping one logs a user
 * out; which one goes decides what it costs a client to log out the others. A plain LRU drops the
 * least recently used: a flood of one-shot sessions (a crawler, a load test, a client that drops
 * cookies) as large as the store pushes out every user. A segmented LRU (new sessions on probation,
 * those read again protected) stops one-shot floods, but not a client that reads its own sessions
 * back: each one it promotes pushes the least recently used user out of protected. Frequency-based
 * admission (W-TinyLFU) only makes that client read each of its sessions once more than the user
 * did, since the store cannot tell its sessions from a user's, and it has no limit on sessions. So
 * the rule here is seniority, with decay: a session that has become established keeps its place in
 * protected until it has gone unused for long enough, and no newer session, however often it is
 * read, can take that place. To log out an established user, a client must keep the server busy
 * until that user's count of uses has decayed. docs/memory-store-eviction.md has the measures, the
 * attacks tried, and what this costs.
 *
 * - Uses: each session counts its uses (its creation and every read that finds it) in 4 bits, as the
 *   counters of Caffeine's sketch. The count halves for every HALF_LIFE epochs in which it is not
 *   used; an epoch is maxEntries ticks of a clock that ticks once per create and per read that finds
 *   a session, at most once per request. Decay is lazy: an entry keeps its count as of the epoch of
 *   its last use, and counts are read through decayed().
 * - Established: decayed uses of at least 2, that is read at least once after the request that
 *   created it (and not idle since for a half-life, or more for a session used more often).
 * - probation: where every new session starts, and where an established session waits while
 *   protected is full.
 * - protected: established sessions, at most protectedShare of maxEntries. A read that leaves a
 *   probation session established promotes it if protected has room, or if protected's first entry
 *   has expired (dropped) or is no longer established (demoted to probation). Otherwise it waits:
 *   a session established in protected is never displaced for a newer one.
 * - In each segment the first to go is the one of lowest standing (uses decayed to 0, then 1, then
 *   established), then the one unused longest, then the one with fewer uses. A full store drops
 *   probation's first entry, so one-shot sessions go before sessions read again, including those
 *   waiting; protected gives one up only when probation is empty (only with protectedShare 1). The
 *   cap is absolute: size never exceeds maxEntries. An entry met expired is counted as expired.
 *
 * The price of seniority: when protected is full of live established sessions, newcomers wait in
 * probation rather than displacing anyone, and a user who arrives while a client's sessions fill
 * protected is not protected. Updates change the text and the lifetime only: the session layer reads a
 * session before it writes it, and that read has counted.
 *
 * One Map finds an entry by id. Each segment keeps its entries in five doubly linked lists by count
 * (0, 1, 2-3, 4-7, 8-15), each in order of last use, so in each list the head has decayed most and a
 * segment's first entry is one of five heads: every operation is O(1). Not a Map per segment in
 * insertion order (delete and re-insert to move an entry to the end, the first key the oldest),
 * though that is the usual trick: in V8, deleted Map entries stay as holes in the table until the
 * next rehash and `map.keys().next()` walks over every hole before the first live entry, so finding
 * the oldest costs O(holes); and a Map iterator kept alive to step over each hole once holds on to
 * every table the Map has outgrown or rehashed away from until it is next advanced.
 *
 * Entries hold flat copies of the text and the id (ownCopy, see strings.ts), so a stored session
 * never keeps a request's buffers alive. Expired entries are reclaimed when touched, when eviction or
 * promotion meets them, and by an incremental sweep on an unref'd timer that looks at sweepBatchSize
 * entries at a time and yields to the event loop between steps.
 */
import { ownCopy } from '../strings.ts';
import { MemoryUsers } from './memory-users.ts';
import type { SessionStore, StoreHealth } from './store.ts';

/** Uses are counted in 4 bits: a count saturates here. */
const MAX_USES = 15;
/** Decayed uses from which a session is established: its creation and one read. */
const ESTABLISHED = 2;
/** Epochs unused that halve a count; an epoch is maxEntries ticks. */
const HALF_LIFE = 10;
/** Lists per segment, one per bit length of the count: 0, 1, 2-3, 4-7, 8-15. */
const LISTS = 5;

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

/** The ids in each segment, the first to go first. */
export interface MemoryStoreSegments {
  readonly probation: string[];
  readonly protected: string[];
}

/** A stored session, and a link in one of its segment's lists. */
class Entry {
  /** The Map key, kept flat (see strings.ts). */
  readonly key: string;
  text: string;
  expiresAt: number;
  /** Uses, 0 to MAX_USES, as of the epoch usedIn; read through decayed(). */
  uses: number;
  /** The epoch of the last use (or of the last decay written back). */
  usedIn: number;
  /** The segment whose list holds the entry (null for a sentinel, and for an entry between lists). */
  segment: Segment | null = null;
  /** The next older entry of the list, or the sentinel. */
  prev: Entry;
  /** The next newer entry of the list, or the sentinel. */
  next: Entry;

  constructor(key: string, text: string, expiresAt: number, uses: number, usedIn: number) {
    this.key = key;
    this.text = text;
    this.expiresAt = expiresAt;
    this.uses = uses;
    this.usedIn = usedIn;
    this.prev = this;
    this.next = this;
  }
}

/** The entry's count of uses as of the given epoch: halved once per HALF_LIFE epochs since usedIn. */
function decayed(entry: Entry, epoch: number): number {
  const halvings = Math.floor((epoch - entry.usedIn) / HALF_LIFE);
  return halvings > 3 ? 0 : entry.uses >> halvings; // 15 halves to 0 in four
}

/** 0 (forgotten), 1 (used once) or 2 (established): what decides which entry goes first. */
function standing(entry: Entry, epoch: number): number {
  return Math.min(decayed(entry, epoch), ESTABLISHED);
}

/**
 * A segment: five circular doubly linked lists around sentinels, one per bit length of the count,
 * each oldest first. Entries join a list at its newest end, with usedIn the current epoch, so within a
 * list usedIn never decreases and standing never decreases from the head on: the head is the first
 * to go of its list.
 */
class Segment {
  readonly #lists: Entry[] = Array.from({ length: LISTS }, () => new Entry('', '', 0, 0, 0));
  size = 0;

  /** The first to go: lowest standing, then oldest use, then fewer uses (the lower list). */
  first(epoch: number): Entry | undefined {
    let first: Entry | undefined;
    let firstStanding = 0;
    for (const sentinel of this.#lists) {
      const head = sentinel.next;
      if (head === sentinel) continue;
      const headStanding = standing(head, epoch);
      if (
        first === undefined ||
        headStanding < firstStanding ||
        (headStanding === firstStanding && head.usedIn < first.usedIn)
      ) {
        first = head;
        firstStanding = headStanding;
      }
    }
    return first;
  }

  /** Links the entry in as the newest of the list for its count; it must be in no list. */
  add(entry: Entry): void {
    const sentinel = this.#lists[32 - Math.clz32(entry.uses)];
    const last = sentinel.prev;
    entry.prev = last;
    entry.next = sentinel;
    last.next = entry;
    sentinel.prev = entry;
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

  /** The ids, the first to go first: O(size log size), for tests and debugging. */
  ids(epoch: number): string[] {
    const entries: Entry[] = [];
    for (const sentinel of this.#lists)
      for (let entry = sentinel.next; entry !== sentinel; entry = entry.next) entries.push(entry);
    // A stable sort: ties keep list order, lower lists first, each oldest first.
    entries.sort((a, b) => standing(a, epoch) - standing(b, epoch) || a.usedIn - b.usedIn);
    return entries.map((entry) => entry.key);
  }

  clear(): void {
    for (const sentinel of this.#lists) {
      sentinel.prev = sentinel;
      sentinel.next = sentinel;
    }
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
  /** The decay clock: the current epoch, and the ticks left in it. */
  #epoch = 0;
  #ticksLeft: number;
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
    this.#ticksLeft = maxEntries;
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

  /** The ids in each segment, the first to go first (as of now): O(size log size), for tests and debugging. */
  segments(): MemoryStoreSegments {
    return { probation: this.#probation.ids(this.#epoch), protected: this.#protected.ids(this.#epoch) };
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
    this.#tick();
    entry.expiresAt = now + ttlMs;
    const wasProtected = entry.segment === this.#protected;
    const uses = Math.min(MAX_USES, decayed(entry, this.#epoch) + 1);
    (wasProtected ? this.#protected : this.#probation).remove(entry);
    entry.uses = uses;
    entry.usedIn = this.#epoch;
    if (wasProtected || (uses >= ESTABLISHED && this.#roomInProtected(now))) this.#protected.add(entry);
    else this.#probation.add(entry);
    return entry.text;
  }

  async create(id: string, text: string, ttlMs: number): Promise<boolean> {
    checkTtl(ttlMs);
    const now = this.#now();
    if (this.#live(id, now) !== undefined) return false;
    this.#tick();
    if (this.#entries.size >= this.#maxEntries) this.#makeRoom(now);
    const entry = new Entry(ownCopy(id), ownCopy(text), now + ttlMs, 1, this.#epoch);
    this.#entries.set(entry.key, entry);
    this.#probation.add(entry);
    return true;
  }

  async update(id: string, text: string, ttlMs: number): Promise<boolean> {
    checkTtl(ttlMs);
    const now = this.#now();
    const entry = this.#live(id, now);
    if (entry === undefined) return false;
    entry.text = ownCopy(text);
    entry.expiresAt = now + ttlMs;
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

  /** One tick of the decay clock: a create, or a read that found a session. */
  #tick(): void {
    if (--this.#ticksLeft > 0) return;
    this.#ticksLeft = this.#maxEntries;
    this.#epoch++;
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

  /**
   * Whether protected can take one more session: it has room, or its first entry has expired (it is
   * dropped) or is no longer established (it is demoted to probation, its decay written back). An
   * established session is never displaced.
   */
  #roomInProtected(now: number): boolean {
    if (this.#protected.size < this.#maxProtected) return true;
    const first = this.#protected.first(this.#epoch);
    if (first === undefined) return false; // protected holds nothing at all (protectedShare 0)
    if (this.#dropIfExpired(first, now)) return true;
    const uses = decayed(first, this.#epoch);
    if (uses >= ESTABLISHED) return false;
    this.#protected.remove(first);
    first.uses = uses;
    first.usedIn = this.#epoch;
    this.#probation.add(first);
    return true;
  }

  /** Frees one place: probation's first entry, or protected's when probation is empty. */
  #makeRoom(now: number): void {
    const fromProbation = this.#probation.size > 0;
    const victim = (fromProbation ? this.#probation : this.#protected).first(this.#epoch);
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

/**
 * The memory store's users (the UserSessionIndex of store.ts): per user an epoch and the list of their
 * signed-in sessions, in this process's memory. The memory store tells it when it evicts or expires a
 * session (`forget`), so an entry goes with its session, not later. Explicit destroys are unlisted by the
 * session layer, which alone knows whether a destroyed session moves on (regenerate()) or ends (logout).
 *
 * Bounded: an entry per listed session, at most `maxEntries` per user. Expired entries are dropped as
 * calls meet them and by an incremental sweep the memory store starts with its own (a batch of users per
 * step, a yield between steps), which also drops a user's record once it holds no entry and no epoch that
 * must still be kept.
 */
import { ownCopy } from '../strings.ts';
import type { UserSessionEntry, UserSessionIndex } from './store.ts';

interface Entry {
  readonly handle: string;
  storeKey: string;
  readonly label: string;
  readonly createdAt: number;
  lastUsedAt: number;
  expiresAt: number;
}

class UserRecord {
  /** The Map key, kept flat (see strings.ts). */
  readonly user: string;
  epoch = 0;
  /** The epoch is kept until then even with no entries (endAll). */
  keepUntil = 0;
  readonly entries = new Map<string, Entry>();

  constructor(user: string) {
    this.user = user;
  }
}

export interface MemoryUsersOptions {
  readonly now: () => number;
  /** Users looked at per sweep step; the pass yields to the event loop between steps. */
  readonly sweepBatchSize?: number;
}

export class MemoryUsers implements UserSessionIndex {
  readonly #now: () => number;
  readonly #users = new Map<string, UserRecord>();
  /** Store key → the record and handle listing it: what `forget` needs. */
  readonly #byStoreKey = new Map<string, { readonly record: UserRecord; readonly handle: string }>();
  readonly #sweepBatchSize: number;
  #sweep: MapIterator<UserRecord> | undefined;
  #sweepStep: NodeJS.Immediate | undefined;

  constructor(options: MemoryUsersOptions) {
    this.#now = options.now;
    this.#sweepBatchSize = Math.max(1, options.sweepBatchSize ?? 5_000);
  }

  /** How many users have a record, and how many entries the lists hold (for tests and monitoring). */
  get counts(): { readonly users: number; readonly entries: number } {
    return { users: this.#users.size, entries: this.#byStoreKey.size };
  }

  async add(
    user: string,
    entry: { readonly handle: string; readonly storeKey: string; readonly label: string },
    ttlMs: number,
    maxEntries: number,
  ): Promise<{ epoch: number; dropped: string[] }> {
    const now = this.#now();
    let record = this.#users.get(user);
    if (record === undefined) {
      record = new UserRecord(ownCopy(user));
      this.#users.set(record.user, record);
    }
    this.#pruneExpired(record, now);
    const dropped: string[] = [];
    if (record.entries.size >= maxEntries) {
      // The least recently used make room (the one with the earliest expiry was used longest ago).
      const byLastUse = [...record.entries.values()].sort((a, b) => a.expiresAt - b.expiresAt);
      for (const victim of byLastUse.slice(0, record.entries.size - maxEntries + 1)) {
        dropped.push(victim.storeKey);
        this.#unlist(record, victim);
      }
    }
    const listed: Entry = {
      handle: ownCopy(entry.handle),
      storeKey: ownCopy(entry.storeKey),
      label: ownCopy(entry.label),
      createdAt: now,
      lastUsedAt: now,
      expiresAt: now + ttlMs,
    };
    record.entries.set(listed.handle, listed);
    this.#byStoreKey.set(listed.storeKey, { record, handle: listed.handle });
    return { epoch: record.epoch, dropped };
  }

  async touch(user: string, handle: string, epoch: number, ttlMs: number, storeKey?: string): Promise<boolean> {
    const record = this.#users.get(user);
    const entry = record?.entries.get(handle);
    if (record === undefined || entry === undefined || record.epoch !== epoch) return false;
    const now = this.#now();
    entry.lastUsedAt = now;
    entry.expiresAt = now + ttlMs;
    if (storeKey !== undefined && storeKey !== entry.storeKey) {
      this.#byStoreKey.delete(entry.storeKey);
      entry.storeKey = ownCopy(storeKey);
      this.#byStoreKey.set(entry.storeKey, { record, handle: entry.handle });
    }
    return true;
  }

  async list(user: string): Promise<UserSessionEntry[]> {
    const record = this.#users.get(user);
    if (record === undefined) return [];
    const now = this.#now();
    this.#pruneExpired(record, now);
    this.#dropIfEmpty(record, now);
    return [...record.entries.values()].sort((a, b) => a.expiresAt - b.expiresAt).map((entry) => ({ ...entry }));
  }

  async remove(user: string, handle: string): Promise<string | undefined> {
    const record = this.#users.get(user);
    const entry = record?.entries.get(handle);
    if (record === undefined || entry === undefined) return undefined;
    this.#unlist(record, entry);
    this.#dropIfEmpty(record, this.#now());
    return entry.storeKey;
  }

  async endAll(user: string, keepEpochMs: number): Promise<string[]> {
    const now = this.#now();
    let record = this.#users.get(user);
    if (record === undefined) {
      record = new UserRecord(ownCopy(user));
      this.#users.set(record.user, record);
    }
    const storeKeys: string[] = [];
    for (const entry of record.entries.values()) {
      if (entry.expiresAt > now) storeKeys.push(entry.storeKey);
      this.#unlist(record, entry);
    }
    record.epoch++;
    record.keepUntil = Math.max(record.keepUntil, now + keepEpochMs);
    return storeKeys;
  }

  /** The memory store dropped this session on its own (expired or evicted): its entry goes too. */
  forget(storeKey: string): void {
    const listed = this.#byStoreKey.get(storeKey);
    if (listed === undefined) return;
    const entry = listed.record.entries.get(listed.handle);
    if (entry === undefined || entry.storeKey !== storeKey) {
      this.#byStoreKey.delete(storeKey);
      return;
    }
    this.#unlist(listed.record, entry);
    this.#dropIfEmpty(listed.record, this.#now());
  }

  clear(): void {
    this.#users.clear();
    this.#byStoreKey.clear();
    this.#sweep = undefined;
  }

  close(): void {
    if (this.#sweepStep) clearImmediate(this.#sweepStep);
    this.#sweepStep = undefined;
    this.#sweep = undefined;
  }

  /** Runs a whole sweep pass now (for tests); the timer runs the same pass in steps. */
  sweep(): void {
    if (this.#sweepStep) clearImmediate(this.#sweepStep);
    this.#sweepStep = undefined;
    this.#sweep ??= this.#users.values();
    while (!this.#sweepBatch());
  }

  /** Starts a sweep pass, in steps (the memory store's timer calls it); a pass under way goes on. */
  startSweep(): void {
    if (this.#sweep) return;
    this.#sweep = this.#users.values();
    this.#sweepSteps();
  }

  #sweepSteps(): void {
    this.#sweepStep = undefined;
    if (!this.#sweepBatch()) this.#sweepStep = setImmediate(() => this.#sweepSteps()).unref();
  }

  /** One batch of the pass under way; true when the pass is over. */
  #sweepBatch(): boolean {
    const cursor = this.#sweep;
    if (!cursor) return true;
    const now = this.#now();
    for (let looked = 0; looked < this.#sweepBatchSize; looked++) {
      const next = cursor.next();
      if (next.done) {
        this.#sweep = undefined;
        return true;
      }
      this.#pruneExpired(next.value, now);
      this.#dropIfEmpty(next.value, now);
    }
    return false;
  }

  #unlist(record: UserRecord, entry: Entry): void {
    record.entries.delete(entry.handle);
    if (this.#byStoreKey.get(entry.storeKey)?.handle === entry.handle) this.#byStoreKey.delete(entry.storeKey);
  }

  #pruneExpired(record: UserRecord, now: number): void {
    // Deleting from a Map while iterating it is safe: the iteration goes on with the next entry.
    for (const entry of record.entries.values()) if (entry.expiresAt <= now) this.#unlist(record, entry);
  }

  #dropIfEmpty(record: UserRecord, now: number): void {
    if (record.entries.size === 0 && record.keepUntil <= now && this.#users.get(record.user) === record)
      this.#users.delete(record.user);
  }
}

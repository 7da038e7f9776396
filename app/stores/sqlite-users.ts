/**
 * The SQLite store's users (the UserSessionIndex of store.ts), in the store's own file, with the same
 * semantics as memory-users.ts. Two tables (created with the store's schema, sqlite.ts):
 *
 * - `session_users` (user, epoch, keep_until): a row only once `endAll` bumped the user's epoch (a user
 *   without one is at epoch 0); it goes once the user holds no entry and keep_until has passed;
 * - `session_user_entries` (user, handle, store key, label, times): the signed-in sessions.
 *
 * Every call is one transaction (BEGIN IMMEDIATE … COMMIT), so it is one atomic step even for another
 * process on the file. A session the store drops on its own (evicted past the cap, swept when expired)
 * takes its entry with it in the same statement or transaction (sqlite.ts); explicit destroys are left to
 * the session layer, as with the memory store. Expired entries are dropped as calls meet them and by the
 * store's sweep, which also drops users left with nothing to keep.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { UserSessionEntry, UserSessionIndex } from './store.ts';

/** The users' part of the schema (sqlite.ts runs it with its own, in the same transaction). */
export const USERS_SCHEMA = `
  CREATE TABLE IF NOT EXISTS session_users (
    user TEXT PRIMARY KEY NOT NULL,
    epoch INTEGER NOT NULL,
    keep_until INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS session_users_by_keep ON session_users (keep_until);
  CREATE TABLE IF NOT EXISTS session_user_entries (
    user TEXT NOT NULL,
    handle TEXT NOT NULL,
    store_key TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL CHECK (typeof(expires_at) = 'integer'),
    UNIQUE (user, handle)
  );
  CREATE INDEX IF NOT EXISTS session_user_entries_by_key ON session_user_entries (store_key);
  CREATE INDEX IF NOT EXISTS session_user_entries_by_expiry ON session_user_entries (expires_at);
`;

/** Runs a statement as the store does (a closed store or a failing database is a StoreUnavailableError). */
export type Run = <T>(statement: () => T) => T;

/** Least recently used first: the earliest expiry was used longest ago; ties in the order they were listed. */
const LRU = 'ORDER BY expires_at, rowid';

export class SqliteUsers implements UserSessionIndex {
  readonly #db: DatabaseSync;
  readonly #run: Run;
  readonly #now: () => number;
  readonly #epoch: StatementSync;
  readonly #forgetUser: StatementSync;
  readonly #pruneUser: StatementSync;
  readonly #count: StatementSync;
  readonly #victims: StatementSync;
  readonly #unlist: StatementSync;
  readonly #insert: StatementSync;
  readonly #touch: StatementSync;
  readonly #listed: StatementSync;
  readonly #dropIfEmpty: StatementSync;
  readonly #storeKeyOf: StatementSync;
  readonly #liveKeys: StatementSync;
  readonly #unlistAll: StatementSync;
  readonly #bump: StatementSync;
  readonly #sweepEntries: StatementSync;
  readonly #sweepUsers: StatementSync;
  readonly #counts: StatementSync;

  constructor(db: DatabaseSync, run: Run, now: () => number) {
    this.#db = db;
    this.#run = run;
    this.#now = now;
    this.#epoch = db.prepare('SELECT epoch FROM session_users WHERE user = ?');
    this.#forgetUser = db.prepare('DELETE FROM session_users WHERE user = ?');
    this.#pruneUser = db.prepare('DELETE FROM session_user_entries WHERE user = ? AND expires_at <= ?');
    this.#count = db.prepare('SELECT count(*) AS n FROM session_user_entries WHERE user = ?');
    this.#victims = db.prepare(
      `DELETE FROM session_user_entries WHERE rowid IN (SELECT rowid FROM session_user_entries WHERE user = ? ${LRU} LIMIT ?) RETURNING store_key, expires_at, rowid`,
    );
    this.#unlist = db.prepare('DELETE FROM session_user_entries WHERE user = ? AND handle = ? RETURNING store_key');
    this.#insert = db.prepare(
      'INSERT OR REPLACE INTO session_user_entries ' +
        '(user, handle, store_key, label, created_at, last_used_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.#touch = db.prepare(
      'UPDATE session_user_entries SET last_used_at = ?, expires_at = ?, store_key = coalesce(?, store_key) ' +
        'WHERE user = ? AND handle = ? AND coalesce((SELECT epoch FROM session_users WHERE user = ?), 0) = ?',
    );
    this.#listed = db.prepare(
      'SELECT handle, store_key, label, created_at, last_used_at, expires_at FROM session_user_entries ' +
        `WHERE user = ? ${LRU}`,
    );
    this.#dropIfEmpty = db.prepare(
      'DELETE FROM session_users WHERE user = ? AND keep_until <= ? ' +
        'AND NOT EXISTS (SELECT 1 FROM session_user_entries WHERE user = session_users.user)',
    );
    this.#storeKeyOf = db.prepare('SELECT store_key FROM session_user_entries WHERE user = ? AND handle = ?');
    this.#liveKeys = db.prepare(`SELECT store_key FROM session_user_entries WHERE user = ? AND expires_at > ? ${LRU}`);
    this.#unlistAll = db.prepare('DELETE FROM session_user_entries WHERE user = ?');
    this.#bump = db.prepare(
      'INSERT INTO session_users (user, epoch, keep_until) VALUES (?, 1, ?) ' +
        'ON CONFLICT (user) DO UPDATE SET epoch = epoch + 1, keep_until = max(keep_until, excluded.keep_until)',
    );
    this.#sweepEntries = db.prepare(
      'DELETE FROM session_user_entries WHERE rowid IN ' +
        '(SELECT rowid FROM session_user_entries WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)',
    );
    this.#sweepUsers = db.prepare(
      'DELETE FROM session_users WHERE rowid IN (SELECT rowid FROM session_users WHERE keep_until <= ? ' +
        'AND NOT EXISTS (SELECT 1 FROM session_user_entries e WHERE e.user = session_users.user) LIMIT ?)',
    );
    this.#counts = db.prepare(
      'SELECT (SELECT count(*) FROM session_users) AS users, (SELECT count(*) FROM session_user_entries) AS entries',
    );
  }

  /** How many users have an epoch kept, and how many entries the lists hold (for tests and monitoring). */
  get counts(): { readonly users: number; readonly entries: number } {
    const row = this.#run(() => this.#counts.get()) as { users: number; entries: number };
    return { users: Number(row.users), entries: Number(row.entries) };
  }

  async add(
    user: string,
    entry: { readonly handle: string; readonly storeKey: string; readonly label: string },
    ttlMs: number,
    maxEntries: number,
  ): Promise<{ epoch: number; dropped: string[] }> {
    const now = this.#now();
    return this.#transaction(() => {
      this.#pruneUser.run(user, now);
      const count = Number((this.#count.get(user) as { n: number }).n);
      const dropped: string[] = [];
      if (count >= maxEntries) {
        const victims = this.#victims.all(user, count - maxEntries + 1) as Array<{
          store_key: string;
          expires_at: number;
          rowid: number;
        }>;
        // RETURNING gives no order: the least recently used first, as list() would show them.
        victims.sort((a, b) => Number(a.expires_at) - Number(b.expires_at) || Number(a.rowid) - Number(b.rowid));
        for (const victim of victims) dropped.push(String(victim.store_key));
      }
      this.#insert.run(user, entry.handle, entry.storeKey, entry.label, now, now, now + ttlMs);
      return { epoch: this.#epochOf(user), dropped };
    });
  }

  async touch(user: string, handle: string, epoch: number, ttlMs: number, storeKey?: string): Promise<boolean> {
    const now = this.#now();
    // One statement: the epoch check and the write cannot be parted.
    return (
      this.#run(() => this.#touch.run(now, now + ttlMs, storeKey ?? null, user, handle, user, epoch)).changes === 1
    );
  }

  async list(user: string): Promise<UserSessionEntry[]> {
    const now = this.#now();
    const rows = this.#transaction(() => {
      this.#pruneUser.run(user, now);
      this.#dropIfEmpty.run(user, now);
      return this.#listed.all(user);
    });
    return rows.map((row) => ({
      handle: String(row.handle),
      storeKey: String(row.store_key),
      label: String(row.label),
      createdAt: Number(row.created_at),
      lastUsedAt: Number(row.last_used_at),
      expiresAt: Number(row.expires_at),
    }));
  }

  async remove(user: string, handle: string): Promise<string | undefined> {
    const now = this.#now();
    return this.#transaction(() => {
      const [row] = this.#unlist.all(user, handle);
      if (row === undefined) return undefined;
      this.#dropIfEmpty.run(user, now);
      return String(row.store_key);
    });
  }

  async endAll(user: string, keepEpochMs: number): Promise<string[]> {
    const now = this.#now();
    return this.#transaction(() => {
      const storeKeys = this.#liveKeys.all(user, now).map((row) => String(row.store_key));
      this.#unlistAll.run(user);
      this.#bump.run(user, now + keepEpochMs);
      return storeKeys;
    });
  }

  /**
   * One step of the store's sweep: up to `batch` expired entries, then users left with nothing to keep.
   * Answers how many rows went (the sweep goes on while a step fills its batch).
   */
  sweepStep(now: number, batch: number): number {
    let deleted = Number(this.#sweepEntries.run(now, batch).changes);
    if (deleted < batch) deleted += Number(this.#sweepUsers.run(now, batch - deleted).changes);
    return deleted;
  }

  /** The store key listed under a handle (for tests). */
  storeKeyOf(user: string, handle: string): string | undefined {
    const row = this.#run(() => this.#storeKeyOf.get(user, handle));
    return row === undefined ? undefined : String(row.store_key);
  }

  /** Within a transaction: the user's epoch. */
  #epochOf(user: string): number {
    const row = this.#epoch.get(user);
    if (row === undefined) return 0;
    const epoch = row.epoch;
    if (typeof epoch === 'number' && Number.isSafeInteger(epoch) && epoch >= 0) return epoch;
    // Not a count (stored data is input; the column has no CHECK in files of schema version 2): it goes, as
    // Redis's does. That signs the user's listed sessions out, never in: theirs is an epoch no session can hold.
    this.#forgetUser.run(user);
    return 0;
  }

  /** Runs `body` as one write transaction; a failure rolls it back. */
  #transaction<T>(body: () => T): T {
    return this.#run(() => {
      this.#db.exec('BEGIN IMMEDIATE');
      try {
        const result = body();
        this.#db.exec('COMMIT');
        return result;
      } catch (error) {
        if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
        throw error;
      }
    });
  }
}

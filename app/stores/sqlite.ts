/**
 * Sessions in an SQLite file, through node:sqlite (built into Node 22.13 and later): they survive a
 * restart with no server to run, for a single-instance service (GoFrame's own default storage is a
 * file too). Same contract as the other stores (store.ts); docs/stores.md has the figures.
 *
 * The table `sessions` (id, text, expires_at in ms since the epoch), and one statement per call, each
 * prepared once: `get` is an UPDATE … RETURNING that renews the lifetime as it reads, `create` an
 * INSERT … ON CONFLICT that replaces only an expired row, `update` an UPDATE of a live row, `destroy`
 * a DELETE … RETURNING. An expired row counts as absent everywhere; the sweep deletes it later.
 *
 * The bound lives in the file, so that it holds whoever writes: a one-row table, `session_meta`, keeps
 * the row count (triggers on insert and delete, never COUNT(*) per create) and the cap, and the insert
 * trigger deletes the row with the smallest expires_at once the count passes the cap, in the same
 * statement as the insert: the count never exceeds the cap. Under sliding expiry every call renews a
 * session to the same SESSION_MAX_AGE, so the smallest expires_at is the least recently used session
 * (and an expired one, if any is left). Plain LRU: unlike the memory store's segmented LRU, a flood of
 * one-shot sessions can push out users who came back; disk is cheap, so the cap can be far higher.
 *
 * node:sqlite is synchronous: every call runs on the event loop. So the busy timeout is a few ms
 * (a write lock held elsewhere gives a 503, never a blocked loop), the checkpoints that copy the
 * write-ahead log into the file run on a worker thread (sqlite-checkpointer.ts), and expired rows are
 * deleted in small batches through the index on expires_at, each after the worker has checkpointed
 * the one before.
 *
 * Users' lists (sqlite-users.ts) live in tables of their own in the same file. A session the store drops
 * on its own (the insert trigger's eviction, the sweep, the trim past a lowered cap, a destroy that finds it
 * expired) leaves its user's list in the same statement or transaction, as the memory store's `forget`;
 * an expired row that get, create or update meet stays, with its entry, until the sweep.
 *
 * Stored data is input: a row this app did not write (a NULL, a blob, a number where the text goes)
 * reads as '', which the session layer discards like any other invalid value. The file is checked
 * before use: PRAGMA application_id marks it as a session database of this app, and a database that
 * has tables but not that mark is refused, never changed.
 *
 * node:sqlite is imported when a store is opened, never before, so the other stores keep working on
 * Node 20, which lacks it.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { StartupError } from '../../config/index.ts';
import { flushLogSummaries } from '../log-summary.ts';
import type { Logger } from '../logger.ts';
import { type Checkpointer, startCheckpointer } from './sqlite-checkpointer.ts';
import { SqliteUsers, USERS_SCHEMA } from './sqlite-users.ts';
import { type SessionStore, type StoreHealth, StoreUnavailableError } from './store.ts';

export interface SqliteStoreOptions {
  /** The database file, as the operator gave it (SESSION_SQLITE_FILE); relative to the working directory. */
  readonly file: string;
  /** The most sessions held; a create past it evicts the least recently used one. */
  readonly maxEntries: number;
  /** How often the background sweep starts a pass over the expired rows. */
  readonly sweepIntervalMs?: number;
  /** Rows deleted per sweep step; requests run between steps. */
  readonly sweepBatchSize?: number;
  /** Injectable clock for tests. */
  readonly now?: () => number;
  /** Checkpoints on a worker thread (sqlite-checkpointer.ts); true by default, false to compare. */
  readonly checkpointInWorker?: boolean;
  /**
   * Where a failed sweep is reported, and an outage: one line when calls start failing (their 503s are
   * counted by the app), one when a session call writes again.
   */
  readonly logger?: Logger;
}

/** Marks the file as a session database of this app ('kses' in ASCII): set once, checked at every open. */
export const SQLITE_APPLICATION_ID = 0x6b736573;
/** The schema's version (PRAGMA user_version); a file of another version is refused, not migrated. */
export const SQLITE_SCHEMA_VERSION = 2;
/**
 * Versions this app opens and brings up to SQLITE_SCHEMA_VERSION: version 1 had no users' tables; the
 * schema adds them (CREATE … IF NOT EXISTS) and replaces the eviction trigger, all in the set-up's transaction.
 */
const UPGRADABLE_SCHEMA_VERSIONS = [1];
/** At start-up the process may wait for a lock (nothing else runs yet), e.g. another process's write. */
const STARTUP_BUSY_TIMEOUT_MS = 1_000;
/** While serving, a lock held elsewhere blocks the whole event loop for this long at most, then 503. */
const BUSY_TIMEOUT_MS = 5;
const DEFAULT_SWEEP_INTERVAL_MS = 5_000;
/** Log pages past which the store's own connection checkpoints, should the worker fall behind. */
const BACKSTOP_CHECKPOINT_PAGES = 2_000;
/** The log file is cut back to this after a burst of writes (a long sweep) made it grow. */
const LOG_SIZE_LIMIT_BYTES = 16 * 1024 * 1024;
/**
 * Between two sweep steps without the checkpoint worker: a timer tick, not just the next turn of the
 * event loop, so that a long sweep takes at most about half of the loop.
 */
const SWEEP_PAUSE_MS = 1;
/** About a millisecond of work per step (docs/stores.md). */
const DEFAULT_SWEEP_BATCH_SIZE = 100;

/**
 * The users' tables come first (sqlite-users.ts): the eviction trigger unlists the session it evicts.
 *
 * CHECK on expires_at: a row with a lifetime that is not an integer would compare as alive forever
 * and never be swept, so the database refuses it, whoever writes. The text column takes anything: the
 * store reads what it finds defensively.
 */
const SCHEMA = `${USERS_SCHEMA}
  CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY NOT NULL,
    text TEXT,
    expires_at INTEGER NOT NULL CHECK (typeof(expires_at) = 'integer')
  );
  CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires_at);
  CREATE TABLE IF NOT EXISTS session_meta (entries INTEGER NOT NULL, max_entries INTEGER NOT NULL);
  DROP TRIGGER IF EXISTS sessions_inserted;
  CREATE TRIGGER sessions_inserted AFTER INSERT ON sessions BEGIN
    UPDATE session_meta SET entries = entries + 1;
    DELETE FROM session_user_entries WHERE store_key IN (
      SELECT id FROM sessions WHERE id <> NEW.id ORDER BY expires_at, rowid
      LIMIT (SELECT entries > max_entries FROM session_meta)
    );
    DELETE FROM sessions WHERE rowid IN (
      SELECT rowid FROM sessions WHERE id <> NEW.id ORDER BY expires_at, rowid
      LIMIT (SELECT entries > max_entries FROM session_meta)
    );
  END;
  CREATE TRIGGER IF NOT EXISTS sessions_deleted AFTER DELETE ON sessions BEGIN
    UPDATE session_meta SET entries = entries - 1;
  END;
`;

function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)) || 'unknown error';
}

/** SQLite's primary result code of a node:sqlite error (extended codes keep it in the low byte). */
function sqliteCode(error: unknown): number | undefined {
  const code = (error as { errcode?: unknown } | null)?.errcode;
  return typeof code === 'number' ? code & 0xff : undefined;
}

const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;
const SQLITE_READONLY = 8;
const SQLITE_CORRUPT = 11;
const SQLITE_CANTOPEN = 14;
const SQLITE_NOTADB = 26;

/** What went wrong opening the file, in the operator's words. */
function describeOpenError(error: unknown): string {
  switch (sqliteCode(error)) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return 'the database is locked by another process (a tool or another server holding a lock on it)';
    case SQLITE_NOTADB:
      return 'not an SQLite database (give a new file or a session database of this app)';
    case SQLITE_CANTOPEN:
      return `cannot be opened or created (${messageOf(error)}; is it a folder, or not writable?)`;
    case SQLITE_READONLY:
      return `cannot be written (${messageOf(error)})`;
    case SQLITE_CORRUPT:
      return `the database is corrupt (${messageOf(error)})`;
    default:
      return `cannot be used (${messageOf(error)})`;
  }
}

const UTF8 = new TextDecoder();

type NodeSqlite = typeof import('node:sqlite');

/** node:sqlite, or a StartupError on a Node without it. */
async function loadNodeSqlite(): Promise<NodeSqlite> {
  try {
    return await import('node:sqlite');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ERR_UNKNOWN_BUILTIN_MODULE') throw error;
    throw new StartupError(
      'SESSION_STORE',
      `SESSION_STORE=sqlite needs node:sqlite, in Node 22.13 and later; this is Node ${process.version}`,
      { cause: error },
    );
  }
}

/**
 * Whether the file is a session database of this app ('ours') or holds nothing yet ('empty');
 * throws the reason when it is anything else, before anything is written to it.
 */
function checkMarker(db: DatabaseSync): 'ours' | 'empty' {
  const { application_id: applicationId } = db.prepare('PRAGMA application_id').get() as { application_id: number };
  const { user_version: version } = db.prepare('PRAGMA user_version').get() as { user_version: number };
  if (applicationId === SQLITE_APPLICATION_ID) {
    if (version !== SQLITE_SCHEMA_VERSION && !UPGRADABLE_SCHEMA_VERSIONS.includes(version))
      throw new Error(
        `a session database of schema version ${version}; this app reads version ${SQLITE_SCHEMA_VERSION}`,
      );
    return 'ours';
  }
  const tables = db
    .prepare(
      "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )
    .all()
    .map((row) => String(row.name));
  if (applicationId !== 0 || version !== 0 || tables.length > 0) {
    const shown = tables.length > 5 ? [...tables.slice(0, 5), '…'] : tables;
    const holds = tables.length > 0 ? `tables ${shown.join(', ')}` : `application_id ${applicationId}`;
    throw new Error(`a database of something else (${holds}), not a session database of this app; left untouched`);
  }
  return 'empty';
}

/** Checks the file, sets it up (WAL, schema, count, cap) in one write transaction, or throws why not. */
function prepareDatabase(db: DatabaseSync, maxEntries: number): void {
  db.exec(`PRAGMA busy_timeout = ${STARTUP_BUSY_TIMEOUT_MS}`);
  checkMarker(db); // before WAL mode, which would change a foreign file
  const { journal_mode: mode } = db.prepare('PRAGMA journal_mode = WAL').get() as { journal_mode: string };
  if (mode !== 'wal') throw new Error(`WAL mode could not be turned on (journal_mode is ${mode})`);
  // NORMAL in WAL mode: a commit is not synced to disk, only checkpoints are. A crash of the process
  // loses nothing; a power loss or an OS crash may undo the last writes (logins, logouts) but never
  // corrupts the file (docs/stores.md).
  db.exec('PRAGMA synchronous = NORMAL');
  db.exec('BEGIN IMMEDIATE');
  try {
    if (checkMarker(db) === 'empty') db.exec(`PRAGMA application_id = ${SQLITE_APPLICATION_ID}`);
    db.exec(SCHEMA);
    db.exec(`PRAGMA user_version = ${SQLITE_SCHEMA_VERSION}`);
    // The count is recomputed once per start (one index scan), so a hand-edited meta row cannot
    // unbound the store; the cap is this process's setting.
    db.exec('DELETE FROM session_meta');
    db.prepare('INSERT INTO session_meta (entries, max_entries) SELECT count(*), ? FROM sessions').run(maxEntries);
    db.exec('COMMIT');
  } catch (error) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw error;
  }
  db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
}

/** ttlMs comes from the session layer and is always a positive integer; anything else is a bug there. */
function checkTtl(ttlMs: number): void {
  if (!(Number.isInteger(ttlMs) && ttlMs > 0)) throw new RangeError(`ttlMs must be a positive integer, not ${ttlMs}`);
}

export class SqliteStore implements SessionStore {
  readonly kind = 'sqlite';
  readonly #db: DatabaseSync;
  readonly #now: () => number;
  readonly #logger: Logger | undefined;
  readonly #sweepBatchSize: number;
  readonly #sweepTimer: NodeJS.Timeout;
  readonly #get: StatementSync;
  readonly #create: StatementSync;
  readonly #update: StatementSync;
  readonly #destroy: StatementSync;
  readonly #entries: StatementSync;
  readonly #forgetExpired: StatementSync;
  readonly #sweepExpired: StatementSync;
  readonly #forgetExcess: StatementSync;
  readonly #trimExcess: StatementSync;
  readonly #forget: StatementSync;
  /** Users' signed-in sessions (sqlite-users.ts), in the same file. */
  readonly users: SqliteUsers;
  /** Whether get reads text as its bytes (Node 22: see the constructor). */
  readonly #textAsBytes: boolean;
  readonly #checkpointer: Checkpointer | undefined;
  #sweep: { done: Promise<void>; finish: () => void; keepAlive: boolean } | undefined;
  #sweepStep: NodeJS.Timeout | undefined;
  #closed = false;
  /** Whether calls are failing (the line that says so is written), until a session call writes again. */
  #failing = false;

  private constructor(db: DatabaseSync, path: string, options: SqliteStoreOptions) {
    this.#db = db;
    db.exec(`PRAGMA journal_size_limit = ${LOG_SIZE_LIMIT_BYTES}`);
    this.#now = options.now ?? Date.now;
    this.#logger = options.logger;
    this.#sweepBatchSize = Math.max(1, options.sweepBatchSize ?? DEFAULT_SWEEP_BATCH_SIZE);
    // Node 22's node:sqlite cuts text it reads at the first U+0000 (later lines do not): there, text
    // is read back as its UTF-8 bytes and decoded here, so that any text round-trips.
    this.#textAsBytes = String(db.prepare("SELECT 'a' || char(0) || 'b' AS text").get()?.text).length !== 3;
    const text = this.#textAsBytes ? "CASE WHEN typeof(text) = 'text' THEN CAST(text AS BLOB) END AS text" : 'text';
    this.#get = db.prepare(`UPDATE sessions SET expires_at = ? WHERE id = ? AND expires_at > ? RETURNING ${text}`);
    this.#create = db.prepare(
      'INSERT INTO sessions (id, text, expires_at) VALUES (?, ?, ?) ' +
        'ON CONFLICT (id) DO UPDATE SET text = excluded.text, expires_at = excluded.expires_at ' +
        'WHERE sessions.expires_at <= ?',
    );
    this.#update = db.prepare('UPDATE sessions SET text = ?, expires_at = ? WHERE id = ? AND expires_at > ?');
    this.#destroy = db.prepare('DELETE FROM sessions WHERE id = ? RETURNING expires_at');
    this.#entries = db.prepare('SELECT entries FROM session_meta');
    // Each pair selects the same rows (the same query, nothing written between, one transaction): the
    // sessions the store drops on its own leave their users' lists first.
    const expired = 'SELECT {} FROM sessions WHERE expires_at <= ? ORDER BY expires_at, rowid LIMIT ?';
    this.#forgetExpired = db.prepare(
      `DELETE FROM session_user_entries WHERE store_key IN (${expired.replace('{}', 'id')})`,
    );
    this.#sweepExpired = db.prepare(`DELETE FROM sessions WHERE rowid IN (${expired.replace('{}', 'rowid')})`);
    // Rows past the cap, least recently used first: only after SESSION_MAX_ENTRIES was lowered.
    const excess =
      'SELECT {} FROM sessions ORDER BY expires_at, rowid ' +
      'LIMIT min(?, max(0, (SELECT entries - max_entries FROM session_meta)))';
    this.#forgetExcess = db.prepare(
      `DELETE FROM session_user_entries WHERE store_key IN (${excess.replace('{}', 'id')})`,
    );
    this.#trimExcess = db.prepare(`DELETE FROM sessions WHERE rowid IN (${excess.replace('{}', 'rowid')})`);
    this.#forget = db.prepare('DELETE FROM session_user_entries WHERE store_key = ?');
    this.users = new SqliteUsers(db, (statement) => this.#run(statement), this.#now);
    if (options.checkpointInWorker !== false) {
      // SQLite's own checkpoint after a commit (at 1,000 log pages by default) stays as the backstop, at
      // a threshold the worker keeps the log under: when it does run, little is left for it to copy.
      db.exec(`PRAGMA wal_autocheckpoint = ${BACKSTOP_CHECKPOINT_PAGES}`);
      this.#checkpointer = startCheckpointer(path);
    }
    // unref: a pending sweep never keeps the process alive.
    this.#sweepTimer = setInterval(
      () => void this.#startSweep(false),
      options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS,
    ).unref();
  }

  /**
   * Opens (creating it and its folder if missing) and checks the file. Every reason it cannot be used
   * (no node:sqlite, a folder, no permission, a lock held by another process, not a session database)
   * is a StartupError: one line naming SESSION_SQLITE_FILE, or SESSION_STORE for a Node without node:sqlite.
   */
  static async open(options: SqliteStoreOptions): Promise<SqliteStore> {
    const { maxEntries } = options;
    if (!(Number.isSafeInteger(maxEntries) && maxEntries > 0))
      throw new RangeError(`maxEntries must be a positive integer, not ${maxEntries}`);
    const { DatabaseSync } = await loadNodeSqlite();
    const path = resolve(options.file);
    const shown = `SESSION_SQLITE_FILE=${JSON.stringify(options.file)}${path === options.file ? '' : ` (${path})`}`;
    try {
      mkdirSync(dirname(path), { recursive: true });
    } catch (error) {
      throw new StartupError('SESSION_SQLITE_FILE', `${shown}: cannot create its folder (${messageOf(error)})`, {
        cause: error,
      });
    }
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(path);
    } catch (error) {
      throw new StartupError('SESSION_SQLITE_FILE', `${shown}: ${describeOpenError(error)}`, { cause: error });
    }
    try {
      prepareDatabase(db, maxEntries);
      return new SqliteStore(db, path, options);
    } catch (error) {
      db.close();
      const reason = sqliteCode(error) === undefined ? messageOf(error) : describeOpenError(error);
      throw new StartupError('SESSION_SQLITE_FILE', `${shown}: ${reason}`, { cause: error });
    }
  }

  async get(id: string, ttlMs: number): Promise<string | undefined> {
    checkTtl(ttlMs);
    const now = this.#now();
    // all(), not get(), for a statement with RETURNING: get() resets it after the first row, before
    // SQLite has finished it, and SQLite checkpoints only after a finished statement: the log would grow
    // without bound (docs/stores.md).
    const rows = this.#run(() => this.#get.all(now + ttlMs, id, now));
    // node:sqlite answers undefined, not rows, for a text too long for a JavaScript string (about 512 MiB):
    // a live row this app cannot have written, discarded like any other. (Seen with a 600-million-character
    // row; not in the suite, which would write over a gigabyte to show it.)
    if (rows === undefined) return '';
    const [row] = rows;
    if (row === undefined) return undefined;
    this.#working();
    if (typeof row.text === 'string') return row.text;
    if (this.#textAsBytes && row.text instanceof Uint8Array) {
      try {
        return UTF8.decode(row.text);
      } catch {
        return ''; // too long for a string: as above
      }
    }
    // Not text (NULL, a blob: not what this app writes): '' is discarded by the session layer.
    return '';
  }

  async create(id: string, text: string, ttlMs: number): Promise<boolean> {
    checkTtl(ttlMs);
    const now = this.#now();
    const wrote = this.#run(() => this.#create.run(id, text, now + ttlMs, now)).changes === 1;
    if (wrote) this.#working();
    return wrote;
  }

  async update(id: string, text: string, ttlMs: number): Promise<boolean> {
    checkTtl(ttlMs);
    const now = this.#now();
    const wrote = this.#run(() => this.#update.run(text, now + ttlMs, id, now)).changes === 1;
    if (wrote) this.#working();
    return wrote;
  }

  async destroy(id: string): Promise<boolean> {
    const now = this.#now();
    // Deletes an expired row too; it counts as absent. all(), as in get().
    const [row] = this.#run(() => this.#destroy.all(id));
    if (row === undefined) return false;
    this.#working();
    if (Number(row.expires_at) > now) return true;
    // An expired session met here: dropped by the store, as the sweep would, so it leaves its user's list.
    this.#run(() => this.#forget.run(id));
    return false;
  }

  /** { ok, sessions } with the row count, expired rows not yet swept included; ok: false when it cannot be read. */
  async health(): Promise<StoreHealth> {
    try {
      return { ok: true, sessions: await this.size() };
    } catch {
      return { ok: false };
    }
  }

  /** The number of rows, expired ones not yet swept included (the count the cap applies to). */
  async size(): Promise<number> {
    return Number(this.#run(() => this.#entries.get())?.entries);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweepTimer);
    this.#endSweep();
    // The worker's connection first: the last connection to close checkpoints the whole log.
    await this.#checkpointer?.stop();
    this.#db.close();
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

  /**
   * Runs one statement. A failure of the database (a lock held elsewhere, a full disk, an I/O error)
   * is a 503; anything else (a value that cannot be bound) is a bug of the caller and stays what it is.
   */
  #run<T>(statement: () => T): T {
    if (this.#closed) throw new StoreUnavailableError('sqlite store is closed');
    try {
      return statement();
    } catch (error) {
      if (sqliteCode(error) === undefined) throw error;
      if (!this.#failing) {
        this.#failing = true;
        this.#logger?.warn(
          { err: messageOf(error) },
          'sqlite session store failing; session requests answer 503 until it works again',
        );
      }
      throw new StoreUnavailableError(`sqlite: ${messageOf(error)}`, { cause: error });
    }
  }

  /**
   * After a session call wrote a row: ends an outage, at its level (warn). Only a write ends it: a read
   * (health, a user's list) and a call that finds nothing to change write nothing, so they work on a full
   * disk, and would end the outage only for the next write to start it again, a pair of lines per request.
   */
  #working(): void {
    if (!this.#failing) return;
    this.#failing = false;
    if (this.#logger === undefined) return;
    flushLogSummaries(this.#logger); // the outage's 503s, before the line that ends it
    this.#logger.warn('sqlite session store working again');
  }

  #startSweep(keepAlive: boolean): Promise<void> {
    if (this.#sweep) {
      if (keepAlive && !this.#sweep.keepAlive) {
        this.#sweep.keepAlive = true;
        this.#sweepStep?.ref();
      }
      return this.#sweep.done;
    }
    if (this.#closed) return Promise.resolve();
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    this.#sweep = { done, finish, keepAlive };
    this.#sweepBatch();
    return done;
  }

  /**
   * One step: up to sweepBatchSize expired rows, then (once none are left) rows past a lowered cap.
   * The next step waits for the worker's checkpoint of this one, or without the worker for a timer
   * tick; requests run in between either way.
   */
  #sweepBatch(): void {
    this.#sweepStep = undefined;
    const sweep = this.#sweep;
    if (!sweep) return;
    const batch = this.#sweepBatchSize;
    let deleted: number;
    try {
      const now = this.#now();
      this.#db.exec('BEGIN IMMEDIATE');
      try {
        this.#forgetExpired.run(now, batch);
        deleted = Number(this.#sweepExpired.run(now, batch).changes);
        if (deleted < batch) {
          this.#forgetExcess.run(batch - deleted);
          deleted += Number(this.#trimExcess.run(batch - deleted).changes);
        }
        if (deleted < batch) deleted += this.users.sweepStep(now, batch - deleted);
        this.#db.exec('COMMIT');
      } catch (error) {
        if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
        throw error;
      }
    } catch (error) {
      // The next pass tries again; calls meanwhile answer for themselves (503 if the database fails).
      this.#logger?.warn({ err: messageOf(error) }, 'sqlite session sweep failed; retrying at the next pass');
      this.#endSweep();
      return;
    }
    if (deleted < batch) {
      this.#endSweep();
      return;
    }
    if (this.#checkpointer?.running()) {
      // The next step once the worker has checkpointed this one: the sweep goes at the pace of the
      // checkpoints, so the log stays short and SQLite's own checkpoint (on this thread) never has to run.
      // A worker that has exited answers at once: then the pause below, or the sweep would never yield.
      void this.#checkpointer.pass(sweep.keepAlive).then(() => {
        if (this.#sweep === sweep) this.#sweepBatch();
      });
      return;
    }
    this.#sweepStep = setTimeout(() => this.#sweepBatch(), SWEEP_PAUSE_MS);
    if (!sweep.keepAlive) this.#sweepStep.unref();
  }

  #endSweep(): void {
    clearTimeout(this.#sweepStep);
    this.#sweepStep = undefined;
    const sweep = this.#sweep;
    this.#sweep = undefined;
    sweep?.finish();
  }
}

/**
 * The contract every session store keeps. A store keeps opaque text under an id, with an idle
 * lifetime; it knows nothing of koa-session, cookies or what the text means. The session layer
 * (app/session/) serializes and validates the text, and decides which write a request may make.
 *
 * The writes are conditional so that logout is final even when requests overlap: a session loaded
 * by a request is written back only if it still exists (`update`), and a new id is written only if
 * it is unused (`create`). Once `destroy` has removed an id, no write can bring it back. The memory
 * and Redis stores implement this and are held to it by one shared test suite
 * (test/store-contract.test.ts).
 *
 * The "id" a store sees is a store key: the session layer hands it a keyed hash of the session id, never
 * the id itself (app/session/store-keys.ts).
 *
 * `users` holds what signing in needs (app/session/sign-in.ts): per user, a list of their signed-in
 * sessions and an epoch (generation) that "sign out everywhere" bumps. Each call is one atomic step on
 * one user's data (with Redis: one round trip, one script, every key of the user in one hash slot), so
 * a sign-out everywhere and a request of one of that user's sessions cannot interleave inside a call.
 * Held to it by test/user-index-contract.test.ts.
 */

export interface StoreHealth {
  readonly ok: boolean;
  readonly [detail: string]: unknown;
}

/** One signed-in session in its user's list. */
export interface UserSessionEntry {
  /** Opaque and random, made at sign-in: how the user names the session to revoke it. Neither its id nor its store key. */
  readonly handle: string;
  /** Where the session is stored now: what a sign-out from another session destroys. */
  readonly storeKey: string;
  /** A short name for the device, shown in the list. */
  readonly label: string;
  /** Unix milliseconds, by the store's clock: signed in, last used, and when the entry goes unless used again. */
  readonly createdAt: number;
  readonly lastUsedAt: number;
  readonly expiresAt: number;
}

/**
 * Per user (named by an opaque key the session layer derives from the user id): the epoch and the list
 * of signed-in sessions. A signed-in session is valid while the user's epoch is the one it was signed in
 * under and its handle is still listed; `touch` checks both, so either one alone ends it. Entries past
 * their expiry are never returned and are dropped as calls meet them; nothing of a user outlives their
 * last entry by more than the epoch's keep time (`endAll`).
 */
export interface UserSessionIndex {
  /**
   * Lists a new signed-in session and answers the user's epoch, to be stored with the session. Drops
   * expired entries first, then, with `maxEntries` or more left, the least recently used ones to make
   * room: their store keys come back in `dropped` (those sessions are signed out; destroy them).
   */
  add(
    user: string,
    entry: { readonly handle: string; readonly storeKey: string; readonly label: string },
    ttlMs: number,
    maxEntries: number,
  ): Promise<{ readonly epoch: number; readonly dropped: readonly string[] }>;
  /**
   * A use of a signed-in session: true when the user's epoch is still `epoch` and `handle` is still
   * listed, and then its last use becomes now and its expiry `ttlMs` from now (and its store key
   * `storeKey`, when given: the session moved). False, and nothing written, otherwise.
   */
  touch(user: string, handle: string, epoch: number, ttlMs: number, storeKey?: string): Promise<boolean>;
  /** The user's live entries, least recently used first. */
  list(user: string): Promise<UserSessionEntry[]>;
  /** Unlists one session; answers its store key ('' when its entry holds none), or undefined when it was not listed. */
  remove(user: string, handle: string): Promise<string | undefined>;
  /**
   * Sign out everywhere: bumps the user's epoch, kept at least `keepEpochMs` from now, and empties the
   * list, in one step; answers the store keys of the sessions that were listed.
   */
  endAll(user: string, keepEpochMs: number): Promise<string[]>;
}

export interface SessionStore {
  readonly kind: string;
  /**
   * The stored text, its lifetime renewed to `ttlMs` from now (sliding expiry), or undefined when
   * the id is unknown or expired. A value that cannot be text (a Redis key of another type) comes
   * back as '', which the session layer discards like any other invalid value.
   */
  get(id: string, ttlMs: number): Promise<string | undefined>;
  /** Stores text under an id that must be unused; false, and nothing written, when the id exists. */
  create(id: string, text: string, ttlMs: number): Promise<boolean>;
  /** Replaces the text of an id that must still exist; false, and nothing written, when it does not. */
  update(id: string, text: string, ttlMs: number): Promise<boolean>;
  /** Deletes the id; true when it existed (was not expired) a moment before. */
  destroy(id: string): Promise<boolean>;
  health(): Promise<StoreHealth>;
  /** Users' signed-in sessions and epochs (see UserSessionIndex). */
  readonly users: UserSessionIndex;
  /** Releases timers and connections; the store is not used afterwards. */
  close(): Promise<void>;
}

/** Thrown when the backing service cannot answer in time; the app answers 503 and keeps running. */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

/**
 * The contract every session store keeps: koa-session's external store (get, set, destroy, all
 * returning promises) plus what the app needs to run it (health, close). The memory and Redis stores
 * both implement it and are held to it by one shared test suite (test/store-contract.test.ts).
 */

/**
 * How koa-session passes a lifetime: milliseconds, or `undefined` / `'session'` when the session has
 * no lifetime of its own. A store applies its configured idle lifetime then: nothing lives forever.
 */
export type MaxAge = number | 'session' | undefined;

/** What koa-session stores: the session's fields plus its own bookkeeping (`_session`, `_expire`, …). */
export type StoredSession = Record<string, unknown>;

export interface StoreHealth {
  readonly ok: boolean;
  readonly [detail: string]: unknown;
}

export interface SessionStore {
  readonly kind: string;
  /** The session, refreshed to live `maxAge` more (sliding expiry), or undefined if unknown or expired. */
  get(id: string, maxAge?: MaxAge): Promise<StoredSession | undefined>;
  /** Stores a copy that lives `maxAge` after this call unless used again. */
  set(id: string, session: StoredSession, maxAge?: MaxAge): Promise<void>;
  destroy(id: string): Promise<void>;
  health(): Promise<StoreHealth>;
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

/** The idle lifetime to apply for a call: its own maxAge when it is a positive number, else the store's. */
export function idleLifetimeMs(maxAge: MaxAge, defaultMs: number): number {
  return typeof maxAge === 'number' && maxAge > 0 && Number.isFinite(maxAge) ? Math.ceil(maxAge) : defaultMs;
}

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
 */

export interface StoreHealth {
  readonly ok: boolean;
  readonly [detail: string]: unknown;
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

/**
 * The store as koa-session sees it, one request at a time. It makes logout final when requests overlap.
 *
 * koa-session loads a session at the start of a request and writes it back at the end. Two requests
 * with the same cookie overlap all the time (a double click, a pipelined request, a retry), so a plain
 * write-back would undo a logout that happened in between: GET, GET, DEL, SET recreates the session. So
 * each request remembers the one id it holds a claim on (the id it loaded, or the new id it wrote), and
 * every write says what it expects:
 *
 * - the id it loaded, or wrote earlier in the request: `update`, which writes only if the session still
 *   exists. If another request destroyed it meanwhile, nothing is written and no cookie is sent.
 * - a new id (a new session, or regenerate()): `create`, which writes only if the id is unused.
 * - regenerate() destroys the old id first; if that finds it already gone (another request logged out
 *   or regenerated first), the new id is not written either: two regenerate()s at once leave one session.
 *
 * Concurrent updates of one live session: the last write wins (no merging), as with any session store.
 * The state lives on the Koa context under a private symbol: no WeakMap, nothing outlives the request.
 */
import type { Context } from 'koa';
import type { Logger } from '../logger.ts';
import type { SessionStore } from '../stores/store.ts';
import type { SessionCookie } from './signed-cookie.ts';
import {
  decodeStoredSession,
  encodeStoredSession,
  InvalidStoredSessionError,
  type StoredSession,
} from './stored-session.ts';

/** What one request knows of its session. */
export class RequestSession {
  /** The request sent a cookie of our name (valid or not): only then may the response clear it. */
  carriedCookie = false;
  /** The verified cookie it sent, if any. */
  cookie: SessionCookie | undefined = undefined;
  /** The id this request loaded or wrote: its later writes must find it alive. */
  claimedId: string | undefined = undefined;
  /** When this request made a new id (for the cookie's issue time and the absolute lifetime). */
  newIdIssuedAt = 0;
  /** The request destroyed its session (logout, or the first half of regenerate()). */
  destroyed = false;
  /** Another request ended this session first: write nothing more, send no cookie. */
  ended = false;

  /** The issue time of a session id this request holds. */
  issuedAt(id: string): number {
    return this.cookie?.id === id ? this.cookie.issuedAt : this.newIdIssuedAt;
  }
}

const REQUEST_SESSION = Symbol('request session');
type WithRequestSession = Context & { [REQUEST_SESSION]?: RequestSession };

export function startRequestSession(ctx: Context): RequestSession {
  const state = new RequestSession();
  (ctx as WithRequestSession)[REQUEST_SESSION] = state;
  return state;
}

export function requestSessionOf(ctx: Context): RequestSession {
  const state = (ctx as WithRequestSession)[REQUEST_SESSION];
  if (state === undefined) throw new Error('session middleware not mounted for this request');
  return state;
}

/** How koa-session passes a lifetime: milliseconds, or `undefined` / `'session'` for "no lifetime of its own". */
type MaxAge = number | 'session' | undefined;

export interface RequestStoreOptions {
  readonly store: SessionStore;
  readonly logger: Logger;
  /** SESSION_MAX_AGE: the idle lifetime when koa-session brings none of its own. */
  readonly idleLifetimeMs: number;
  /** SESSION_MAX_LIFETIME, or null: no store entry outlives it. */
  readonly maxLifetimeMs: number | null;
}

/** koa-session's external store interface on top of a SessionStore. */
export function createRequestStore({ store, logger, idleLifetimeMs, maxLifetimeMs }: RequestStoreOptions) {
  /**
   * The TTL for a write or read: SESSION_MAX_AGE, cut to what is left of the absolute lifetime. The
   * `maxAge` koa-session passes is not used: it turns into a one-day default when a request saves
   * twice (regenerate() then a change), and the store alone decides expiry here.
   */
  function ttlMs(issuedAt: number): number {
    if (maxLifetimeMs === null) return idleLifetimeMs;
    return Math.max(1, Math.min(idleLifetimeMs, issuedAt + maxLifetimeMs - Date.now()));
  }

  return {
    async get(id: string, _maxAge: MaxAge, { ctx }: { ctx: Context }): Promise<StoredSession | undefined> {
      const state = requestSessionOf(ctx);
      const text = await store.get(id, ttlMs(state.issuedAt(id)));
      if (text === undefined) return undefined;
      let session: StoredSession;
      try {
        session = decodeStoredSession(text);
      } catch (error) {
        if (!(error instanceof InvalidStoredSessionError)) throw error;
        // Stored data is input: a value this app would not have written reads as no session, and goes.
        logger.warn(
          { store: store.kind, reason: error.message },
          'discarded a stored session that is not valid session data',
        );
        await store.destroy(id);
        return undefined;
      }
      state.claimedId = id;
      return session;
    },

    async set(id: string, session: StoredSession, _maxAge: MaxAge, { ctx }: { ctx: Context }): Promise<void> {
      const state = requestSessionOf(ctx);
      if (state.ended) return;
      const text = encodeStoredSession(session);
      if (id === state.claimedId) {
        if (!(await store.update(id, text, ttlMs(state.issuedAt(id))))) state.ended = true;
        return;
      }
      state.newIdIssuedAt = Date.now();
      if (!(await store.create(id, text, ttlMs(state.newIdIssuedAt)))) {
        // 126 random bits never collide by chance: an existing id means a broken genid.
        throw new Error('a new session id is already in use');
      }
      state.claimedId = id;
    },

    async destroy(id: string, { ctx }: { ctx: Context }): Promise<void> {
      const state = requestSessionOf(ctx);
      state.destroyed = true;
      // An id this request neither loaded nor wrote was never stored (koa-session made it for a new session).
      if (id !== state.claimedId) return;
      state.claimedId = undefined;
      if (!(await store.destroy(id))) state.ended = true;
    },
  };
}

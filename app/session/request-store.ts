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
 *
 * The store never sees an id, only its store key (store-keys.ts): the id's hash under the signing key of
 * the session's cookie. A cookie signed with an older key names a session under that key's hash until a
 * request moves it to the current key's (moveToCurrentKey, run after the request, when the middleware
 * re-signs the cookie): create under the new key, then destroy the old one; if that finds the old one
 * gone, another request logged out meanwhile, and the copy goes too. So while a move may be under way, a
 * request with an old-key cookie reads, updates and destroys under the current key's hash as well when
 * the old key's finds nothing, and a logout with such a cookie destroys both: logout stays final.
 *
 * A signed-in session (user-sessions.ts) is checked on every read, and its list entry follows it when
 * regenerate() or a move gives it a new store key; a logout unlists it once the request is done.
 */
import type { Context } from 'koa';
import type { Logger } from '../logger.ts';
import type { SessionStore } from '../stores/store.ts';
import type { SessionCookie } from './signed-cookie.ts';
import type { StoreKeys } from './store-keys.ts';
import {
  decodeStoredSession,
  encodeStoredSession,
  InvalidStoredSessionError,
  type StoredSession,
  takeBinding,
} from './stored-session.ts';
import { type PendingSignIn, type UserBinding, UserSessions } from './user-sessions.ts';

/** What one request knows of its session. */
export class RequestSession {
  /** The request sent a session id of ours (cookie or header, valid or not): only then may the response clear it. */
  carriedCookie = false;
  /** The session id came in the SESSION_HEADER header: answers go there, never in a cookie. */
  viaHeader = false;
  /** The verified cookie (or header) value it sent, if any. */
  cookie: SessionCookie | undefined = undefined;
  /** The id this request loaded or wrote: its later writes must find it alive. */
  claimedId: string | undefined = undefined;
  /** Where the claimed session is stored (its id's store key, under the current or its cookie's older key). */
  claimedKey: string | undefined = undefined;
  /** The claimed session's text as last read or written here: what a move to the current key copies. */
  claimedText = '';
  /** When this request made a new id (for the cookie's issue time and the absolute lifetime). */
  newIdIssuedAt = 0;
  /** The request destroyed its session (logout, or the first half of regenerate()). */
  destroyed = false;
  /** Another request ended this session first: write nothing more, send no cookie. */
  ended = false;
  /** Mounted through session.change (cross-site requests refused): it may sign in and out. */
  mayChange = false;
  /** The user the claimed session is signed in as. */
  user: UserBinding | undefined = undefined;
  /** signIn() under way: the next new id is signed in as this user. */
  signingIn: PendingSignIn | undefined = undefined;
  /** A signed-in session this request destroyed: unlisted after the request, unless regenerate() carried it on. */
  unlisted: UserBinding | undefined = undefined;
  readonly users: UserSessions;

  constructor(users: UserSessions) {
    this.users = users;
  }

  /** The issue time of a session id this request holds. */
  issuedAt(id: string): number {
    return this.cookie?.id === id ? this.cookie.issuedAt : this.newIdIssuedAt;
  }
}

const REQUEST_SESSION = Symbol('request session');
type WithRequestSession = Context & { [REQUEST_SESSION]?: RequestSession };

export function startRequestSession(ctx: Context, users: UserSessions): RequestSession {
  const state = new RequestSession(users);
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
  readonly storeKeys: StoreKeys;
  readonly logger: Logger;
  /** SESSION_MAX_AGE: the idle lifetime when koa-session brings none of its own. */
  readonly idleLifetimeMs: number;
  /** SESSION_MAX_LIFETIME, or null: no store entry outlives it. */
  readonly maxLifetimeMs: number | null;
}

/** koa-session's external store interface on top of a SessionStore, and what the middleware runs after it. */
export function createRequestStore({ store, storeKeys, logger, idleLifetimeMs, maxLifetimeMs }: RequestStoreOptions) {
  return { store: externalStore(), finish };

  /**
   * The TTL for a write or read: SESSION_MAX_AGE, cut to what is left of the absolute lifetime. The
   * `maxAge` koa-session passes is not used: it turns into a one-day default when a request saves
   * twice (regenerate() then a change), and the store alone decides expiry here.
   */
  function ttlMs(issuedAt: number): number {
    if (maxLifetimeMs === null) return idleLifetimeMs;
    return Math.max(1, Math.min(idleLifetimeMs, issuedAt + maxLifetimeMs - Date.now()));
  }

  /** A write's TTL for a session signed in as `user`: never past its list entry (see UserBinding). */
  function writeTtlMs(issuedAt: number, user: UserBinding | undefined): number {
    const ttl = ttlMs(issuedAt);
    return user === undefined ? ttl : Math.max(1, Math.min(ttl, user.listedUntil - Date.now()));
  }

  /** The claim's key under the current signing key, when the claim is under an older one (else undefined). */
  function currentKeyIfOld(state: RequestSession, id: string): string | undefined {
    const cookie = state.cookie;
    if (cookie === undefined || cookie.id !== id || cookie.keyIndex === 0) return undefined;
    const current = storeKeys.of(id);
    return current === state.claimedKey ? undefined : current;
  }

  function externalStore() {
    return {
      async get(id: string, _maxAge: MaxAge, { ctx }: { ctx: Context }): Promise<StoredSession | undefined> {
        const state = requestSessionOf(ctx);
        const carried = state.cookie?.id === id ? state.cookie : undefined;
        const ttl = ttlMs(state.issuedAt(id));
        let key = carried?.storeKey ?? storeKeys.of(id);
        let text = await store.get(key, ttl);
        if (text === undefined && carried !== undefined && carried.keyIndex > 0) {
          // Signed with an older key: a request that re-signed it may have moved the session already.
          key = storeKeys.of(id);
          text = await store.get(key, ttl);
        }
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
          await store.destroy(key);
          return undefined;
        }
        const stored = takeBinding(session);
        if (stored !== undefined) {
          const user = await state.users.check(UserSessions.fromStored(stored, Date.now(), ttl), ttl);
          if (user === undefined) {
            // Signed out everywhere, or revoked, since it was stored: refused, and its data goes.
            await store.destroy(key);
            return undefined;
          }
          state.user = user;
        }
        state.claimedId = id;
        state.claimedKey = key;
        state.claimedText = text;
        return session;
      },

      async set(id: string, session: StoredSession, _maxAge: MaxAge, { ctx }: { ctx: Context }): Promise<void> {
        const state = requestSessionOf(ctx);
        if (state.ended) return;
        const claimedKey = state.claimedKey;
        if (id === state.claimedId && claimedKey !== undefined) {
          const text = encodeStoredSession(session, state.user && UserSessions.toStored(state.user));
          const ttl = writeTtlMs(state.issuedAt(id), state.user);
          let written = await store.update(claimedKey, text, ttl);
          const current = written ? undefined : currentKeyIfOld(state, id);
          if (current !== undefined && (await store.update(current, text, ttl))) {
            // Moved to the current key by another request meanwhile: the claim follows it.
            state.claimedKey = current;
            written = true;
          }
          if (written) state.claimedText = text;
          else state.ended = true;
          return;
        }
        // A new id: a new session, a sign-in, or regenerate() (which carries a signed-in session's binding on).
        state.newIdIssuedAt = Date.now();
        const key = storeKeys.of(id);
        const ttl = ttlMs(state.newIdIssuedAt);
        const signingIn = state.signingIn;
        let user = signingIn === undefined ? state.user : await state.users.add(signingIn, key, ttl);
        const text = encodeStoredSession(session, user && UserSessions.toStored(user));
        if (!(await store.create(key, text, writeTtlMs(state.newIdIssuedAt, user)))) {
          // 126 random bits never collide by chance: an existing id means a broken genid.
          throw new Error('a new session id is already in use');
        }
        if (user !== undefined) {
          // A sign-in: no sign out everywhere may have come between listing and storing it. regenerate():
          // the entry follows the session to its new key, if it is still listed.
          user = await state.users.check(user, ttl, key);
          if (user === undefined) {
            await store.destroy(key);
            state.user = undefined;
            state.ended = true;
            return;
          }
          if (state.unlisted?.handle === user.handle) state.unlisted = undefined;
        }
        state.user = user;
        state.claimedId = id;
        state.claimedKey = key;
        state.claimedText = text;
      },

      async destroy(id: string, { ctx }: { ctx: Context }): Promise<void> {
        const state = requestSessionOf(ctx);
        state.destroyed = true;
        // An id this request neither loaded nor wrote was never stored (koa-session made it for a new session).
        const key = state.claimedKey;
        if (id !== state.claimedId || key === undefined) return;
        // Under an older key, a move may have put a copy under the current key's hash: both go.
        const current = currentKeyIfOld(state, id);
        state.claimedId = undefined;
        state.claimedKey = undefined;
        let found = await store.destroy(key);
        if (current !== undefined) found = (await store.destroy(current)) || found;
        if (!found) {
          state.ended = true;
          return;
        }
        if (state.user !== undefined) state.unlisted = state.user;
      },
    };
  }

  /**
   * Run by the middleware once koa-session has written the session back: a signed-in session logged out
   * here leaves its user's list, and a session whose cookie was signed with an older key moves to the
   * current key's hash (then the middleware re-signs the cookie, when the session is still claimed).
   */
  async function finish(state: RequestSession): Promise<void> {
    if (state.unlisted !== undefined) {
      await state.users.remove(state.unlisted);
      state.unlisted = undefined;
    }
    const cookie = state.cookie;
    if (cookie === undefined || cookie.keyIndex === 0 || state.ended || state.claimedId !== cookie.id) return;
    if (state.claimedKey !== cookie.storeKey) return; // found under the current key: nothing to move
    const current = storeKeys.of(cookie.id);
    const ttl = writeTtlMs(cookie.issuedAt, state.user);
    if (!(await store.create(current, state.claimedText, ttl))) {
      // Another request moved it first: its copy is the session now, and that request removes the old one.
      await confirmMoved(state, current, ttl);
      return;
    }
    if (state.user !== undefined) {
      const user = await state.users.check(state.user, ttlMs(cookie.issuedAt), current);
      if (user === undefined) {
        // Signed out everywhere or revoked meanwhile: no copy survives.
        await store.destroy(current);
        state.ended = true;
        return;
      }
      state.user = user;
    }
    if (!(await store.destroy(cookie.storeKey))) {
      // Gone under the old key: another request logged out meanwhile. The copy goes too; no cookie is sent.
      await store.destroy(current);
      state.ended = true;
      return;
    }
    await confirmMoved(state, current, ttl);
  }

  /**
   * The session is under the current key now, unless a logout with an already re-signed cookie (another
   * request's move answered first) ended it meanwhile: the cookie is re-signed only for a session still there.
   */
  async function confirmMoved(state: RequestSession, current: string, ttl: number): Promise<void> {
    if ((await store.get(current, ttl)) === undefined) state.ended = true;
    else state.claimedKey = current;
  }
}

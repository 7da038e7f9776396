/**
 * Server-side sessions with koa-session and a custom external store.
 *
 * - The browser holds only a signed session id (see signed-cookie.ts); the data stays in the store,
 *   under a keyed hash of the id, never the id itself (see store-keys.ts).
 * - Expiry slides as in GoFrame: the store renews a session's TTL whenever it is read or written, so a
 *   session lives SESSION_MAX_AGE after its last use. The cookie itself has no Expires (it is a
 *   browser-session cookie) and is sent only when the id changes, never re-sent just to slide.
 * - Any cookie the server cannot verify, or an id the store does not know, starts a fresh, empty
 *   session with a new id: a client can never choose its session id.
 * - Logout is final (see request-store.ts): once an id is destroyed, no request brings it back.
 * - Routes that change a session refuse cross-site requests (see cross-site.ts).
 * - API clients may carry the session id in a header instead (SESSION_HEADER, see session-header.ts).
 */
import type Koa from 'koa';
import type { Context, Middleware, Next } from 'koa';
import createSession from 'koa-session';
import { nanoid } from 'nanoid';
import type { SessionConfig } from '../../config/index.ts';
import type { Logger } from '../logger.ts';
import type { SessionStore } from '../stores/store.ts';
import { isCrossSite, refuseCrossSite } from './cross-site.ts';
import { createRequestStore, type RequestSession, requestSessionOf, startRequestSession } from './request-store.ts';
import { SessionHeader } from './session-header.ts';
import { CookieSigner } from './signed-cookie.ts';
import { StoreKeys } from './store-keys.ts';
import { UserSessions } from './user-sessions.ts';
import './types.ts';

export interface SessionMiddlewareOptions {
  readonly config: SessionConfig;
  readonly store: SessionStore;
  readonly logger: Logger;
}

export interface SessionMiddleware {
  /** For routes that only read the session (GET /get): every request is served. */
  readonly read: Middleware;
  /** For routes that change or end it (/set, /del, a login): cross-site requests get 403 first. */
  readonly change: Middleware;
}

/** koa-session's own clearing cookie ("name=; expires=1970") starts with this. */
const clearingCookie = (name: string) => `${name}=;`;

export function createSessionMiddleware(
  app: Koa,
  { config, store, logger }: SessionMiddlewareOptions,
): SessionMiddleware {
  const { name, sameSite, secure } = config.cookie;
  const storeKeys = new StoreKeys(config.keys);
  const signer = new CookieSigner(name, config.keys, storeKeys);
  const header = new SessionHeader(config.header);
  const users = new UserSessions(store, config.maxPerUser, config.maxAgeMs);
  // One set of attributes for every cookie of ours, koa-session's clearing cookie included, so a
  // logout clears exactly the cookie that was set (a Secure or __Host- cookie needs Secure to be cleared).
  // secure undefined: Koa's cookie jar uses the request's own protocol (SESSION_COOKIE_SECURE=auto).
  const cookieOptions = {
    httpOnly: true,
    sameSite,
    path: '/',
    overwrite: true,
    secure: secure === 'auto' ? undefined : secure === 'true',
  };

  /** Sends a session id, signed, the way the request brought one: in the header, or in the cookie. */
  function sendId(ctx: Context, state: RequestSession, id: string, issuedAt: number): void {
    const value = signer.encode(id, issuedAt);
    if (state.viaHeader) header.send(ctx, value);
    else ctx.cookies.set(name, value, cookieOptions);
  }

  /** Tells the client to drop its session id: an expired cookie, or an empty header. */
  function clearId(ctx: Context, state: RequestSession): void {
    if (state.viaHeader) header.send(ctx, '');
    else ctx.cookies.set(name, '', { ...cookieOptions, expires: new Date(0) });
  }

  /** Whether the response already sends (or clears) the session id. */
  function sendsId(ctx: Context, state: RequestSession): boolean {
    return state.viaHeader ? header.sent(ctx) : sendsCookie(ctx, name);
  }

  /** Whether a cookie issued at `issuedAt` is past SESSION_MAX_LIFETIME (refused from that very ms). */
  function pastLifetime(issuedAt: number): boolean {
    return config.maxLifetimeMs !== null && Date.now() - issuedAt >= config.maxLifetimeMs;
  }

  const externalKey = {
    /** The session id from a valid cookie (or header), or '' to make koa-session start a new session. */
    get(ctx: Context): string {
      const state = requestSessionOf(ctx);
      const carried = header.read(ctx);
      let value: string | undefined;
      if (carried !== undefined) {
        // The header wins over the cookie: an API client that sends it is served by it alone.
        state.viaHeader = true;
        value = carried;
        state.carriedCookie = value !== '';
      } else {
        value = ctx.cookies.get(name);
        state.carriedCookie = value !== undefined;
      }
      const cookie = signer.decode(value);
      if (cookie === undefined) return '';
      if (pastLifetime(cookie.issuedAt)) {
        // Past the absolute lifetime: refused even while in use. Its data goes (the store's TTL was
        // capped to this moment anyway) and the browser is told to drop the cookie, so it does not
        // cost a lookup on every later request. A new session saved by this request replaces it.
        store.destroy(cookie.storeKey).catch(() => {}); // an outage here only leaves a key that expires by itself
        clearId(ctx, state);
        return '';
      }
      // Signed with an older key: re-signed only once the store has the session and it moved to the
      // current key (after the request, see read), never here. A cookie for an id that is gone must not
      // come back freshly signed: a late answer like that could overwrite the cookie of a session made since.
      state.cookie = cookie;
      return cookie.id;
    },
    /** Called by koa-session after each save; sends a cookie only for a new id (the client has the rest). */
    set(ctx: Context, id: string): void {
      const state = requestSessionOf(ctx);
      if (state.ended) return; // nothing was written: no cookie for it
      if (state.cookie?.id === id) return;
      sendId(ctx, state, id, state.issuedAt(id)); // the carried cookie's issue time for its own id
    },
  };

  const requestStore = createRequestStore({
    store,
    storeKeys,
    logger,
    idleLifetimeMs: config.maxAgeMs,
    maxLifetimeMs: config.maxLifetimeMs,
  });
  const session = createSession(
    {
      key: name,
      // No cookie lifetime: the store alone decides expiry (sliding), see above.
      maxAge: 'session',
      store: requestStore.store,
      externalKey,
      genid: () => nanoid(),
      // The signature lives inside our one cookie; koa-session must not ask Keygrip for a second one.
      signed: false,
      ...cookieOptions,
      rolling: false,
      renew: false,
    } as Parameters<typeof createSession>[0],
    app,
  );

  async function serve(ctx: Context, next: Next, mayChange: boolean): Promise<void> {
    // A response that reads or writes a session is personal: no shared or browser cache may keep it.
    ctx.set('Cache-Control', 'no-store');
    // SESSION_COOKIE_SECURE=true asserts that every request reaches us over HTTPS, whatever the socket says.
    if (secure === 'true') ctx.cookies.secure = true;
    const state = startRequestSession(ctx, users);
    state.mayChange = mayChange;
    await session(ctx, next);
    await requestStore.finish(state);
    const carried = state.cookie;
    if (carried !== undefined && pastLifetime(carried.issuedAt) && !sendsId(ctx, state)) {
      // The absolute lifetime ended while this request ran (its cookie was still good when it came
      // in, its store entry gone by the time it was read): clear the cookie now, as if refused.
      clearId(ctx, state);
    } else if (
      carried !== undefined &&
      carried.keyIndex > 0 &&
      state.claimedId === carried.id &&
      !state.ended &&
      !sendsId(ctx, state)
    ) {
      // Signed with an older key, and the store had this session (the request loaded it, still holds
      // it, and moved it to the current key's hash: finish()): re-sign it with the current key.
      sendId(ctx, state, carried.id, carried.issuedAt);
    }
    if (state.viaHeader) {
      // A header-borne session never gets a cookie: koa-session's clearing cookie (a logout) becomes an empty header.
      if (hasCookieLine(ctx, clearingCookie(name)) && !header.sent(ctx) && state.carriedCookie) header.send(ctx, '');
      dropSessionCookies(ctx, `${name}=`);
      if (state.ended) header.remove(ctx);
    } else if (state.ended || (state.destroyed && !state.carriedCookie)) {
      // Another request ended this session first: this response sends no cookie at all (a clearing
      // cookie arriving late could wipe the cookie of a session made since). And a response never
      // clears a cookie the request did not carry (/del without a session sends no Set-Cookie).
      dropSessionCookies(ctx, state.ended ? `${name}=` : clearingCookie(name));
    }
  }

  const read: Middleware = function sessionMiddleware(ctx, next) {
    return serve(ctx, next, false);
  };
  // A header-borne session is exempt: a browser sends no custom header to another site without a CORS
  // preflight the app would have to allow, and with the header present the cookie is not used at all.
  const change: Middleware = (ctx, next) =>
    isCrossSite(ctx) && !header.carried(ctx) ? refuseCrossSite(ctx) : serve(ctx, next, true);

  return { read, change };
}

function setCookieLines(ctx: Context): string[] {
  const lines = ctx.response.get('Set-Cookie') as unknown as string[] | string;
  return Array.isArray(lines) ? lines : [];
}

/** Whether the response already sets (or clears) our cookie. */
function sendsCookie(ctx: Context, name: string): boolean {
  return hasCookieLine(ctx, `${name}=`);
}

function hasCookieLine(ctx: Context, prefix: string): boolean {
  return setCookieLines(ctx).some((line) => line.startsWith(prefix));
}

/** Removes the Set-Cookie lines for our cookie that start with `prefix`. */
function dropSessionCookies(ctx: Context, prefix: string): void {
  const lines = setCookieLines(ctx);
  const kept = lines.filter((line) => !line.startsWith(prefix));
  if (kept.length === lines.length) return;
  if (kept.length === 0) ctx.remove('Set-Cookie');
  else ctx.set('Set-Cookie', kept);
}

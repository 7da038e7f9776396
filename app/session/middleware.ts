/**
 * Server-side sessions with koa-session and a custom external store.
 *
 * - The browser holds only a signed session id (see signed-cookie.ts); the data stays in the store.
 * - Expiry slides as in GoFrame: the store refreshes a session's TTL whenever it is read or written,
 *   so a session lives SESSION_MAX_AGE after its last use. The cookie itself has no Expires (it is a
 *   browser-session cookie) and is sent only when the id changes, never re-sent just to slide.
 * - Any cookie the server cannot verify, or an id the store does not know, starts a fresh, empty
 *   session with a new id: a client can never choose its session id.
 */
import type Koa from 'koa';
import type { Context, Middleware } from 'koa';
import createSession from 'koa-session';
import { nanoid } from 'nanoid';
import type { SessionConfig } from '../../config/index.ts';
import type { SessionStore } from '../stores/store.ts';
import { CookieSigner, type SessionCookie } from './signed-cookie.ts';
import './types.ts';

export interface SessionMiddlewareOptions {
  readonly config: SessionConfig;
  readonly store: SessionStore;
}

export function createSessionMiddleware(app: Koa, { config, store }: SessionMiddlewareOptions): Middleware {
  const { name, sameSite, secure } = config.cookie;
  const signer = new CookieSigner(name, config.keys);
  /** The verified cookie each request arrived with, to know whether the browser already holds the current one. */
  const arrivedWith = new WeakMap<Context, SessionCookie>();

  function writeCookie(ctx: Context, id: string, issuedAt: number): void {
    // SESSION_COOKIE_SECURE=true asserts that every request reaches us over HTTPS, whatever the socket says.
    if (secure === 'true') ctx.cookies.secure = true;
    ctx.cookies.set(name, signer.encode(id, issuedAt), {
      httpOnly: true,
      sameSite,
      path: '/',
      secure: secure === 'auto' ? ctx.secure : secure === 'true',
      overwrite: true,
    });
  }

  const externalKey = {
    /** The session id from a valid cookie, or '' to make koa-session start a new session. */
    get(ctx: Context): string {
      const cookie = signer.decode(ctx.cookies.get(name));
      if (cookie === undefined) return '';
      if (config.maxLifetimeMs !== null && Date.now() - cookie.issuedAt * 1000 >= config.maxLifetimeMs) {
        // Past the absolute lifetime: refuse it even if it is in use, and drop its data.
        store.destroy(cookie.id).catch(() => {});
        return '';
      }
      arrivedWith.set(ctx, cookie);
      if (cookie.keyIndex > 0) writeCookie(ctx, cookie.id, cookie.issuedAt); // re-sign with the current key
      return cookie.id;
    },
    /** Called by koa-session after each save; sends a cookie only when the browser lacks this one. */
    set(ctx: Context, id: string): void {
      const previous = arrivedWith.get(ctx);
      if (previous?.id === id && previous.keyIndex === 0) return;
      writeCookie(ctx, id, previous?.id === id ? previous.issuedAt : Math.floor(Date.now() / 1000));
    },
  };

  const session = createSession(
    {
      key: name,
      // No cookie lifetime: the store alone decides expiry (sliding), see above.
      maxAge: 'session',
      store,
      externalKey,
      genid: () => nanoid(),
      // The signature lives inside our one cookie; koa-session must not ask Keygrip for a second one.
      signed: false,
      httpOnly: true,
      sameSite,
      path: '/',
      overwrite: true,
      rolling: false,
      renew: false,
    } as Parameters<typeof createSession>[0],
    app,
  );

  return function sessionMiddleware(ctx, next) {
    // A response that reads or writes a session is personal: no shared or browser cache may keep it.
    ctx.set('Cache-Control', 'no-store');
    return session(ctx, next);
  };
}

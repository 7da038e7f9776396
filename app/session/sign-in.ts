/**
 * Signing users in, for your own routes (docs/sign-in.md shows a login route). Each function takes the
 * Koa context of a request that went through the session middleware; those that change who is signed in
 * need `session.change` (cross-site requests refused), and throw otherwise.
 *
 *   signIn(ctx, userId)          a new session id, bound to the user, listed with its device label
 *   signedInUser(ctx)            the user id of the request's session, or undefined
 *   signOut(ctx)                 ends this session
 *   signOutEverywhere(ctx)       ends every session of the signed-in user, on every instance
 *   listSessions(ctx)            the signed-in user's sessions: a handle each, never an id
 *   revokeSession(ctx, handle)   ends one of them
 *
 * Nothing here checks a credential: the route does that first (a password, a one-time code, OAuth).
 * How "everywhere" stays final while requests overlap is in user-sessions.ts and docs/sign-in.md.
 */
import type { Context } from 'koa';
import { deviceLabel } from './device-label.ts';
import { type RequestSession, requestSessionOf } from './request-store.ts';
import { HANDLE, MAX_USER_ID_LENGTH } from './stored-session.ts';
import { cleanLabel, newHandle, userKeyOf } from './user-sessions.ts';

export interface SignInOptions {
  /** How the session shows in the user's list; from the User-Agent by default ("Firefox on Linux"). */
  readonly label?: string;
}

/** One of the signed-in user's sessions, as listSessions() shows it. */
export interface SessionInfo {
  /** Names the session to revokeSession(); random, reveals nothing, and is no credential. */
  readonly handle: string;
  readonly label: string;
  readonly createdAt: Date;
  readonly lastUsedAt: Date;
  /** The session of the request that asked. */
  readonly current: boolean;
}

function changing(ctx: Context, what: string): RequestSession {
  const state = requestSessionOf(ctx);
  if (!state.mayChange)
    throw new Error(`${what} needs a route mounted with session.change (cross-site requests refused)`);
  return state;
}

/**
 * Signs `userId` in on this request's session, after the route has checked the user's credential: a new
 * session id (the old one is destroyed, so an id planted before cannot ride the sign-in), bound to the
 * user and listed among their sessions; the response carries the new id. The session's data is kept.
 * Signing in a session that is already signed in (as anyone) replaces that sign-in.
 *
 * Resolves false, with nothing signed in and no cookie sent, when another request ended this session
 * meanwhile (a logout in another tab) or the user was signed out everywhere while this sign-in ran: the
 * route can answer 409 and let the user try again.
 */
export async function signIn(ctx: Context, userId: string, options: SignInOptions = {}): Promise<boolean> {
  const state = changing(ctx, 'signIn()');
  if (typeof userId !== 'string' || userId.length === 0 || userId.length > MAX_USER_ID_LENGTH)
    throw new TypeError(`signIn() needs a user id of 1 to ${MAX_USER_ID_LENGTH} characters`);
  const handle = newHandle();
  state.signingIn = {
    userId,
    userKey: userKeyOf(userId),
    handle,
    label: options.label === undefined ? deviceLabel(ctx.get('User-Agent')) : cleanLabel(options.label),
  };
  try {
    await ctx.session.regenerate();
  } finally {
    state.signingIn = undefined;
  }
  return !state.ended && state.user?.handle === handle;
}

/** The user id the request's session is signed in as, or undefined. */
export function signedInUser(ctx: Context): string | undefined {
  return requestSessionOf(ctx).user?.userId;
}

/** Ends this session (as `ctx.session = null`), whether signed in or not: destroyed, unlisted, cookie cleared. */
export function signOut(ctx: Context): void {
  changing(ctx, 'signOut()');
  ctx.session = null;
}

/**
 * Ends every session of the signed-in user, this one included: once it resolves, none of them works any
 * more, on any instance, even a request of theirs in flight now (its write-back is refused). Resolves how
 * many were listed, or 0 when the request is not signed in.
 */
export async function signOutEverywhere(ctx: Context): Promise<number> {
  const state = changing(ctx, 'signOutEverywhere()');
  const user = state.user;
  if (user === undefined) return 0;
  // This session is destroyed by the request itself (ctx.session = null), so its answer clears the cookie.
  const count = await state.users.endAll(user, state.claimedKey);
  state.user = undefined;
  ctx.session = null;
  return count;
}

/** The signed-in user's sessions, least recently used first; [] when the request is not signed in. */
export async function listSessions(ctx: Context): Promise<SessionInfo[]> {
  const user = requestSessionOf(ctx).user;
  if (user === undefined) return [];
  const entries = await requestSessionOf(ctx).users.list(user);
  return entries.map((entry) => ({
    handle: entry.handle,
    label: entry.label,
    createdAt: new Date(entry.createdAt),
    lastUsedAt: new Date(entry.lastUsedAt),
    current: entry.handle === user.handle,
  }));
}

/**
 * Ends one of the signed-in user's sessions, named by its handle from listSessions(). Only the user's own:
 * a handle of another user's session, an unknown or malformed one, resolves false. The request's own
 * handle ends this session (as signOut()).
 */
export async function revokeSession(ctx: Context, handle: string): Promise<boolean> {
  const state = changing(ctx, 'revokeSession()');
  const user = state.user;
  if (user === undefined || typeof handle !== 'string' || !HANDLE.test(handle)) return false;
  if (handle === user.handle) {
    ctx.session = null;
    return true;
  }
  return state.users.revoke(user, handle);
}

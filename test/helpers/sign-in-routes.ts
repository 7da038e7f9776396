/**
 * Routes of the sign-in tests' own (not the seed's), wired as docs/sign-in.md shows, with the credential
 * check left out: a test names the user it signs in.
 *
 *   POST /login           {"user": "...", "label"?: "..."}: signIn(); 200 {signedIn}, or 409 when it lost a race
 *   GET  /me              {user, note}: who the session is signed in as, and its data
 *   POST /note            {"note": "..."}: stores data in the session (a write-back)
 *   POST /touch           saves the session as it is (a write-back every time)
 *   POST /regenerate      a new id for the session (a privilege change)
 *   POST /logout          signOut()
 *   POST /logout-everywhere   signOutEverywhere(): {ended}
 *   GET  /sessions        listSessions()
 *   POST /revoke          {"handle": "..."}: revokeSession(): 204, or 404
 *   GET  /login-on-read   signIn() on a route mounted with session.read: a bug, answered 500
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { SessionMiddleware } from '../../app/session/middleware.ts';
import {
  listSessions,
  revokeSession,
  signedInUser,
  signIn,
  signOut,
  signOutEverywhere,
} from '../../app/session/sign-in.ts';

declare module '../../app/session/types.ts' {
  interface SessionData {
    /** Data of the sign-in tests, to see that it survives sign-in and regenerate(). */
    note?: string;
  }
}

async function jsonBody(ctx: Context): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of ctx.req) text += chunk;
  return text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
}

export function addSignInRoutes(router: Router, session: SessionMiddleware): void {
  router.post('/login', session.change, async (ctx) => {
    const { user, label } = (await jsonBody(ctx)) as { user: string; label?: string };
    // Here a real route checks the credential first (see docs/sign-in.md).
    const signedIn = await signIn(ctx, user, label === undefined ? {} : { label });
    ctx.status = signedIn ? 200 : 409;
    ctx.body = { signedIn };
  });
  router.get('/me', session.read, (ctx) => {
    ctx.body = { user: signedInUser(ctx) ?? null, note: ctx.session.note ?? null };
  });
  router.post('/note', session.change, async (ctx) => {
    ctx.session.note = String((await jsonBody(ctx)).note);
    ctx.body = { user: signedInUser(ctx) ?? null };
  });
  router.post('/touch', session.change, async (ctx) => {
    await ctx.session.save();
    ctx.body = { user: signedInUser(ctx) ?? null };
  });
  router.post('/regenerate', session.change, async (ctx) => {
    await ctx.session.regenerate();
    ctx.body = { user: signedInUser(ctx) ?? null };
  });
  router.post('/logout', session.change, (ctx) => {
    signOut(ctx);
    ctx.body = { ok: true };
  });
  router.post('/logout-everywhere', session.change, async (ctx) => {
    ctx.body = { ended: await signOutEverywhere(ctx) };
  });
  router.get('/sessions', session.read, async (ctx) => {
    ctx.body = await listSessions(ctx);
  });
  router.post('/revoke', session.change, async (ctx) => {
    const { handle } = (await jsonBody(ctx)) as { handle: string };
    ctx.status = (await revokeSession(ctx, handle)) ? 204 : 404;
  });
  router.get('/login-on-read', session.read, async (ctx) => {
    await signIn(ctx, 'someone');
    ctx.body = 'not reached';
  });
}

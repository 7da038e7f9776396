/**
 * The routes the machinery tests drive (sessions, stores, cookies, logout, lifetime, shutdown, …):
 * startApp/appForTest mount them unless a test passes `routes`, and test/helpers/test-server.ts serves
 * them in a child process. They are not the seed's (app/seed/), so that deleting the seed leaves every
 * one of those tests running; their paths differ from the seed's so that no test can reach the seed by
 * mistake. Written as app code writes routes: `session.read` for a route that only reads the session,
 * `session.change` for one that changes or ends it.
 *
 * Each answers every HTTP method, as the seed's do (a link, a form and a background fetch of another
 * site can all reach it), except the two logins, which are POST as a real login is.
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { SessionMiddleware } from '../../app/session/middleware.ts';

declare module '../../app/session/types.ts' {
  interface SessionData {
    /** What the last /write (or /login) stored: its `value` query parameter. */
    value?: string;
  }
}

/** What /write stores when the request names no value. */
export const DEFAULT_VALUE = 'written';

/** The request's `value` query parameter (the first, if repeated), or `fallback`. */
function queryValue(ctx: Context, fallback: string): string {
  const { value } = ctx.query;
  return (Array.isArray(value) ? value[0] : value) ?? fallback;
}

export function addTestRoutes(router: Router, session: SessionMiddleware): void {
  /** /write?value=x: stores x as the session's `value` (DEFAULT_VALUE without one); a new session if none. */
  router.all('/write', session.change, (ctx) => {
    ctx.session.value = queryValue(ctx, DEFAULT_VALUE);
    ctx.body = 'ok';
  });

  /** /read: the session's data as JSON; {} without a session (and nothing is stored or sent for it). */
  router.all('/read', session.read, (ctx) => {
    ctx.body = ctx.session.toJSON();
  });

  /** /end: destroys the session (store entry and cookie), as a logout does. */
  router.all('/end', session.change, (ctx) => {
    ctx.session = null;
    ctx.body = 'ok';
  });

  /** /save: writes the loaded session back unchanged (a /write of the same value writes nothing). */
  router.all('/save', session.change, async (ctx) => {
    await ctx.session.save();
    ctx.body = 'ok';
  });

  /** POST /regenerate: a new id for the same data, and nothing more (the first half of a login). */
  router.post('/regenerate', session.change, async (ctx) => {
    await ctx.session.regenerate();
    ctx.body = 'regenerated';
  });

  /** POST /login?value=x: the README's login, regenerate() then a change (the request saves twice). */
  router.post('/login', session.change, async (ctx) => {
    await ctx.session.regenerate();
    ctx.session.value = queryValue(ctx, 'logged in');
    ctx.body = 'welcome';
  });
}

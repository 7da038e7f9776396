/**
 * The three routes of GoFrame's memory-session example. Like GoFrame's `group.ALL`, each answers
 * every HTTP method. Only these routes pass through the session middleware, so other paths (404s,
 * a health check) never touch the store.
 */
import type Router from '@koa/router';
import type { Middleware } from 'koa';

export function addSessionRoutes(router: Router, session: Middleware): void {
  router.all('/set', session, (ctx) => {
    ctx.session.time = Math.floor(Date.now() / 1000); // Unix time in seconds, as gtime.Timestamp()
    ctx.body = 'ok';
  });

  router.all('/get', session, (ctx) => {
    // toJSON leaves out koa-session's own `_` fields; a new session serializes as {}.
    ctx.body = ctx.session.toJSON();
  });

  router.all('/del', session, (ctx) => {
    ctx.session = null; // koa-session deletes the stored session and clears the cookie
    ctx.body = 'ok';
  });
}

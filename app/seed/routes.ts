/**
 * The seed: GoFrame's "Session - Memory" example, as Koa routes. Like GoFrame's `group.ALL`, each
 * answers every HTTP method. Delete this folder (and test/seed/) when you start your own service, and
 * drop its one call in app/routes.ts: nothing else depends on it.
 *
 * /set and /del change the session, so they go through `session.change`, which refuses cross-site
 * requests first; /get only reads it.
 */
import type Router from '@koa/router';
import type { SessionMiddleware } from '../session/middleware.ts';

declare module '../session/types.ts' {
  interface SessionData {
    /** Unix time in seconds of the last /set. */
    time?: number;
  }
}

export function addSeedRoutes(router: Router, session: SessionMiddleware): void {
  router.all('/set', session.change, (ctx) => {
    ctx.session.time = Math.floor(Date.now() / 1000); // Unix time in seconds, as gtime.Timestamp()
    ctx.body = 'ok';
  });

  router.all('/get', session.read, (ctx) => {
    // toJSON leaves out koa-session's own `_` fields; a new session serializes as {}.
    ctx.body = ctx.session.toJSON();
  });

  router.all('/del', session.change, (ctx) => {
    ctx.session = null; // the stored session is destroyed and the cookie cleared (see session/request-store.ts)
    ctx.body = 'ok';
  });

  // `/`: a short answer that names the routes, so a first visit in a browser is not a bare "Not Found".
  router.get('/', (ctx) => {
    ctx.type = 'text/plain';
    ctx.body = [
      'Koa session starter (GoFrame "Session - Memory"):',
      '  /set  stores the current Unix time in your session',
      '  /get  shows your session as JSON',
      '  /del  ends your session',
      '  /healthz  for load balancers and probes',
      '',
    ].join('\n');
  });
}

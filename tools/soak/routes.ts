/**
 * The soak's own routes, with the seed's meaning, kept here so that the soak outlives the seed: /set
 * stores the Unix time in the session, /get shows the session as JSON, /del ends it. /set and /del
 * change the session, so they go through `session.change`; /get only reads it.
 */
import type Router from '@koa/router';
import type { SessionMiddleware } from '../../app/session/middleware.ts';

declare module '../../app/session/types.ts' {
  interface SessionData {
    /** Unix time in seconds of the last /set. */
    time?: number;
  }
}

export function addSoakRoutes(router: Router, session: SessionMiddleware): void {
  router.all('/set', session.change, (ctx) => {
    ctx.session.time = Math.floor(Date.now() / 1000);
    ctx.body = 'ok';
  });
  router.all('/get', session.read, (ctx) => {
    ctx.body = ctx.session.toJSON();
  });
  router.all('/del', session.change, (ctx) => {
    ctx.session = null;
    ctx.body = 'ok';
  });
}

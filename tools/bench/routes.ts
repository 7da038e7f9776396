/**
 * The benchmark's own routes, with the seed's meaning (so the figures compare with the baselines'
 * routes of the same names), kept here so that the benchmark outlives the seed: /set stores the Unix
 * time in the session (a change: through `session.change`, the cross-site check first), /get shows the
 * session as JSON (a read).
 */
import type Router from '@koa/router';
import type { SessionMiddleware } from '../../app/session/middleware.ts';

declare module '../../app/session/types.ts' {
  interface SessionData {
    /** Unix time in seconds of the last /set. */
    time?: number;
  }
}

export function addBenchRoutes(router: Router, session: SessionMiddleware): void {
  router.all('/set', session.change, (ctx) => {
    ctx.session.time = Math.floor(Date.now() / 1000);
    ctx.body = 'ok';
  });
  router.all('/get', session.read, (ctx) => {
    ctx.body = ctx.session.toJSON();
  });
}

/**
 * The benchmark's own routes, with the seed's meaning (so the figures compare with the baselines'
 * routes of the same names), kept here so that the benchmark outlives the seed: /set stores the Unix
 * time in the session (a change: through `session.change`, the cross-site check first), /get shows the
 * session as JSON (a read). POST /sign-in signs a bench user in (and stores the time, as /set): the
 * signed-in scenario's session.
 */
import type Router from '@koa/router';
import type { SessionMiddleware } from '../../app/session/middleware.ts';
import { signIn } from '../../app/session/sign-in.ts';

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
  router.post('/sign-in', session.change, async (ctx) => {
    await signIn(ctx, 'bench-user');
    ctx.session.time = Math.floor(Date.now() / 1000);
    ctx.body = 'ok';
  });
}

/**
 * Your routes. app/main.ts passes addRoutes to the server; tests pass it to appForTest (see
 * docs/testing.md). Routes that use the session take one of the session middlewares first:
 * `session.read` for routes that only read it, `session.change` for routes that change or end it
 * (it answers 403 to cross-site requests before the session is touched). Paths without either never
 * touch the store.
 *
 * Today it mounts the seed, GoFrame's example (app/seed/): to start your own service, delete the
 * import and the call below, and app/seed/ with test/seed/.
 */
import type Router from '@koa/router';
import { addSeedRoutes } from './seed/routes.ts';
import type { SessionMiddleware } from './session/middleware.ts';

export function addRoutes(router: Router, session: SessionMiddleware): void {
  // Yours go here, e.g. router.get('/me', session.read, (ctx) => { ctx.body = ctx.session.toJSON(); });
  addSeedRoutes(router, session);
}

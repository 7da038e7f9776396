/**
 * GET /healthz for load balancers and orchestrators: 200 while the store answers, 503 once shutdown
 * has begun (so traffic drains away) or while the store is unreachable. It never touches a session.
 */
import Router from '@koa/router';
import type { SessionStore } from './stores/store.ts';

export interface Lifecycle {
  /** Set by the server entry when SIGTERM/SIGINT arrives. */
  shuttingDown: boolean;
}

export function createHealthRoutes(store: SessionStore, lifecycle: Lifecycle): Router {
  const router = new Router();
  router.get('/healthz', async (ctx) => {
    const health = await store.health();
    const ok = health.ok && !lifecycle.shuttingDown;
    ctx.status = ok ? 200 : 503;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: ok ? 'ok' : lifecycle.shuttingDown ? 'shutting down' : 'store unavailable', store: { kind: store.kind, ...health } };
  });
  return router;
}

/**
 * What the app knows of the process's life: whether shutdown has begun. It drives GET /healthz, for
 * load balancers and orchestrators (200 while the store answers; 503 once shutdown has begun, so
 * traffic drains away, or while the store is unreachable; it never touches a session), and asks
 * keep-alive clients to reconnect elsewhere during shutdown.
 */
import Router from '@koa/router';
import type { Middleware } from 'koa';
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

/** During shutdown, answers carry `Connection: close` so keep-alive clients move to another instance. */
export function closeConnectionsOnShutdown(lifecycle: Lifecycle): Middleware {
  return async function closeOnShutdown(ctx, next) {
    if (lifecycle.shuttingDown) ctx.set('Connection', 'close');
    await next();
  };
}

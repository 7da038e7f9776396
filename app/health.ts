/**
 * GET /healthz, for load balancers and orchestrators: 200 while the store answers; 503 once shutdown
 * has begun (so traffic drains away during SHUTDOWN_DRAIN) or while the store is unreachable. It never
 * touches a session. It also reports the process's memory and event-loop delay, for graphs and the soak test.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type Router from '@koa/router';
import type { Lifecycle } from './shutdown.ts';
import type { SessionStore } from './stores/store.ts';

const EVENT_LOOP_SAMPLING_MS = 10;

export function addHealthRoute(router: Router, store: SessionStore, lifecycle: Lifecycle): void {
  // Event-loop delay since the previous /healthz. Node's histogram records the whole interval
  // between its timer's ticks, sampling interval included: that is taken off.
  const eventLoopDelay = monitorEventLoopDelay({ resolution: EVENT_LOOP_SAMPLING_MS });
  eventLoopDelay.enable();
  const lateMs = (nanoseconds: number) =>
    Math.max(0, Math.round((nanoseconds / 1e6 - EVENT_LOOP_SAMPLING_MS) * 100) / 100);
  router.all('/healthz', async (ctx) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.status = 405;
      ctx.set('Allow', 'GET, HEAD');
      return;
    }
    const health = await store.health();
    const ok = health.ok && !lifecycle.shuttingDown;
    const memory = process.memoryUsage();
    ctx.status = ok ? 200 : 503;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      status: ok ? 'ok' : lifecycle.shuttingDown ? 'shutting down' : 'store unavailable',
      store: { kind: store.kind, ...health },
      process: {
        rssBytes: memory.rss,
        heapUsedBytes: memory.heapUsed,
        eventLoopDelayP99Ms: lateMs(eventLoopDelay.percentile(99)),
        eventLoopDelayMaxMs: lateMs(eventLoopDelay.max),
      },
    };
    eventLoopDelay.reset();
  });
}

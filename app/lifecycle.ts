/**
 * What the app knows of the process's life: whether shutdown has begun. It drives GET /healthz, for
 * load balancers and orchestrators (200 while the store answers; 503 once shutdown has begun, so
 * traffic drains away during SHUTDOWN_DRAIN, or while the store is unreachable; it never touches a
 * session), and asks keep-alive clients to reconnect elsewhere during shutdown.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type Router from '@koa/router';
import type { Middleware } from 'koa';
import type { SessionStore } from './stores/store.ts';

const EVENT_LOOP_SAMPLING_MS = 10;

export interface Lifecycle {
  /** Set by the server entry when SIGTERM/SIGINT arrives: /healthz answers 503 from then on. */
  shuttingDown: boolean;
  /**
   * Whether answers carry `Connection: close`; when unset, exactly while shutting down. The server
   * entry lets connections stay open for a moment just before it closes its listener (app/server.ts).
   */
  closeConnections?: boolean;
}

export function addHealthRoute(router: Router, store: SessionStore, lifecycle: Lifecycle): void {
  // Event-loop delay since the previous /healthz: the soak test reads it, operators can graph it.
  // Node's histogram records the whole interval between its timer's ticks, sampling interval included.
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

/**
 * During shutdown, answers carry `Connection: close`: the keep-alive client closes the connection
 * itself once it has the answer, and opens its next one elsewhere. (The server never closes a
 * keep-alive connection under a client that may be sending on it.)
 */
export function closeConnectionsOnShutdown(lifecycle: Lifecycle): Middleware {
  /** Connections already told to close: a request pipelined behind that answer must not be processed. */
  const closing = new WeakSet<object>();
  return function closeOnShutdown(ctx, next) {
    if (!(lifecycle.closeConnections ?? lifecycle.shuttingDown)) return next();
    const { socket } = ctx.req;
    if (closing.has(socket)) {
      // RFC 9112 §9.6: after sending `close`, a server must not process further requests on that
      // connection. Node would run this one and then drop its answer with the socket; refuse it
      // instead, so nothing is done that nobody hears about (a pipelined /del, say).
      ctx.status = 503;
      ctx.set('Connection', 'close');
      ctx.body = {
        error: 'Service Unavailable',
        message: 'This connection is closing; send the request again on a new one.',
      };
      return;
    }
    closing.add(socket);
    ctx.set('Connection', 'close');
    return next();
  };
}

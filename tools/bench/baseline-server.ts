/**
 * The benchmark's baselines, served like app/server.ts with the same three routes:
 *   bare         Koa and @koa/router, no sessions: what the routes cost without them;
 *   floor        the cheapest setup koa-session allows: an unsigned id cookie read by externalKey, a
 *                bare Map holding koa-session's own objects (no copies, no bound, no expiry, no
 *                signature). Unsafe (a client chooses its session id, memory grows without end): a
 *                yardstick for what koa-session itself costs, never a setup to use;
 *   koa-session  koa-session's defaults (Keygrip-signed `name` + `name.sig` cookies) with a plain Map
 *                store: what the usual setup costs, for reference.
 * BENCH_BUSY_MICROS (the benchmark's --calibrate): that many µs of busy work in each route, so that the
 * benchmark can show what a known amount of added work costs a server in its rounds.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import Koa, { type Context, type Middleware } from 'koa';
import createSession from 'koa-session';

const kind = process.argv[2];
const app = new Koa();
let session: Middleware = (_ctx, next) => next();
if (kind === 'koa-session') {
  app.keys = ['baseline-signing-key-0123456789abcdefghijkl'];
  const sessions = new Map<string, unknown>();
  const store = {
    get: async (id: string) => sessions.get(id),
    set: async (id: string, value: unknown) => void sessions.set(id, value),
    destroy: async (id: string) => void sessions.delete(id),
  };
  session = createSession({ store } as Parameters<typeof createSession>[0], app);
} else if (kind === 'floor') {
  const sessions = new Map<string, unknown>();
  const store = {
    get: async (id: string) => sessions.get(id),
    set: async (id: string, value: unknown) => void sessions.set(id, value),
    destroy: async (id: string) => void sessions.delete(id),
  };
  const externalKey = {
    get: (ctx: Context) => ctx.cookies.get('sid') ?? '',
    set: (ctx: Context, id: string) => void ctx.cookies.set('sid', id, { signed: false }),
  };
  session = createSession(
    { key: 'sid', signed: false, store, externalKey } as Parameters<typeof createSession>[0],
    app,
  );
} else if (kind !== 'bare') {
  throw new Error('usage: baseline-server.ts bare|floor|koa-session');
}

const busyMicros = Number(process.env.BENCH_BUSY_MICROS ?? 0);
/** Spins for busyMicros of wall-clock time: at most that much CPU (less if the process is preempted meanwhile). */
function busyWork(): void {
  if (busyMicros <= 0) return;
  const until = performance.now() + busyMicros / 1000;
  while (performance.now() < until);
}

const router = new Router();
router.all('/set', session, (ctx) => {
  busyWork();
  if (kind !== 'bare') ctx.session.time = Math.floor(Date.now() / 1000);
  ctx.body = 'ok';
});
router.all('/get', session, (ctx) => {
  busyWork();
  ctx.body = kind === 'bare' ? {} : ctx.session.toJSON();
});
router.all('/del', session, (ctx) => {
  if (kind !== 'bare') ctx.session = null;
  ctx.body = 'ok';
});
app.use(router.routes());

const server = createServer(app.callback()).listen(0, '127.0.0.1');
await once(server, 'listening');
const { port } = server.address() as AddressInfo;
process.stdout.write(`${JSON.stringify({ msg: 'listening', url: `http://127.0.0.1:${port}` })}\n`);
process.once('SIGTERM', () => server.close(() => process.exit(0)));

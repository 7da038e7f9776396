/**
 * The server of `--sessions` rows (run.ts): the benchmark's server (server.ts's start-up and routes) plus
 * POST /bench-fill?count=N, which adds N live sessions to this process's memory store before the row is
 * measured. The first is made by the session middleware itself, as GET /set without a cookie makes one
 * (koa-session, the request's view of the store, the store key, the store's create), on a request object made
 * in the process; the others are written by that same store call with the first one's text and TTL, each under
 * a store key of 128 random bits (what a store key is to the store), several times quicker than the whole
 * path for each, which would make a million the longest part of a run's set-up.
 * The answer says how many sessions were written, how long it took, and the heap's growth per session
 * after full collections.
 *
 * How the route reaches the store: startServer() builds it and hands it to no one, so MemoryStore's create
 * is wrapped for that first session only (it records the store, the text and the TTL, then puts the method
 * back as it was). Only these rows run this file: the other rows' servers have one route less to match.
 */
import { randomBytes } from 'node:crypto';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type Router from '@koa/router';
import { startServer } from '../../app/server.ts';
import type { SessionMiddleware } from '../../app/session/middleware.ts';
import { MemoryStore } from '../../app/stores/memory.ts';
import { addBenchRoutes } from './routes.ts';

// A full collection on demand, for the heap's growth: --expose-gc set at run time reaches a new context's gc.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** A store key's bytes (app/session/store-keys.ts), and how many keys' worth of random bytes to draw at once. */
const STORE_KEY_BYTES = 16;
const KEYS_AT_ONCE = 4_096;

function settledHeap(): number {
  for (let i = 0; i < 4; i++) gc();
  return process.memoryUsage().heapUsed;
}

interface FirstWrite {
  readonly store: MemoryStore;
  readonly text: string;
  readonly ttlMs: number;
}

/** Records the next MemoryStore.create call (the first session's), and puts the method back. */
function recordNextCreate(): () => FirstWrite | undefined {
  const create = MemoryStore.prototype.create;
  let first: FirstWrite | undefined;
  MemoryStore.prototype.create = function (this: MemoryStore, id: string, text: string, ttlMs: number) {
    MemoryStore.prototype.create = create;
    first = { store: this, text, ttlMs };
    return create.call(this, id, text, ttlMs);
  };
  return () => {
    MemoryStore.prototype.create = create;
    return first;
  };
}

function addFillRoute(router: Router, session: SessionMiddleware): void {
  router.post('/bench-fill', async (ctx) => {
    const count = Number(ctx.query.count);
    if (!(Number.isSafeInteger(count) && count >= 0)) ctx.throw(400, 'count: a whole number of sessions');
    const heapBefore = settledHeap();
    const started = performance.now();
    let created = 0;
    if (count > 0) {
      const recorded = recordNextCreate();
      const req = new IncomingMessage(new Socket());
      req.method = 'GET';
      req.url = '/set';
      req.headers = { host: 'localhost' };
      const res = new ServerResponse(req);
      const first = ctx.app.createContext(req, res);
      await session.change(first, async () => {
        first.session.time = Math.floor(Date.now() / 1000);
      });
      const write = recorded();
      if (write === undefined || !res.hasHeader('set-cookie'))
        throw new Error('the first session made no write to a memory store (SESSION_STORE=memory?)');
      created = 1;
      const { store, text, ttlMs } = write;
      // The store keys of new ids: an HMAC's first 128 bits, in base64url; 128 random bits are the same to the
      // store (a 22-character key, none alike) and three times quicker to make than nanoid and the HMAC.
      for (let done = 1; done < count; done += KEYS_AT_ONCE) {
        const bytes = randomBytes(STORE_KEY_BYTES * KEYS_AT_ONCE);
        for (let i = 0; i < KEYS_AT_ONCE && done + i < count; i++) {
          const key = bytes.toString('base64url', i * STORE_KEY_BYTES, (i + 1) * STORE_KEY_BYTES);
          if (await store.create(key, text, ttlMs)) created++;
        }
      }
    }
    const fillMs = performance.now() - started;
    const heapAfter = settledHeap();
    ctx.body = {
      created,
      fillMs: Math.round(fillMs),
      heapBytesPerSession: count === 0 ? 0 : Math.round((heapAfter - heapBefore) / count),
    };
  });
}

await startServer((router, session) => {
  addBenchRoutes(router, session);
  addFillRoute(router, session);
});

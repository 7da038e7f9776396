/**
 * One JSON log line per request, at info: method, path, status, duration and a request id. The id is
 * taken from a well-formed X-Request-Id (set by a proxy in front) or made here, returned in the
 * response header, and put on ctx.state so error logs can carry it. Query strings and cookies are left
 * out: they may hold secrets, and a session id must never reach the logs.
 *
 * The line is the one pino would write for logger.info({ method, path, status, durationMs, requestId },
 * 'request'), built here in one template and written to the logger's own destination, in its place
 * among the other lines: it is written for every request, and pino's general path (merging, checking
 * and escaping an object of any shape) was a large part of its cost (docs/benchmark.md).
 */
import { randomBytes } from 'node:crypto';
import type { Middleware } from 'koa';
import { destinationOf, isoTime, type Logger } from './logger.ts';

const INCOMING_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Ids made here: a random prefix drawn at start and a counter (`Xq3vR8kT2bWm-1a`). Unique: the counter
 * never repeats within the process, and 72 random bits tell processes apart. Not secret, and it need
 * not be: a client may send any well-formed id of its own, so nothing trusts one; what a client can
 * read from two of its ids is how many requests the process served in between.
 */
const ID_PREFIX = `${randomBytes(9).toString('base64url')}-`;
let requestCount = 0;

/** Mount only when info is enabled (app.ts checks), so quieter levels cost nothing per request. */
export function requestLog(logger: Logger): Middleware {
  const destination = destinationOf(logger);
  return async function logRequest(ctx, next) {
    const started = performance.now();
    // Node's own header calls: Koa's ctx.get and ctx.set lower-case the name on every call.
    const incoming = ctx.req.headers['x-request-id'];
    const requestId =
      typeof incoming === 'string' && INCOMING_REQUEST_ID.test(incoming)
        ? incoming
        : ID_PREFIX + (++requestCount).toString(36);
    ctx.state.requestId = requestId;
    ctx.res.setHeader('X-Request-Id', requestId);
    try {
      await next();
    } finally {
      const durationMs = Math.round((performance.now() - started) * 1000) / 1000;
      // Paths are cut short: a hostile client must not be able to write huge log lines. The method and
      // the request id need no escaping: Node's parser takes only methods it knows (letters and `-`),
      // and both kinds of id are made of [A-Za-z0-9._:-].
      destination.write(
        `{"level":"info","time":"${isoTime()}","method":"${ctx.method}",` +
          `"path":${JSON.stringify(ctx.path.slice(0, 200))},"status":${ctx.status},"durationMs":${durationMs},` +
          `"requestId":"${requestId}","msg":"request"}\n`,
      );
    }
  };
}

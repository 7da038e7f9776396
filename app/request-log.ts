/**
 * One JSON log line per request, at info: method, path, status, duration and a request id. The id is
 * taken from a well-formed X-Request-Id (set by a proxy in front) or made here, returned in the
 * response header, and put on ctx.state so error logs can carry it. Query strings and cookies are left
 * out: they may hold secrets, and a session id must never reach the logs.
 */
import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';
import type { Logger } from './logger.ts';

const INCOMING_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Mount only when info is enabled (app.ts checks), so quieter levels cost nothing per request. */
export function requestLog(logger: Logger): Middleware {
  return async function logRequest(ctx, next) {
    const started = process.hrtime.bigint();
    const incoming = ctx.get('X-Request-Id');
    const requestId = INCOMING_REQUEST_ID.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = requestId;
    ctx.set('X-Request-Id', requestId);
    try {
      await next();
    } finally {
      const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
      // Paths are cut short: a hostile client must not be able to write huge log lines.
      logger.info(
        {
          method: ctx.method,
          path: ctx.path.slice(0, 200),
          status: ctx.status,
          durationMs: Math.round(durationMs * 1000) / 1000,
          requestId,
        },
        'request',
      );
    }
  };
}

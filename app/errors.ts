/**
 * The app's one error boundary. Errors Koa or a handler marks as safe to show (4xx with
 * `expose`) keep their status and message; a store outage answers 503; anything else is a bug,
 * answered 500 with a generic body and logged once, with its stack, on the server only. The 503s are
 * not logged one by one (an outage under load would flood the log): they are counted, and summarized
 * in one line per interval (app/log-summary.ts); the store logs the outage itself when it starts and ends.
 */
import type { Middleware } from 'koa';
import { summarizedWarning } from './log-summary.ts';
import type { Logger } from './logger.ts';
import { StoreUnavailableError } from './stores/store.ts';

interface HttpError extends Error {
  status?: number;
  expose?: boolean;
}

export function errorHandler(logger: Logger): Middleware {
  const unavailable = summarizedWarning(
    logger,
    (count) => `${count} ${count === 1 ? 'request' : 'requests'} answered 503: session store unavailable`,
  );
  return async function handleErrors(ctx, next) {
    try {
      await next();
    } catch (caught) {
      const error: HttpError = caught instanceof Error ? caught : new Error(String(caught));
      // Whatever the handler had set (cookies included) must not leak into the error response.
      ctx.res.removeHeader('Set-Cookie');
      ctx.set('Cache-Control', 'no-store');
      if (error instanceof StoreUnavailableError) {
        unavailable.add({ method: ctx.method, path: ctx.path, requestId: ctx.state.requestId, err: error.message });
        ctx.status = 503;
        ctx.set('Retry-After', '1');
        ctx.body = { error: 'Service Unavailable', message: 'The session store is unavailable; try again shortly.' };
      } else if (
        error.expose === true &&
        typeof error.status === 'number' &&
        error.status >= 400 &&
        error.status < 500
      ) {
        ctx.status = error.status;
        ctx.body = { error: error.message };
      } else {
        logger.error(
          { method: ctx.method, path: ctx.path, requestId: ctx.state.requestId, err: error },
          'unhandled error',
        );
        ctx.status = 500;
        ctx.body = { error: 'Internal Server Error' };
      }
    }
  };
}

/**
 * The app factory: builds a Koa app from its dependencies (settings, store, logger, routes), without
 * listening, so tests can build as many apps as they like with settings and routes of their own.
 * app/server.ts is what listens.
 */
import Router from '@koa/router';
import Koa from 'koa';
import type { Config } from '../config/index.ts';
import { errorHandler } from './errors.ts';
import { addHealthRoute } from './health.ts';
import type { Logger } from './logger.ts';
import { requestLog } from './request-log.ts';
import { createSessionMiddleware, type SessionMiddleware } from './session/middleware.ts';
import { closeConnectionsOnShutdown, type Lifecycle } from './shutdown.ts';
import type { SessionStore } from './stores/store.ts';

/** Mounts routes on the app's router; `session` holds the session middlewares (see app/routes.ts). */
export type AddRoutes = (router: Router, session: SessionMiddleware) => void;

export interface AppDependencies {
  readonly config: Config;
  readonly store: SessionStore;
  readonly logger: Logger;
  /** Shared with the server entry, which flags the start of shutdown; tests may leave it out. */
  readonly lifecycle?: Lifecycle;
  /** The app's routes: app/routes.ts's addRoutes for `npm start`; tests bring their own. */
  readonly routes: AddRoutes;
}

export function createApp({
  config,
  store,
  logger,
  lifecycle = { shuttingDown: false },
  routes,
}: AppDependencies): Koa {
  // proxy: trust X-Forwarded-Proto/-For only when told a proxy is in front (TRUST_PROXY).
  const app = new Koa({ proxy: config.http.trustProxy });
  // errorHandler catches what the middleware throws; this logs what fails outside it (a broken response stream).
  app.on('error', (error: unknown) => logger.error({ err: error }, 'response error'));

  // One router for every route: one path match per request.
  const router = new Router();
  addHealthRoute(router, store, lifecycle);
  routes(router, createSessionMiddleware(app, { config: config.session, store, logger }));

  if (logger.isLevelEnabled('info')) app.use(requestLog(logger));
  app.use(closeConnectionsOnShutdown(lifecycle));
  app.use(errorHandler(logger));
  app.use(router.routes());
  return app;
}

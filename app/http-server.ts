/**
 * The Node HTTP server around the app, with the timeouts that protect it from slow or stalled
 * clients (slowloris): a client that has not sent its headers within HTTP_HEADERS_TIMEOUT, or its
 * whole request within HTTP_REQUEST_TIMEOUT, gets 408 and is disconnected, while others are served;
 * and with the bound on the requests one connection runs at once (app/pipelining.ts), so a client
 * that pipelines thousands of requests cannot take the store from everyone else.
 */
import { createServer, type Server } from 'node:http';
import type Koa from 'koa';
import type { HttpConfig } from '../config/index.ts';
import { boundPipelining } from './pipelining.ts';

export function createHttpServer(app: Koa, http: HttpConfig): Server {
  return createServer(
    {
      headersTimeout: http.headersTimeoutMs,
      requestTimeout: http.requestTimeoutMs,
      keepAliveTimeout: http.keepAliveTimeoutMs,
      // How often Node checks those timeouts; its default (30 s) would let them overrun by that much.
      connectionsCheckingInterval: Math.min(1_000, http.headersTimeoutMs),
    },
    boundPipelining(app.callback()),
  );
}

/**
 * The Node HTTP server around the app, with the timeouts that protect it from slow or stalled
 * clients (slowloris): a client that has not sent its headers within HTTP_HEADERS_TIMEOUT, or its
 * whole request within HTTP_REQUEST_TIMEOUT, gets 408 and is disconnected, while others are served.
 * Also the two pieces of a graceful stop that need Node's details: closing only the listener, and
 * counting the connections still open.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Server as NetServer, type Socket } from 'node:net';
import type Koa from 'koa';
import type { HttpConfig } from '../config/index.ts';

export function createHttpServer(app: Koa, http: HttpConfig): Server {
  return createServer(
    {
      headersTimeout: http.headersTimeoutMs,
      requestTimeout: http.requestTimeoutMs,
      keepAliveTimeout: http.keepAliveTimeoutMs,
      // How often Node checks those timeouts; its default (30 s) would let them overrun by that much.
      connectionsCheckingInterval: Math.min(1_000, http.headersTimeoutMs),
    },
    app.callback(),
  );
}

/**
 * The server's open connections, and which of them carry a request right now. Node's
 * closeIdleConnections() closes only keep-alive connections that have served a request; a connection
 * that never sent one (a browser's pre-opened socket, a client stalled in its headers) stays open
 * until HTTP_HEADERS_TIMEOUT and would hold the shutdown past its deadline.
 */
export interface Connections {
  readonly count: () => number;
  /** Closes every connection that is not carrying a request right now (may race a client about to send). */
  readonly closeAllIdle: () => void;
}

/** The newest response on a connection (a property on the socket: one write per request, no listener). */
const NEWEST_RESPONSE = Symbol('newest response');
type TrackedSocket = Socket & { [NEWEST_RESPONSE]?: ServerResponse };

export function trackConnections(server: Server): Connections {
  const open = new Set<TrackedSocket>();
  server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  // A connection answers its requests in order (pipelined ones wait their turn), so it carries a
  // request while its newest response is unfinished (one whose headers are still arriving has no
  // response yet: the race closeAllIdle admits). Remembering that response costs every request one
  // property write: no map of connections, no per-response listener.
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    (request.socket as TrackedSocket)[NEWEST_RESPONSE] = response;
  });
  return {
    count: () => open.size,
    closeAllIdle() {
      for (const socket of open) {
        const newest = socket[NEWEST_RESPONSE];
        if (newest === undefined || newest.writableFinished) socket.destroy();
      }
    },
  };
}

/**
 * Closes the listening socket and nothing else: new connections are refused, every open connection
 * is left to end by itself. Resolves once the listener is closed and the last connection has ended.
 *
 * Why not server.close(): since Node 19 it also calls server.closeIdleConnections(), which destroys
 * every keep-alive connection that sits between two requests. Nothing tells the server whether the
 * client is sending its next request on that socket at that very moment (or already has, and the
 * bytes are in the kernel's buffer): that request is then lost, and the client sees ECONNRESET or
 * "socket hang up". HTTP/1.1 gives a server no way to warn an idle connection; the only safe close
 * is the one the client was told about (measured with server.close() here: each of 8 keep-alive
 * clients sending back to back lost one request). So idle connections are left alone:
 * - one that carries another request is served, and the answer has `Connection: close` (see
 *   lifecycle.ts), after which Node closes it: the client knows and opens a new one elsewhere;
 * - one that stays idle is closed by Node's keep-alive timeout (HTTP_KEEP_ALIVE_TIMEOUT after its
 *   last answer), which every answer announced in its `Keep-Alive: timeout=N` header, so a client
 *   that honours it (undici/fetch; Node's Agent when given a timeout) stops reusing the socket
 *   before then. That is the same close as in normal running, not a new race. It also bounds the
 *   wait: with SHUTDOWN_DRAIN at least HTTP_KEEP_ALIVE_TIMEOUT (the defaults: 5 s each), every
 *   connection idle since before the signal has timed out by the end of the drain.
 * net.Server's close (http.Server extends it) closes the listener without that idle sweep. It also
 * leaves Node's check of the headers and request timeouts running, so a client that stalls in the
 * middle of a request is still answered 408 and disconnected.
 */
export function closeListener(server: Server): Promise<void> {
  const closed = once(server, 'close').then(() => undefined);
  NetServer.prototype.close.call(server);
  return closed;
}

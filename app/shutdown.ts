/**
 * Graceful shutdown, in one place: on SIGTERM the server drains, settles, closes its listener and
 * waits for the connections still open, all under one deadline; SIGINT asks for a quick stop. The
 * steps, and why each is there, are in docs/shutdown.md.
 *
 * From the signal on, /healthz answers 503 (lifecycle.shuttingDown), so a load balancer moves traffic
 * away. The server never cuts off a connection that carries a request (but at the deadline), so every
 * request it receives gets a whole answer. A connection carries a request from the moment a request's
 * headers are in until that request has been answered and its body has all arrived (an answer may go
 * out before the body is in: a 404, say, or a 401 to an upload). One stalled in its headers carries
 * none (HTTP_HEADERS_TIMEOUT or the idle cutoff below closes it).
 * 1. Drain (SHUTDOWN_DRAIN): keep accepting and serving as usual, so traffic still sent here while the
 *    load balancer catches up is served; every answer carries `Connection: close`, so each keep-alive
 *    client closes its connection itself after its next answer (it knows, so nothing races). Except an
 *    answer ready before its request's body has all arrived: closing would cut the upload off, so that
 *    one keeps the connection, idle like any other once the body is in (closeConnectionsOnShutdown).
 * 2. Settle (the last quarter of the drain, at most SETTLE_MS): answers keep their connection open
 *    again. Closing the listener resets every connection the kernel has accepted on it but the server
 *    has not yet taken; once no answer tells anyone to reconnect, the clients still sending here sit
 *    on connections the server has taken, and the kernel's queue empties.
 * 3. Close the listener (new connections are refused) and wait for every open connection to end.
 *    Answers carry `Connection: close` again (with the same exception); requests in flight finish. An
 *    idle keep-alive connection is left to Node, which closes it at its keep-alive timeout:
 *    HTTP_KEEP_ALIVE_TIMEOUT after its last answer (current Node versions add a second of their own),
 *    which that answer announced as `Keep-Alive: timeout=N`. Once the last connection has ended, close
 *    the store and exit 0.
 * 4. The idle cutoff, a last resort: at L - min(1 s, L/2) after the listener closes, L being the time
 *    then left until the deadline (so 1 s before the deadline, or halfway to it when L is under 2 s),
 *    every connection that carries no request is closed, whatever keep-alive timeout it was announced:
 *    a client sending on it right then loses that request (the one race the shutdown admits, and only
 *    at the cutoff). A connection that carries a request is left alone; if its answer is sent and
 *    only its body is still arriving, it is closed as soon as the body is in.
 * Past SHUTDOWN_TIMEOUT (from the signal, drain included) the process exits 1 with one error line,
 * whatever is still open (a stalled request, an upload still arriving).
 * SIGINT (Ctrl-C at a terminal): no drain (a SIGINT during a SIGTERM drain ends it). The listener
 * closes at once, and so does every connection that carries no request, as at the idle cutoff (a
 * browser's idle keep-alive connections); requests in flight, uploads included, still finish.
 */
import { once } from 'node:events';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Server as NetServer, type Socket } from 'node:net';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import type { Middleware, Next } from 'koa';
import type { HttpConfig } from '../config/index.ts';
import { exitAfterLogs, type Logger } from './logger.ts';
import type { SessionStore } from './stores/store.ts';

/** What the app knows of the process's life, shared between the server entry and the app. */
export interface Lifecycle {
  /** Set when SIGTERM/SIGINT arrives: /healthz answers 503 from then on. */
  shuttingDown: boolean;
  /**
   * Whether answers carry `Connection: close`; when unset, exactly while shutting down. The settle
   * step lets connections stay open for a moment just before the listener closes.
   */
  closeConnections?: boolean;
}

/** The longest the settle step at the end of the drain lasts (it is at most a quarter of the drain). */
const SETTLE_MS = 500;

export interface ShutdownOptions {
  readonly server: Server;
  readonly store: SessionStore;
  readonly logger: Logger;
  readonly http: HttpConfig;
  readonly lifecycle: Lifecycle;
}

/** Handles SIGTERM and SIGINT for this server from now on (the only place that handles signals). */
export function shutDownOnSignals({ server, store, logger, http, lifecycle }: ShutdownOptions): void {
  const connections = trackConnections(server);
  const drainInterrupted = new AbortController();
  let listenerClosed = false;

  async function shutdown(signal: NodeJS.Signals): Promise<void> {
    lifecycle.shuttingDown = true;
    const startedAt = Date.now();
    const msLeft = () => http.shutdownTimeoutMs - (Date.now() - startedAt);
    const interactive = () => drainInterrupted.signal.aborted;
    const drainMs = interactive() ? 0 : http.shutdownDrainMs;
    logger.info({ signal, drainMs }, 'shutting down');
    const deadline = setTimeout(() => {
      logger.error(
        { timeoutMs: http.shutdownTimeoutMs, openConnections: connections.count() },
        'shutdown deadline passed; exiting with connections still open',
      );
      exitAfterLogs(logger, 1);
    }, http.shutdownTimeoutMs);
    const drainFor = (ms: number) => sleep(ms, undefined, { signal: drainInterrupted.signal }).catch(() => {});

    const settleMs = Math.min(SETTLE_MS, drainMs / 4);
    await drainFor(drainMs - settleMs);
    if (!interactive() && settleMs > 0) {
      lifecycle.closeConnections = false;
      await drainFor(settleMs);
    }

    lifecycle.closeConnections = true;
    const closed = closeListener(server);
    listenerClosed = true;
    logger.info({ openConnections: connections.count() }, 'listener closed');
    if (interactive()) connections.closeAllIdle();
    // The idle cutoff, a last resort shortly before the deadline: close every connection that carries
    // no request (this may race a client's next request). Idle keep-alive connections when
    // HTTP_KEEP_ALIVE_TIMEOUT is longer than what the deadline leaves, and connections that never sent
    // a request (a browser's pre-opened socket, a client stalled in its headers, which Node's
    // closeIdleConnections() leaves open): none of them alone may make the exit a failure. Its line
    // counts the connections it closed (their clients may have seen a reset) and those still busy.
    const timeLeftMs = msLeft();
    const idleCutoff = setTimeout(
      () => {
        const { closed, busy } = connections.closeAllIdle();
        logger.info({ closedConnections: closed, busyConnections: busy }, 'idle cutoff: closed idle connections');
      },
      Math.max(0, timeLeftMs - Math.min(1_000, timeLeftMs / 2)),
    );
    await closed;
    clearTimeout(idleCutoff);
    await store.close();
    clearTimeout(deadline);
    logger.info({ durationMs: Date.now() - startedAt }, 'stopped');
    exitAfterLogs(logger, 0);
  }

  function onSignal(signal: NodeJS.Signals): void {
    if (signal === 'SIGINT') {
      drainInterrupted.abort();
      if (listenerClosed) connections.closeAllIdle();
    }
    if (!lifecycle.shuttingDown) void shutdown(signal);
  }
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/**
 * During shutdown, answers carry `Connection: close`: the keep-alive client closes the connection
 * itself once it has the answer, and opens its next one elsewhere. (The server never closes a
 * keep-alive connection under a client that may be sending on it.)
 *
 * Except an answer ready before its request's body has all arrived (a 404 or a 401 to an upload): Node
 * closes the socket as soon as an answer with `close` is written, and the client, still sending, sees
 * EPIPE or a reset, which can wipe the answer from its receive buffer unread. That answer keeps the
 * connection instead; once the body is in, the connection is idle like any other (left to its
 * keep-alive timeout, or the idle cutoff).
 */
export function closeConnectionsOnShutdown(lifecycle: Lifecycle): Middleware {
  /** Connections already told to close: a request pipelined behind that answer must not be processed. */
  const closing = new WeakSet<object>();
  /** Runs the route, then tells the client to close, or leaves the connection open (see above). */
  async function closeOnceAnswered(ctx: Parameters<Middleware>[0], next: Next, socket: object): Promise<void> {
    await next();
    // Decided once the answer is ready (Koa writes it only after every middleware has returned). The
    // app runs as soon as the headers are parsed, before the body bytes read with them: one turn of the
    // event loop lets Node parse those, so only a body still on its way keeps the connection. No
    // request is pipelined behind one whose body is still arriving. An answer the route wrote itself
    // (ctx.respond = false) keeps the connection too, as in the settle step.
    if (!ctx.req.complete) await nextTurn();
    if (ctx.req.complete && !ctx.headerSent) ctx.set('Connection', 'close');
    else closing.delete(socket);
  }
  // Not an async function: in normal running it adds nothing to a request, not even a promise.
  return function closeOnShutdown(ctx, next) {
    if (!lifecycle.shuttingDown) return next();
    const { socket } = ctx.req;
    // Checked in every step of the shutdown, the settle step too: a connection told to close stays told.
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
    if (lifecycle.closeConnections === false) return next(); // the settle step: answers keep their connection
    // Marked before the route runs: Node parses a pipelined request, and runs the app on it, while
    // this one is still being answered.
    closing.add(socket);
    return closeOnceAnswered(ctx, next, socket);
  };
}

/**
 * The server's open connections, and which of them carry a request right now. Node's
 * closeIdleConnections() closes only keep-alive connections that have served a request; a connection
 * that never sent one (a browser's pre-opened socket, a client stalled in its headers) stays open
 * until HTTP_HEADERS_TIMEOUT and would hold the shutdown past its deadline.
 */
export interface Connections {
  readonly count: () => number;
  /**
   * Closes every connection that is not carrying a request right now (may race a client about to
   * send), and each one whose answer is sent but whose request body is still arriving as soon as the
   * body is in. Returns how many it closed now, and how many it left open.
   */
  readonly closeAllIdle: () => { closed: number; busy: number };
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
  // A connection answers its requests in order (pipelined ones wait their turn) and reads a request's
  // body before the next request's headers, so it carries a request while its newest response is
  // unfinished or that response's request (response.req) is still arriving; one whose headers are
  // still arriving has no response yet: the race closeAllIdle admits. Remembering that response costs
  // every request one property write: no map of connections, no per-request listener.
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    (request.socket as TrackedSocket)[NEWEST_RESPONSE] = response;
  });
  const isIdle = (newest: ServerResponse | undefined) =>
    newest === undefined || (newest.writableFinished && newest.req.complete);
  return {
    count: () => open.size,
    closeAllIdle() {
      let closed = 0;
      for (const socket of open) {
        const newest = socket[NEWEST_RESPONSE];
        if (isIdle(newest)) {
          socket.destroy();
          closed++;
        } else if (newest?.writableFinished) {
          // Answered, but the body is still coming in (Node reads it and throws it away): close the
          // connection once it is all in, unless a request pipelined behind it has begun by then.
          newest.req.once('end', () => isIdle(socket[NEWEST_RESPONSE]) && socket.destroy());
        }
      }
      return { closed, busy: open.size - closed };
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
 * is the one the client was told about (docs/shutdown.md has the measurement). So idle connections
 * are left alone:
 * - one that carries another request is served, and the answer has `Connection: close` (see
 *   closeConnectionsOnShutdown), after which Node closes it: the client knows and opens a new one;
 * - one that stays idle is closed by Node's keep-alive timeout (HTTP_KEEP_ALIVE_TIMEOUT after its
 *   last answer, and a second more on current Node versions), which every answer announced in its
 *   `Keep-Alive: timeout=N` header, so a client that honours it stops reusing the socket before
 *   then. That is the same close as in normal running, not a new race. With SHUTDOWN_DRAIN at least
 *   HTTP_KEEP_ALIVE_TIMEOUT plus that second, every connection idle since before the signal has
 *   timed out by the end of the drain;
 * - only the idle cutoff, shortly before the deadline, closes idle connections itself (see above).
 * net.Server's close (http.Server extends it) closes the listener without that idle sweep. It also
 * leaves Node's check of the headers and request timeouts running, so a client that stalls in the
 * middle of a request is still answered 408 and disconnected.
 */
export function closeListener(server: Server): Promise<void> {
  const closed = once(server, 'close').then(() => undefined);
  NetServer.prototype.close.call(server);
  return closed;
}

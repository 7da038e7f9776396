/**
 * A bound on the requests one connection has running at once. An HTTP/1.1 client may pipeline: send
 * many requests without waiting for the answers. Node answers them in order, but starts every
 * handler as soon as the request is parsed, so one connection that writes thousands of requests at
 * once runs thousands of handlers at once: it takes the store's calls in flight from everyone else
 * (with Redis, other users' requests and /healthz were refused), and the memory they hold.
 *
 * Node's own brake does not help. It stops reading a connection only when the answers pile up
 * unsent (output back-pressure), and even then only after the chunk it read is parsed: one read (up
 * to 64 KiB) emits a 'request' for every request in it, synchronously, from one call into the
 * parser. Pausing the parser from a 'request' listener does not stop that call: it fails the rest of
 * the chunk as a parse error (HPE_PAUSED, the connection is dropped). And a socket.pause() of the
 * app's own does not last: Node resumes the socket at the end of every request it parses, and when
 * its own back-pressure ends. So the bound is kept here, around the app's request listener:
 * - a connection has at most MAX_REQUESTS_PER_CONNECTION requests started and not yet answered;
 *   those past it wait, in order, before any middleware runs, and start as answers go out, on the
 *   next turn of the event loop (so other connections are read and served in between);
 * - while any wait, the connection is not read (reads resume once none waits): what the client
 *   sends meanwhile stays in the kernel's buffers, and TCP makes the client wait, so a connection
 *   never holds more waiting requests than one read's worth.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Browsers do not pipeline; the HTTP/1.1 clients that do (proxies, benchmark and batch tools) keep a
 * few requests outstanding, so they are not slowed down. Far below the Redis store's bound on calls in
 * flight, so that one connection only ever holds a small share of it.
 */
export const MAX_REQUESTS_PER_CONNECTION = 16;

interface ConnectionState {
  /** Requests started and not yet answered (their response not finished, or closed). */
  running: number;
  /** Requests parsed but not started yet, oldest first. */
  readonly waiting: Array<[IncomingMessage, ServerResponse]>;
  /** Whether reads are stopped by this module (so that a resume from elsewhere is undone). */
  holding: boolean;
  /** Set once the connection has closed: nothing that waits starts any more. */
  closed: boolean;
  /** Whether the socket has this module's listeners (added the first time requests wait). */
  watched: boolean;
  /** Whether waiting requests are due to start on the next turn of the event loop. */
  scheduled: boolean;
}

/** The state of a connection, as a property on its socket (no map to clean up). */
const STATE = Symbol('pipelining');
type BoundedSocket = Socket & { [STATE]?: ConnectionState };
/** The connection a response answers on (its own `socket` is gone once it is detached). */
const CONNECTION = Symbol('connection');
type TrackedResponse = ServerResponse & { [CONNECTION]: BoundedSocket };

/** Wraps the app's request listener so that each connection runs at most `limit` requests at once. */
export function boundPipelining(listener: RequestListener, limit = MAX_REQUESTS_PER_CONNECTION): RequestListener {
  function start(state: ConnectionState, request: IncomingMessage, response: ServerResponse): void {
    state.running++;
    // 'close' comes once the answer is sent, or when the connection is gone before that. One shared
    // listener that finds the connection on the response: no closure made per request.
    (response as TrackedResponse)[CONNECTION] = request.socket as BoundedSocket;
    response.on('close', answered);
    listener(request, response);
  }

  function answered(this: TrackedResponse): void {
    const socket = this[CONNECTION];
    const state = socket[STATE] as ConnectionState;
    state.running--;
    if (state.waiting.length === 0 || state.scheduled) return;
    // On the next turn of the event loop, after it has polled for I/O: answers to a pipelining
    // connection can follow one another without ever leaving the microtask and nextTick queues (with
    // the memory store), and starting the next request at once would serve its whole read before any
    // other connection is read.
    state.scheduled = true;
    setImmediate(startWaiting, socket, state);
  }

  function startWaiting(socket: BoundedSocket, state: ConnectionState): void {
    state.scheduled = false;
    if (state.closed) return;
    while (state.running < limit) {
      const next = state.waiting.shift();
      if (next === undefined) break;
      start(state, ...next);
    }
    if (state.holding && state.waiting.length === 0) {
      state.holding = false;
      socket.resume();
    }
  }

  function hold(socket: BoundedSocket, state: ConnectionState): void {
    if (state.holding) return;
    if (!state.watched) {
      state.watched = true;
      socket.once('close', onClose);
      // Node resumes the socket by itself (see above): undo that while requests wait. Its own 'resume'
      // listener has just started reading; this one stops it again before any read can happen.
      socket.on('resume', keepHolding);
    }
    state.holding = true;
    socket.pause();
  }

  return function boundedRequest(request, response) {
    const socket = request.socket as BoundedSocket;
    let state = socket[STATE];
    if (state === undefined) {
      state = { running: 0, waiting: [], holding: false, closed: false, watched: false, scheduled: false };
      socket[STATE] = state;
    }
    if (state.running < limit && state.waiting.length === 0) {
      start(state, request, response);
      return;
    }
    state.waiting.push([request, response]);
    hold(socket, state);
  };
}

function keepHolding(this: BoundedSocket): void {
  if (this[STATE]?.holding) this.pause();
}

/** The client is gone: what still waits is never started (nobody would get the answers). */
function onClose(this: BoundedSocket): void {
  const state = this[STATE];
  if (state === undefined) return;
  state.closed = true;
  state.holding = false;
  state.waiting.length = 0;
}

/**
 * Shutdown and a request whose body is still arriving: an upload the app answers before reading it (a
 * POST to an unknown path gets its 404 at once; a 401 or 413 would too). The connection carries that
 * request until the body is in, so neither SIGINT's close of idle connections, nor the idle cutoff
 * shortly before the deadline, nor the `Connection: close` of the drain may cut it; only the deadline
 * does. The real server process, over raw TCP, so that every byte and every close is seen as it happens.
 */

import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import anyTest, { type TestFn } from 'ava';
import { killOnTeardown, logLines, type ServerProcess, startServerProcess, waitForOutput } from './helpers/process.ts';

const test = anyTest.serial as TestFn;

async function startServer(t: { teardown(fn: () => unknown): void }, env: Record<string, string>) {
  const server = await startServerProcess(env);
  killOnTeardown(t, server);
  return server;
}

/** Waits until `check` holds, polling; fails after `timeoutMs`. */
async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** One chunk of a chunked request body: 16 KiB. */
const CHUNK = `4000\r\n${'x'.repeat(0x4000)}\r\n`;
/** Between two chunks: the body trickles in, as from a slow client. */
const CHUNK_INTERVAL_MS = 50;

/** A chunked POST on a raw connection, its body sent a chunk at a time, until finish(). */
interface Upload {
  /** Everything the server has sent on the connection so far. */
  readonly received: () => string;
  /** Whether the connection is still open (the server has neither closed nor reset it). */
  readonly open: () => boolean;
  /** Resolves with when (Date.now()) the connection was closed, by either side. */
  readonly closed: Promise<number>;
  /** The socket error the client saw (EPIPE, ECONNRESET), if any. */
  readonly error: () => NodeJS.ErrnoException | undefined;
  /** Sends one more chunk of the body; false when the connection is no longer open. */
  readonly sendChunk: () => Promise<boolean>;
  /** Sends the last chunk: the body is complete. Resolves with when (Date.now()) it was written. */
  readonly finish: () => Promise<number>;
  /** Sends raw bytes on the connection (a next request, once the body is complete). */
  readonly send: (data: string) => Promise<boolean>;
  /** Chunks sent so far. */
  readonly chunks: () => number;
}

/**
 * Starts an upload to a path no build serves, and waits until the server's whole 404 answer is in
 * (sent before the body, which the app never reads: Node reads it and throws it away).
 */
async function startUpload(url: string): Promise<Upload> {
  const { hostname, port } = new URL(url);
  const socket: Socket = connect(Number(port), hostname);
  await once(socket, 'connect');
  let received = '';
  let closedAt: number | undefined;
  let error: NodeJS.ErrnoException | undefined;
  let chunks = 0;
  socket.setEncoding('utf8').on('data', (data: string) => (received += data));
  socket.on('error', (caught: NodeJS.ErrnoException) => (error ??= caught));
  const closed = new Promise<number>((resolve) =>
    socket.once('close', () => {
      closedAt = Date.now();
      resolve(closedAt);
    }),
  );
  const write = (data: string) =>
    new Promise<boolean>((resolve) => {
      if (closedAt !== undefined || socket.destroyed) return resolve(false);
      socket.write(data, (caught) => resolve(caught == null));
    });
  await write(
    `POST /no-such-upload-route HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n` +
      `Transfer-Encoding: chunked\r\n\r\n${CHUNK}`,
  );
  chunks++;
  await until(() => wholeAnswer(received), 'the 404 answer');
  return {
    received: () => received,
    open: () => closedAt === undefined && !socket.destroyed,
    closed,
    error: () => error,
    async sendChunk() {
      const written = await write(CHUNK);
      if (written) chunks++;
      return written;
    },
    async finish() {
      if (!(await write('0\r\n\r\n'))) throw new Error(`the connection was closed: ${error?.code ?? 'no error'}`);
      return Date.now();
    },
    send: write,
    chunks: () => chunks,
  };
}

/** Whether `received` holds one whole answer (headers, and a body of its Content-Length). */
function wholeAnswer(received: string): boolean {
  const end = received.indexOf('\r\n\r\n');
  const length = /\r\ncontent-length: (\d+)\r\n/i.exec(received)?.[1];
  return end >= 0 && length !== undefined && received.length >= end + 4 + Number(length);
}

/** Keeps the upload going, a chunk every CHUNK_INTERVAL_MS, until `stop()` holds or the connection is no longer open. */
async function uploadUntil(upload: Upload, stop: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!stop() && (await upload.sendChunk())) {
    if (Date.now() > deadline) throw new Error(`still uploading after ${timeoutMs} ms`);
    await sleep(CHUNK_INTERVAL_MS);
  }
}

function exited(server: ServerProcess): boolean {
  return server.child.exitCode !== null || server.child.signalCode !== null;
}

/**
 * The server's timers and both processes' Date.now() count whole milliseconds: a bound measured from
 * this side may be met a millisecond or two early.
 */
const MS_ROUNDING = 5;

const IDLE_CUTOFF = /"msg":"idle cutoff: closed idle connections"/;
const DEADLINE_PASSED = 'shutdown deadline passed; exiting with connections still open';

test('SIGTERM: an upload in flight, answered before its body, outlives the idle cutoff; the connection closes once the body is in, and the exit is 0', async (t) => {
  // A keep-alive timeout far past the deadline: only the close once the body is in can end the connection in time.
  const server = await startServer(t, { SHUTDOWN_TIMEOUT: '3s', HTTP_KEEP_ALIVE_TIMEOUT: '60s' });
  const upload = await startUpload(server.url);
  t.regex(upload.received(), /^HTTP\/1\.1 404 Not Found\r\n/);
  t.regex(upload.received(), /\r\nkeep-alive: timeout=60\r\n/i, 'answered before the signal, so kept alive');

  server.child.kill('SIGTERM');
  // Through the idle cutoff (1 s before the 3 s deadline): the body is still arriving when it runs.
  await uploadUntil(upload, () => IDLE_CUTOFF.test(server.stdout()) || exited(server));
  t.true(upload.open(), `not cut off mid-upload (after ${upload.chunks()} chunks): ${upload.error()?.code ?? ''}`);
  if (!upload.open()) return;
  t.like(
    logLines(server).find((line) => IDLE_CUTOFF.test(JSON.stringify(line))),
    { closedConnections: 0, busyConnections: 1 },
    'the cutoff counted the upload as busy',
  );
  const finishedAt = await upload.finish();

  t.is(await server.exited, 0, server.stdout().slice(-600));
  t.false(server.stdout().includes(DEADLINE_PASSED));
  t.is(upload.error(), undefined, 'no EPIPE or reset: the client saw an orderly close');
  t.true((await upload.closed) >= finishedAt, 'the connection closed only once the whole body was sent');
  t.regex(
    upload.received(),
    /^HTTP\/1\.1 404 Not Found\r\n[\s\S]*\r\n\r\nNot Found$/,
    'one whole answer, nothing else',
  );
});

test('SIGINT: an upload in flight, answered before its body, is not closed as idle; the exit is 0 once the body is in', async (t) => {
  // The default SHUTDOWN_TIMEOUT (9 s, its cutoff 8 s after the signal) and a 60 s keep-alive timeout:
  // an exit before the cutoff shows that the connection was closed once its body was in.
  const server = await startServer(t, { HTTP_KEEP_ALIVE_TIMEOUT: '60s' });
  const upload = await startUpload(server.url);

  server.child.kill('SIGINT');
  // SIGINT closes the connections it finds idle right after this line is logged (same tick).
  await waitForOutput(server, /"msg":"listener closed"/);
  let more = 0;
  await uploadUntil(upload, () => more++ === 5 || exited(server)); // a quarter of a second more of body
  t.true(upload.open(), `not cut off mid-upload (after ${upload.chunks()} chunks): ${upload.error()?.code ?? ''}`);
  if (!upload.open()) return;
  t.is(server.child.exitCode, null, 'the process waits for the upload');
  const finishedAt = await upload.finish();

  t.is(await server.exited, 0, server.stdout().slice(-600));
  t.false(IDLE_CUTOFF.test(server.stdout()), 'closed once its body was in: the exit came before the idle cutoff');
  t.is(upload.error(), undefined, 'no EPIPE or reset');
  t.true((await upload.closed) >= finishedAt, 'the connection closed only once the whole body was sent');
  t.regex(upload.received(), /^HTTP\/1\.1 404 Not Found\r\n[\s\S]*\r\n\r\nNot Found$/);
});

test('an upload that outlasts SHUTDOWN_TIMEOUT is cut at the deadline, not at the idle cutoff, and the exit is 1 with the error line', async (t) => {
  const timeoutMs = 2_000;
  const server = await startServer(t, { SHUTDOWN_TIMEOUT: `${timeoutMs}ms` });
  const upload = await startUpload(server.url);

  const signalled = Date.now();
  server.child.kill('SIGTERM');
  await uploadUntil(upload, () => false); // until the connection is closed
  const cutAfterMs = (await upload.closed) - signalled;

  t.is(await server.exited, 1);
  // The deadline counts from the signal's arrival, which is no earlier than `signalled`.
  t.true(
    cutAfterMs >= timeoutMs - MS_ROUNDING,
    `cut off not before the ${timeoutMs} ms deadline (after ${cutAfterMs} ms)`,
  );
  const errors = logLines(server).filter((line) => line.level === 'error');
  t.is(errors.length, 1);
  t.like(errors[0], { msg: DEADLINE_PASSED, timeoutMs, openConnections: 1 });
  t.like(
    logLines(server).find((line) => IDLE_CUTOFF.test(JSON.stringify(line))),
    { closedConnections: 0, busyConnections: 1 },
    'the idle cutoff left it alone',
  );
  t.false(logLines(server).some((line) => line.msg === 'stopped'));
});

test('during the drain, an upload answered before its body keeps its connection (no Connection: close) and is not cut; its next request, and other requests, are told to close', async (t) => {
  const server = await startServer(t, { SHUTDOWN_DRAIN: '4s', SHUTDOWN_TIMEOUT: '6s' });
  server.child.kill('SIGTERM');
  await waitForOutput(server, /"msg":"shutting down"/);

  // Node closes the socket as soon as an answer with `Connection: close` is written, body or not.
  const upload = await startUpload(server.url);
  t.regex(upload.received(), /^HTTP\/1\.1 404 Not Found\r\n/);
  t.regex(upload.received(), /\r\nconnection: keep-alive\r\n/i);
  const health = await fetch(`${server.url}/healthz`);
  t.is(health.status, 503);
  t.is(health.headers.get('connection'), 'close', 'a request without a body is still told to close');
  // A body sent whole with the headers is in by the time the answer goes, though the app never read it.
  const small = await fetch(`${server.url}/no-such-upload-route`, { method: 'POST', body: 'a small body' });
  t.is(small.status, 404);
  t.is(small.headers.get('connection'), 'close', 'a request whose body is in is still told to close');

  let more = 0;
  await uploadUntil(upload, () => more++ === 10 || exited(server));
  t.true(upload.open(), `not cut off mid-upload (after ${upload.chunks()} chunks): ${upload.error()?.code ?? ''}`);
  if (!upload.open()) return;
  await upload.finish();

  // Then a keep-alive connection like any other: its next request is served, and told to close (not
  // refused as one already told to close). Still within the drain, well before its settle step at 3.5 s.
  const before = upload.received().length;
  t.true(await upload.send('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n'));
  await upload.closed; // by the server, after that answer
  const next = upload.received().slice(before);
  t.regex(next, /^HTTP\/1\.1 503 /);
  t.regex(next, /\r\nconnection: close\r\n/i);
  t.regex(next, /"status":"shutting down"/, 'served by /healthz');
  t.is(await server.exited, 0, server.stdout().slice(-600));
  t.is(upload.error(), undefined, 'no EPIPE or reset');
  t.regex(
    upload.received(),
    /^HTTP\/1\.1 404 Not Found\r\n[\s\S]*\r\n\r\nNot FoundHTTP\/1\.1 503 /,
    'the whole 404, then the next',
  );
});

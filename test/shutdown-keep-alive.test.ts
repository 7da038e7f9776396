/**
 * Idle keep-alive connections at shutdown, held to the rule in app/shutdown.ts: Node closes an idle
 * connection at the keep-alive timeout its last answer announced; the idle cutoff, L - min(1 s, L/2)
 * after the listener closes (L: the time then left until the deadline), closes every connection that
 * carries no request, whatever it was announced. Timed against the announced times and the signal
 * with "not before" bounds only; "before the deadline" is the exit code (at the deadline it is 1).
 */

import { once } from 'node:events';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import anyTest, { type TestFn } from 'ava';
import { killOnTeardown, logLines, startServerProcess } from './helpers/process.ts';

const test = anyTest.serial as TestFn;

async function startServer(t: { teardown(fn: () => unknown): void }, env: Record<string, string>) {
  const server = await startServerProcess(env);
  killOnTeardown(t, server);
  return server;
}

/** A raw keep-alive connection that has sent GET /healthz and has its whole answer. */
interface Answered {
  /** When (Date.now()) the request was written: the server's answer, and its keep-alive timer, came later. */
  readonly sentAt: number;
  readonly answer: string;
  /** Resolves with when (Date.now()) the connection was closed. */
  readonly closed: Promise<number>;
  readonly error: () => NodeJS.ErrnoException | undefined;
  readonly destroy: () => void;
}

async function answeredConnection(url: string): Promise<Answered> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  await once(socket, 'connect');
  let received = '';
  let error: NodeJS.ErrnoException | undefined;
  socket.setEncoding('utf8').on('data', (data: string) => (received += data));
  socket.on('error', (caught: NodeJS.ErrnoException) => (error ??= caught));
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  const sentAt = Date.now();
  socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const deadline = Date.now() + 10_000;
  while (!wholeAnswer(received)) {
    if (Date.now() > deadline) throw new Error(`no whole answer within 10 s: ${received}`);
    await sleep(5);
  }
  return { sentAt, answer: received, closed, error: () => error, destroy: () => socket.destroy() };
}

function wholeAnswer(received: string): boolean {
  const end = received.indexOf('\r\n\r\n');
  const length = /\r\ncontent-length: (\d+)\r\n/i.exec(received)?.[1];
  return end >= 0 && length !== undefined && received.length >= end + 4 + Number(length);
}

/**
 * The server's timers and both processes' Date.now() count whole milliseconds: a bound measured from
 * this side may be met a millisecond or two early.
 */
const MS_ROUNDING = 5;

const IDLE_CUTOFF = 'idle cutoff: closed idle connections';

test('an idle connection whose keep-alive timeout ends before the idle cutoff is closed by Node at that timeout; one whose timeout ends after it is closed at the cutoff, before the deadline', async (t) => {
  // Drain 4 s (its settle step from 3.5 s on, when answers keep their connection), deadline 6 s: the
  // listener closes at 4 s, so L = 2 s and the cutoff comes at 5 s, 1 s before the deadline.
  const keepAliveMs = 2_000;
  const timeoutMs = 6_000;
  const server = await startServer(t, {
    SHUTDOWN_DRAIN: '4s',
    SHUTDOWN_TIMEOUT: `${timeoutMs}ms`,
    HTTP_KEEP_ALIVE_TIMEOUT: `${keepAliveMs}ms`,
  });

  // Early: answered before the signal, so its timeout (2 s, and Node's own extra second) ends about
  // 2.5 s after the signal, long before the cutoff.
  const early = await answeredConnection(server.url);
  t.regex(early.answer, /\r\nkeep-alive: timeout=2\r\n/i);
  await sleep(500);
  const signalled = Date.now();
  server.child.kill('SIGTERM');

  // Late: the first answer of the settle step, so its timeout ends 2 s after at least 3.5 s into the
  // shutdown: after the cutoff (server time 5 s), with Node's extra second after the deadline too.
  let late: Answered | undefined;
  while (late === undefined) {
    if (server.child.exitCode !== null || /"msg":"listener closed"/.test(server.stdout()))
      return t.fail('no answer kept its connection before the listener closed (the settle step was missed)');
    const probe = await answeredConnection(server.url);
    // 503: answered after the signal; without `close`: in the settle step.
    if (/^HTTP\/1\.1 503 /.test(probe.answer) && !/\r\nconnection: close\r\n/i.test(probe.answer)) late = probe;
    else probe.destroy();
    await sleep(50);
  }
  t.regex(late.answer, /\r\nkeep-alive: timeout=2\r\n/i, 'the settle step keeps the connection, timeout announced');

  t.is(await server.exited, 0, `closed before the deadline: ${server.stdout().slice(-600)}`);
  const earlyClosedAt = await early.closed;
  const lateClosedAt = await late.closed;
  t.true(
    earlyClosedAt - early.sentAt >= keepAliveMs,
    `the early one is not closed before its announced timeout (closed ${earlyClosedAt - early.sentAt} ms after its request)`,
  );
  // At the cutoff exactly one connection was still open and closed, and the early one had closed first:
  // so that one was the late one, and the early one was closed by Node at its timeout, before the cutoff.
  t.like(
    logLines(server).find((line) => line.msg === IDLE_CUTOFF),
    { closedConnections: 1, busyConnections: 0 },
  );
  t.true(earlyClosedAt < lateClosedAt, 'the early connection closed first');
  // The cutoff comes 1 s (at most) before a deadline that counts from the signal's arrival.
  t.true(
    lateClosedAt - signalled >= timeoutMs - 1_000 - MS_ROUNDING,
    `the late one is not closed before the cutoff (closed ${lateClosedAt - signalled} ms after the signal)`,
  );
  t.false(server.stdout().includes('shutdown deadline passed'));
  t.is(early.error(), undefined);
  t.is(late.error(), undefined);
});

test('when less than 2 s is left as the listener closes, the idle cutoff comes halfway to the deadline', async (t) => {
  // No drain, a 1.5 s deadline: L is at most 1.5 s, so the cutoff comes L/2 after the listener closes,
  // that is at least 750 ms after the signal; an idle connection with a 60 s keep-alive timeout lasts until then.
  const timeoutMs = 1_500;
  const server = await startServer(t, { SHUTDOWN_TIMEOUT: `${timeoutMs}ms`, HTTP_KEEP_ALIVE_TIMEOUT: '60s' });
  const idle = await answeredConnection(server.url);
  t.regex(idle.answer, /\r\nkeep-alive: timeout=60\r\n/i);

  const signalled = Date.now();
  server.child.kill('SIGTERM');
  t.is(await server.exited, 0, `closed before the deadline: ${server.stdout().slice(-600)}`);
  const closedAfterMs = (await idle.closed) - signalled;
  t.true(
    closedAfterMs >= timeoutMs / 2 - MS_ROUNDING,
    `not before halfway to the deadline (closed after ${closedAfterMs} ms)`,
  );
  t.like(
    logLines(server).find((line) => line.msg === IDLE_CUTOFF),
    { closedConnections: 1, busyConnections: 0 },
  );
});

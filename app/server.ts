/**
 * The entry point (`npm start`): load the settings, build the store and the app, listen, and shut
 * down gracefully on SIGTERM or SIGINT. The only module that listens or handles signals.
 */
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Config, loadConfig, readEnvironment, SETTING_NAMES, StartupError } from '../config/index.ts';
import { createApp } from './app.ts';
import { closeListener, createHttpServer, trackConnections } from './http-server.ts';
import type { Lifecycle } from './lifecycle.ts';
import { createLogger, type Logger } from './logger.ts';
import { createStore } from './stores/index.ts';

/** The longest the settle step at the end of the drain lasts (it is at most a quarter of the drain); see shutdown. */
const SETTLE_MS = 500;

/** Start-up problems the operator must fix: one line on stderr, no stack trace, non-zero exit. */
function exitWithStartupError(error: unknown): never {
  if (!(error instanceof StartupError)) throw error;
  process.stderr.write(`Cannot start: ${error.message}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  let config: Config;
  try {
    const { env, warnings } = readEnvironment(SETTING_NAMES);
    config = loadConfig(env, warnings);
  } catch (error) {
    exitWithStartupError(error);
  }
  let logger: Logger;
  try {
    logger = createLogger({ ...config.log, production: config.production });
  } catch (error) {
    exitWithStartupError(error);
  }
  /**
   * Exits once every log line is written, in order. The destination writes asynchronously, and on
   * process.exit its last synchronous flush could overtake a write still under way (the lines came
   * out swapped); pino's flush callback waits for both (and a stuck stdout for at most a second).
   */
  const exitAfterLogs = (code: number) => {
    setTimeout(() => process.exit(code), 1_000).unref();
    logger.flush(() => process.exit(code));
  };
  // A bug that escapes every handler: one fatal line, then exit 1.
  const exitOnFatalError = (error: unknown) => {
    logger.fatal({ err: error }, 'fatal error; exiting');
    exitAfterLogs(1);
  };
  process.on('uncaughtException', exitOnFatalError);
  process.on('unhandledRejection', exitOnFatalError);
  if (config.session.keysAreEphemeral) {
    logger.warn(
      'SESSION_KEYS is not set: using a random key, so sessions end with this process ' +
        '(set SESSION_KEYS; required in production)',
    );
  }
  for (const warning of config.warnings) logger.warn(warning);

  const store = await createStore(config, logger).catch(exitWithStartupError);
  const lifecycle: Lifecycle = { shuttingDown: false };
  const app = createApp({ config, store, logger, lifecycle });
  const { http } = config;
  const server = createHttpServer(app, http);

  server.on('error', (error: NodeJS.ErrnoException) => {
    const reason = error.code === 'EADDRINUSE' ? 'EADDRINUSE, the port is taken' : (error.code ?? error.message);
    exitWithStartupError(new StartupError('PORT', `PORT=${http.port} HOST=${http.host}: cannot listen (${reason})`));
  });
  server.listen(http.port, http.host);
  await once(server, 'listening');
  const connections = trackConnections(server);

  // Shutdown. From the signal on, /healthz answers 503 (lifecycle.shuttingDown), so a load balancer
  // moves traffic away; the server never cuts off a connection it has accepted (but at the deadline,
  // and on SIGINT), so every request it receives gets a whole answer:
  // 1. Drain (SHUTDOWN_DRAIN): keep accepting and serving as usual, so traffic still sent here
  //    while the load balancer catches up is served; every answer carries `Connection: close`, so
  //    each keep-alive client closes its connection itself after its next answer (it knows, so
  //    nothing races) and opens its next one elsewhere, or here again if nothing has moved yet.
  // 2. Settle (the last quarter of the drain, at most SETTLE_MS): answers keep their connection
  //    open again. Closing the listener resets every connection the kernel has accepted on it but
  //    the server has not yet taken (Linux sends RST: the client, which saw its connect succeed,
  //    gets ECONNRESET). Clients that were told to reconnect do so within milliseconds; once no
  //    answer tells anyone to reconnect, the clients still sending here sit on connections the
  //    server has taken, and the kernel's queue empties. Measured with 8 clients sending back to
  //    back (test/server.test.ts): without this step, up to 7 such resets in most runs; with it, none.
  //    (A client that opens new connections on its own at that very moment can still be reset:
  //    that is what the drain before is for.) The announced keep-alive timeout is left as it is:
  //    announcing a short one (1 s) makes fetch/undici, which keeps a 2 s margin, close after every
  //    answer and reconnect straight into the listener's close (measured: resets in 3 of 5 runs).
  // 3. Close the listener (new connections are refused: ECONNREFUSED) and wait for every open
  //    connection to end. Answers carry `Connection: close` again; requests in flight finish;
  //    idle keep-alive connections are left to Node's keep-alive timeout rather than closed, see
  //    closeListener. Then close the store and exit 0.
  // Past SHUTDOWN_TIMEOUT (from the signal, drain included) the process exits 1 with one error line.
  // SIGINT (Ctrl-C at a terminal) asks for a quick stop: no drain (a SIGINT during a SIGTERM drain
  // ends it), and idle keep-alive connections (a browser's) are closed at once rather than left to
  // time out; requests in flight still finish. Orchestrators send SIGTERM.
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
      exitAfterLogs(1);
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
    // A last resort, shortly before the deadline: close every connection that carries no request
    // (this may race a client's next request). Idle keep-alive connections when HTTP_KEEP_ALIVE_TIMEOUT
    // is longer than what the deadline leaves, and connections that never sent a request (a browser's
    // pre-opened socket, a client stalled in its headers, which Node's closeIdleConnections() leaves
    // open): none of them alone may make the exit a failure.
    const timeLeftMs = msLeft();
    const idleCutoff = setTimeout(
      () => connections.closeAllIdle(),
      Math.max(0, timeLeftMs - Math.min(1_000, timeLeftMs / 2)),
    );
    await closed;
    clearTimeout(idleCutoff);
    await store.close();
    clearTimeout(deadline);
    logger.info({ durationMs: Date.now() - startedAt }, 'stopped');
    exitAfterLogs(0);
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

  // Announced only now that signals are handled: a SIGTERM sent as soon as this line appears (an
  // orchestrator, a test) must get the graceful shutdown, not Node's default (death by the signal).
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : http.port;
  const host = http.host.includes(':') ? `[${http.host}]` : http.host;
  logger.info({ url: `http://${host}:${port}`, store: store.kind }, `listening on http://${host}:${port}`);
  logger.flush(); // show it at once
}

await main();

/**
 * The entry point (`npm start`): load the settings, build the store and the app, listen, and shut
 * down gracefully on SIGTERM or SIGINT. The only module that listens or handles signals.
 */
import { once } from 'node:events';
import { type Config, loadConfig, readEnvironment, StartupError } from '../config/index.ts';
import { createApp } from './app.ts';
import { createHttpServer } from './http-server.ts';
import { createLogger } from './logger.ts';
import { createStore } from './stores/index.ts';

/** Start-up problems the operator must fix: one line on stderr, no stack trace, non-zero exit. */
function exitWithStartupError(error: unknown): never {
  if (!(error instanceof StartupError)) throw error;
  process.stderr.write(`Cannot start: ${error.message}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(readEnvironment());
  } catch (error) {
    exitWithStartupError(error);
  }
  const logger = createLogger(config.log.level);
  if (config.session.keysAreEphemeral) {
    logger.warn('SESSION_KEYS is not set: cookies are signed with a random key made at start, so sessions end with this process (set SESSION_KEYS; required when NODE_ENV=production)');
  }

  const store = await createStore(config, logger).catch(exitWithStartupError);
  const lifecycle = { shuttingDown: false };
  const app = createApp({ config, store, logger, lifecycle });
  const { http } = config;
  const server = createHttpServer(app, http);

  server.on('error', (error: NodeJS.ErrnoException) => {
    const reason = error.code === 'EADDRINUSE' ? 'EADDRINUSE, the port is taken' : (error.code ?? error.message);
    exitWithStartupError(new StartupError('PORT', `PORT=${http.port} HOST=${http.host}: cannot listen (${reason})`));
  });
  server.listen(http.port, http.host);
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : http.port;
  const host = http.host.includes(':') ? `[${http.host}]` : http.host;
  logger.info(`listening on http://${host}:${port}`, { url: `http://${host}:${port}`, store: store.kind });

  async function shutdown(signal: NodeJS.Signals): Promise<void> {
    if (lifecycle.shuttingDown) return;
    lifecycle.shuttingDown = true;
    logger.info('shutting down', { signal });
    const deadline = setTimeout(() => {
      logger.error('shutdown deadline passed; exiting with requests still open', { timeoutMs: http.shutdownTimeoutMs });
      process.exit(1);
    }, http.shutdownTimeoutMs).unref();
    // Stop accepting; in-flight requests finish. Keep-alive connections are closed as soon as they
    // fall idle, so a client holding one open cannot delay the exit.
    const closed = once(server, 'close');
    server.close();
    const idleCloser = setInterval(() => server.closeIdleConnections(), 50);
    server.closeIdleConnections();
    await closed;
    clearInterval(idleCloser);
    await store.close();
    clearTimeout(deadline);
    logger.info('stopped');
  }
  process.once('SIGTERM', (signal) => void shutdown(signal));
  process.once('SIGINT', (signal) => void shutdown(signal));
}

await main();

/**
 * startServer(): what `npm start` runs (app/main.ts passes your routes). Loads the settings, builds
 * the logger, the store and the app, listens, and hands SIGTERM/SIGINT to the graceful shutdown
 * (app/shutdown.ts). Problems the operator must fix (a bad setting, a store that does not answer, a
 * port that is taken) stop it with one line on stderr and exit 1.
 */
import { once } from 'node:events';
import { loadConfig, readEnvironment, SETTING_NAMES, StartupError } from '../config/index.ts';
import { type AddRoutes, createApp } from './app.ts';
import { createHttpServer } from './http-server.ts';
import { createLogger, exitAfterLogs } from './logger.ts';
import { type Lifecycle, shutDownOnSignals } from './shutdown.ts';
import { createStore } from './stores/index.ts';

export async function startServer(routes: AddRoutes): Promise<void> {
  const config = orExit(() => {
    const { env, warnings } = readEnvironment(SETTING_NAMES);
    return loadConfig(env, warnings);
  });
  const logger = orExit(() => createLogger({ ...config.log, production: config.production }));
  // A bug that escapes every handler: one fatal line, then exit 1.
  const exitOnFatalError = (error: unknown) => {
    logger.fatal({ err: error }, 'fatal error; exiting');
    exitAfterLogs(logger, 1);
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
  const { http } = config;
  const server = createHttpServer(createApp({ config, store, logger, lifecycle, routes }), http);
  server.on('error', (error: NodeJS.ErrnoException) => {
    const reason = error.code === 'EADDRINUSE' ? 'EADDRINUSE, the port is taken' : (error.code ?? error.message);
    exitWithStartupError(new StartupError('PORT', `PORT=${http.port} HOST=${http.host}: cannot listen (${reason})`));
  });
  server.listen(http.port, http.host);
  await once(server, 'listening');
  shutDownOnSignals({ server, store, logger, http, lifecycle });

  // Announced only now that signals are handled: a SIGTERM sent as soon as this line appears (an
  // orchestrator, a test) must get the graceful shutdown, not Node's default (death by the signal).
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : http.port;
  const host = http.host.includes(':') ? `[${http.host}]` : http.host;
  logger.info({ url: `http://${host}:${port}`, store: store.kind }, `listening on http://${host}:${port}`);
  logger.flush(); // show it at once
}

/** Start-up problems the operator must fix: one line on stderr, no stack trace, non-zero exit. */
function exitWithStartupError(error: unknown): never {
  if (!(error instanceof StartupError)) throw error;
  process.stderr.write(`Cannot start: ${error.message}\n`);
  process.exit(1);
}

function orExit<T>(step: () => T): T {
  try {
    return step();
  } catch (error) {
    exitWithStartupError(error);
  }
}

/**
 * Builds and serves a real app on an ephemeral loopback port, with settings of the test's own,
 * exactly as app/server.ts does (minus signals). Logs are kept in memory for assertions.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { type AppDependencies, createApp } from '../../app/app.ts';
import { createHttpServer } from '../../app/http-server.ts';
import { createLogger } from '../../app/logger.ts';
import type { Lifecycle } from '../../app/shutdown.ts';
import { createStore } from '../../app/stores/index.ts';
import type { SessionStore } from '../../app/stores/store.ts';
import { type Config, loadConfig } from '../../config/index.ts';
import { addTestRoutes } from './routes.ts';

/** A 40-character key, valid even under NODE_ENV=production. */
export const TEST_KEY = 'test-signing-key-0123456789abcdefghijklmn';

export interface RunningApp {
  readonly url: string;
  readonly config: Config;
  readonly store: SessionStore;
  readonly lifecycle: Lifecycle;
  /** Parsed log lines written so far. */
  readonly logs: Array<Record<string, unknown>>;
  /** The raw log text, for checks such as "no session id appears". */
  readonly logText: () => string;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Use this store instead of building one from the settings (e.g. to share one between two apps). */
  readonly store?: SessionStore;
  /** Keep the store open on close (when the test passes its own). */
  readonly keepStore?: boolean;
  /** Wraps the store the app uses (a store that pauses on demand, to force an interleaving). */
  readonly wrapStore?: (store: SessionStore) => SessionStore;
  /**
   * The app's routes: the test routes (test/helpers/routes.ts) by default. A test of your own routes
   * passes app/routes.ts's addRoutes.
   */
  readonly routes?: AppDependencies['routes'];
}

export async function startApp(env: Record<string, string> = {}, options: StartOptions = {}): Promise<RunningApp> {
  const config = loadConfig({ SESSION_KEYS: TEST_KEY, LOG_LEVEL: 'debug', ...env });
  const lines: string[] = [];
  const logger = createLogger(
    { ...config.log, format: 'json', production: false },
    { write: (line: string) => void lines.push(line) },
  );
  const store = options.store ?? (await createStore(config, logger));
  const lifecycle: Lifecycle = { shuttingDown: false };
  const app = createApp({
    config,
    store: options.wrapStore?.(store) ?? store,
    logger,
    lifecycle,
    routes: options.routes ?? addTestRoutes,
  });
  const server = createHttpServer(app, config.http).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    config,
    store,
    lifecycle,
    get logs() {
      return lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    logText: () => lines.join(''),
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
      if (!options.keepStore) await store.close();
    },
  };
}

/** startApp, closed when the test ends. */
export async function appForTest(
  t: { teardown(fn: () => Promise<void>): void },
  env: Record<string, string> = {},
  options: StartOptions = {},
): Promise<RunningApp> {
  const running = await startApp(env, options);
  t.teardown(() => running.close());
  return running;
}

/** Picks the session store SESSION_STORE names and builds it from its settings. */
import type { Config } from '../../config/index.ts';
import type { Logger } from '../logger.ts';
import { MemoryStore } from './memory.ts';
import { RedisStore } from './redis.ts';
import { SqliteStore } from './sqlite.ts';
import type { SessionStore } from './store.ts';

export async function createStore(config: Config, logger: Logger): Promise<SessionStore> {
  switch (config.session.store) {
    case 'memory':
      return new MemoryStore({ maxEntries: config.session.maxEntries });
    case 'redis':
      // config/ reads the Redis settings whenever SESSION_STORE=redis.
      if (config.redis === null) throw new Error('SESSION_STORE=redis without Redis settings');
      return RedisStore.connect({ ...config.redis, logger });
    case 'sqlite':
      if (config.sqlite === null) throw new Error('SESSION_STORE=sqlite without SQLite settings');
      // node:sqlite itself is imported only here, by open(): Node 20 lacks it, and the other stores run there.
      return SqliteStore.open({ file: config.sqlite.file, maxEntries: config.session.maxEntries, logger });
  }
}

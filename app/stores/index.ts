/** Picks the session store SESSION_STORE names and builds it from its settings. */
import type { Config } from '../../config/index.ts';
import { MemoryStore } from './memory.ts';
import type { SessionStore } from './store.ts';

export async function createStore(config: Config): Promise<SessionStore> {
  switch (config.session.store) {
    case 'memory':
      return new MemoryStore({ defaultMaxAgeMs: config.session.maxAgeMs, maxEntries: config.session.maxEntries });
    case 'redis':
      throw new Error('not yet');
  }
}

/**
 * The key a store keeps a session under: never the session id, its keyed hash (app/session/store-keys.ts).
 * Tests that look into the store directly name sessions by their ids and find them through this.
 */
import { StoreKeys } from '../../app/session/store-keys.ts';
import type { Config } from '../../config/index.ts';

const made = new Map<string, StoreKeys>();

/** The store key of a session id in an app (or for these signing keys), under its current key or `keyIndex`. */
export function storeKeyOf(app: { readonly config: Config } | readonly string[], id: string, keyIndex = 0): string {
  const keys = Array.isArray(app) ? app : (app as { readonly config: Config }).config.session.keys;
  const name = keys.join('\n');
  let storeKeys = made.get(name);
  if (storeKeys === undefined) {
    storeKeys = new StoreKeys(keys);
    made.set(name, storeKeys);
  }
  return storeKeys.of(id, keyIndex);
}

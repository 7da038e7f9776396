/**
 * The SQLite store in the shared suites, where node:sqlite exists (Node 22.13 and later). On a Node
 * without it (Node 20) the suites do not list it at all, so nothing is skipped there; test/sqlite-store.test.ts
 * asserts the store's one-line refusal on that Node instead.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore, type SqliteStoreOptions } from '../../app/stores/sqlite.ts';

export const hasNodeSqlite: boolean = await import('node:sqlite').then(
  () => true,
  () => false,
);

/** A folder of its own for one test's database files; cleanUp removes it. */
export function sqliteTempFolder(): { readonly folder: string; cleanUp(): void } {
  const folder = mkdtempSync(join(tmpdir(), 'sessions-sqlite-'));
  return { folder, cleanUp: () => rmSync(folder, { recursive: true, force: true }) };
}

/** A SQLite store on a new file of its own; cleanUp closes it and removes the file. */
export async function openTestSqliteStore(
  options: Partial<SqliteStoreOptions> = {},
): Promise<{ store: SqliteStore; file: string; cleanUp(): Promise<void> }> {
  const temp = sqliteTempFolder();
  const file = join(temp.folder, 'sessions.db');
  const store = await SqliteStore.open({ maxEntries: 1_000, ...options, file });
  return {
    store,
    file,
    async cleanUp() {
      await store.close();
      temp.cleanUp();
    },
  };
}

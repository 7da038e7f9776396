/**
 * What the sign-in tests share: each case runs with the memory store, with Redis (when REDIS_URL answers)
 * and with SQLite (where node:sqlite exists), on apps serving the sign-in routes (sign-in-routes.ts) with a
 * GatedStore in front of the store, and, for the cases about several instances, two apps sharing one store
 * (one MemoryStore or SqliteStore object, or one Redis key prefix). Devices are cookie-keeping clients with
 * a User-Agent of their own.
 */
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { MemoryStore } from '../../app/stores/memory.ts';
import type { SqliteStore } from '../../app/stores/sqlite.ts';
import { appForTest, type RunningApp } from './app.ts';
import { type Answer, Browser } from './browser.ts';
import { GatedStore } from './gated-store.ts';
import {
  deleteKeysWithPrefix,
  inspector,
  keysWithPrefix,
  PATIENT_REDIS,
  REDIS_URL,
  redisTest,
  uniquePrefix,
} from './redis.ts';
import { addSignInRoutes } from './sign-in-routes.ts';
import { hasNodeSqlite, openTestSqliteStore } from './sqlite.ts';

const test = anyTest as TestFn;

export interface Instance {
  readonly app: RunningApp;
  readonly gate: GatedStore;
}

export interface Setup extends Instance {
  readonly storeName: 'memory' | 'redis' | 'sqlite';
  /** The settings the apps run with (REDIS_KEY_PREFIX among them, for Redis). */
  readonly env: Record<string, string>;
  /** A second app on the same store, when the case asked for two instances. */
  readonly other: Instance;
  /** Every key the store holds now: store keys of sessions, and (Redis) the users' keys. */
  storedKeys(): Promise<string[]>;
}

export interface ScenarioOptions {
  readonly env?: Record<string, string>;
}

const STORES = [
  { name: 'memory' as const, test },
  { name: 'redis' as const, test: redisTest(test) },
  // Where node:sqlite exists (not on Node 20, where the SQLite store refuses to start: test/sqlite-store.test.ts).
  ...(hasNodeSqlite ? [{ name: 'sqlite' as const, test }] : []),
];

/** Registers the case once per store. */
export function storeScenario(
  title: string,
  body: (t: ExecutionContext, setup: Setup) => Promise<void>,
  options: ScenarioOptions = {},
): void {
  for (const store of STORES) {
    store.test(`${store.name} store: ${title}`, async (t) => {
      const env: Record<string, string> = { LOG_LEVEL: 'warn', ...options.env };
      let storedKeys: () => Promise<string[]>;
      let shared: MemoryStore | SqliteStore | undefined;
      if (store.name === 'sqlite') {
        const opened = await openTestSqliteStore({ maxEntries: Number(env.SESSION_MAX_ENTRIES ?? 100_000) });
        t.teardown(() => opened.cleanUp());
        shared = opened.store;
        storedKeys = async () => {
          const { DatabaseSync } = await import('node:sqlite');
          const db = new DatabaseSync(opened.file, { readOnly: true });
          try {
            return db
              .prepare('SELECT id FROM sessions ORDER BY id')
              .all()
              .map((row) => String(row.id));
          } finally {
            db.close();
          }
        };
      } else if (store.name === 'redis') {
        const prefix = uniquePrefix();
        Object.assign(env, {
          SESSION_STORE: 'redis',
          REDIS_URL: REDIS_URL ?? '',
          REDIS_KEY_PREFIX: prefix,
          ...PATIENT_REDIS,
        });
        t.teardown(() => deleteKeysWithPrefix(prefix));
        storedKeys = async () => {
          const client = await inspector();
          try {
            return (await keysWithPrefix(client, prefix)).map((key) => key.slice(prefix.length)).sort();
          } finally {
            await client.close();
          }
        };
      } else {
        const memory = new MemoryStore({ maxEntries: Number(env.SESSION_MAX_ENTRIES ?? 100_000) });
        shared = memory;
        t.teardown(() => memory.close());
        storedKeys = async () => {
          const { probation, protected: kept } = memory.segments();
          return [...probation, ...kept].sort();
        };
      }
      const instance = async (): Promise<Instance> => {
        let gate!: GatedStore;
        const app = await appForTest(t, env, {
          routes: addSignInRoutes,
          wrapStore: (inner) => (gate = new GatedStore(inner)),
          ...(shared === undefined ? {} : { store: shared, keepStore: true }),
        });
        return { app, gate };
      };
      const first = await instance();
      const other = await instance();
      await body(t, { ...first, other, storeName: store.name, env, storedKeys });
    });
  }
}

/** A device: a browser of its own, with a User-Agent. */
export class Device extends Browser {
  readonly userAgent: string;

  constructor(baseUrl: string, userAgent = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0') {
    super(baseUrl);
    this.userAgent = userAgent;
  }

  override request(path: string, init: RequestInit = {}): Promise<Answer> {
    const headers = new Headers(init.headers);
    if (!headers.has('user-agent')) headers.set('user-agent', this.userAgent);
    return super.request(path, { ...init, headers });
  }

  /** POSTs a JSON body. */
  post(path: string, body: unknown = {}): Promise<Answer> {
    return this.request(path, { method: 'POST', body: JSON.stringify(body) });
  }

  async signIn(user: string, label?: string): Promise<Answer> {
    return this.post('/login', label === undefined ? { user } : { user, label });
  }

  async me(): Promise<{ user: string | null; note: string | null }> {
    return JSON.parse((await this.request('/me')).body) as { user: string | null; note: string | null };
  }

  async sessions(): Promise<
    Array<{ handle: string; label: string; createdAt: string; lastUsedAt: string; current: boolean }>
  > {
    const answer = await this.request('/sessions');
    return JSON.parse(answer.body);
  }

  /** The same session, seen from another client (as a copied cookie, or a request already in flight). */
  copy(): Device {
    const copy = new Device(this.baseUrl, this.userAgent);
    for (const [name, value] of this.cookies) copy.cookies.set(name, value);
    return copy;
  }
}

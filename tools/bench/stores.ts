/**
 * The stores the benchmark measures the template with (`--stores`), and what each needs around it: the
 * settings of its servers, the servers of its own it starts (a Redis Cluster) or the files it keeps (a
 * SQLite database in a temp folder), the CPU time of the Redis servers that do part of the work, and the
 * clean-up. run.ts uses it for its rows; check.ts (`npm run bench:check`) starts each row it checks the
 * same way.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RedisCpu, redisCpuReader } from './cpu.ts';

export const STORES = ['memory', 'redis', 'cluster', 'sqlite'] as const;
export type StoreName = (typeof STORES)[number];

/** How a row names the store: "this template, <label> store". */
export const STORE_LABELS: Readonly<Record<StoreName, string>> = {
  memory: 'memory',
  redis: 'redis',
  cluster: 'Redis Cluster',
  sqlite: 'SQLite',
};

export function isStoreName(name: string): name is StoreName {
  return (STORES as readonly string[]).includes(name);
}

/** node:sqlite, which the SQLite store needs: Node 22.13 and later. */
export const HAS_NODE_SQLITE: boolean = await import('node:sqlite').then(
  () => true,
  () => false,
);
export const NO_SQLITE_LINE = `SQLite store left out: it needs node:sqlite, in Node 22.13 and later (this is Node ${process.version})`;

/**
 * The cluster-node-timeout of the benchmark's Cluster: no node is ever stopped, and a master of a Cluster
 * without replicas that missed its pings for that long (a loaded machine) would make the Cluster refuse
 * commands, which would spoil a round rather than measure anything.
 */
const CLUSTER_NODE_TIMEOUT_MS = 60_000;

/** A store made ready for the template's rows, until stop(). */
export interface StoreSetup {
  readonly store: StoreName;
  /** The settings of one server of this store's rows; a new SQLite file at each call (one per process). */
  env(): Record<string, string>;
  /** The CPU time of the Redis servers that hold the sessions (Redis, or the Cluster's nodes), read apart. */
  readonly redisCpu?: RedisCpu;
  /**
   * How many sessions the store holds now, for the stores check.ts starts a row of (cluster, sqlite): that
   * the row's server used this store, not the memory store by a missing setting.
   */
  countSessions?(): Promise<number>;
  /** Stops what it started and removes its files (after the servers using it have exited). */
  stop(): Promise<void>;
}

/** Temp folders not removed yet: removed if the process exits first (Ctrl-C, a failure). */
const liveFolders = new Set<string>();
process.once('exit', () => {
  for (const folder of liveFolders) rmSync(folder, { recursive: true, force: true });
});

/**
 * Makes a store ready. `redisUrl`: the Redis of the redis store; `keyPrefix`: the Redis keys of this run
 * (the redis and cluster stores).
 */
export async function setUpStore(
  store: StoreName,
  { redisUrl, keyPrefix }: { redisUrl: string; keyPrefix: string },
): Promise<StoreSetup> {
  switch (store) {
    case 'memory':
      return {
        store,
        env: () => ({ SESSION_STORE: 'memory' }),
        stop: async () => {},
      };
    case 'redis': {
      const redisCpu = await redisCpuReader(redisUrl);
      return {
        store,
        env: () => ({ SESSION_STORE: 'redis', REDIS_URL: redisUrl, REDIS_KEY_PREFIX: keyPrefix }),
        redisCpu,
        stop: () => redisCpu.close(),
      };
    }
    case 'cluster': {
      // Loaded only when asked for: the tests' Redis helpers, which start redis-server processes of their own.
      const { OwnRedisCluster } = await import('../../test/helpers/redis-topologies.ts');
      const cluster = await OwnRedisCluster.start({ nodeTimeoutMs: CLUSTER_NODE_TIMEOUT_MS });
      let redisCpu: RedisCpu;
      try {
        redisCpu = await redisCpuReader(cluster.nodes.map((node) => node.url));
      } catch (error) {
        await cluster.stop();
        throw error;
      }
      return {
        store,
        // REDIS_URL's default (127.0.0.1:6379, database 0) gives no user or password: none here.
        env: () => ({ SESSION_STORE: 'redis', REDIS_CLUSTER_NODES: cluster.seeds, REDIS_KEY_PREFIX: keyPrefix }),
        redisCpu,
        countSessions: async () => (await cluster.keysWithPrefix(keyPrefix)).length,
        async stop() {
          await redisCpu.close();
          await cluster.stop();
        },
      };
    }
    case 'sqlite': {
      if (!HAS_NODE_SQLITE) throw new Error(NO_SQLITE_LINE);
      const folder = mkdtempSync(join(tmpdir(), 'koa-session-bench-sqlite-'));
      liveFolders.add(folder);
      const files: string[] = [];
      return {
        store,
        env() {
          const file = join(folder, `sessions-${files.length}.db`);
          files.push(file);
          return { SESSION_STORE: 'sqlite', SESSION_SQLITE_FILE: file };
        },
        async countSessions() {
          const { DatabaseSync } = await import('node:sqlite');
          let count = 0;
          for (const file of files) {
            const db = new DatabaseSync(file, { readOnly: true });
            try {
              count += Number((db.prepare('SELECT count(*) AS n FROM sessions').get() as { n: number }).n);
            } finally {
              db.close();
            }
          }
          return count;
        },
        async stop() {
          rmSync(folder, { recursive: true, force: true });
          liveFolders.delete(folder);
        },
      };
    }
  }
}

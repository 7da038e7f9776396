/**
 * Redis for tests. The Redis tests run when REDIS_URL is set (.ci/run sets it and starts Redis);
 * otherwise they are skipped with a title that says so. Each test works under a key prefix of its
 * own and deletes its keys afterwards, so tests can run in parallel and leave nothing behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Implementation, TestFn } from 'ava';
import { createClient } from 'redis';
import { createLogger } from '../../app/logger.ts';
import { RedisStore } from '../../app/stores/redis.ts';
import { freePort } from './process.ts';

export const REDIS_URL = process.env.REDIS_URL;
export const REDIS_SKIP_REASON = 'skipped: REDIS_URL is not set (set it to a Redis server to run this; .ci/run does)';

/** ava's test, or test.skip with the reason in the title when no Redis is configured. */
export function redisTest(test: TestFn): TestFn {
  if (REDIS_URL) return test;
  const skipWithReason = (title: string, implementation: Implementation<unknown[]>) => test.skip(`${title} (${REDIS_SKIP_REASON})`, implementation);
  return Object.assign(skipWithReason, test) as unknown as TestFn;
}

export function uniquePrefix(): string {
  return `test:${randomUUID()}:`;
}

/** A RedisStore on REDIS_URL under a fresh prefix; close() also deletes every key it made. */
export async function openTestRedisStore(defaultMaxAgeMs: number): Promise<{ store: RedisStore; close(): Promise<void> }> {
  const keyPrefix = uniquePrefix();
  const store = await RedisStore.connect({
    url: REDIS_URL!,
    keyPrefix,
    defaultMaxAgeMs,
    connectTimeoutMs: 5_000,
    commandTimeoutMs: 2_000,
    logger: createLogger('silent'),
  });
  return {
    store,
    async close() {
      await store.close();
      await deleteKeysWithPrefix(keyPrefix);
    },
  };
}

function plainClient(url: string) {
  return createClient({ url });
}
export type TestRedisClient = ReturnType<typeof plainClient>;

/** A plain client for inspecting keys (TTLs, existence) and cleaning up. */
export async function inspector(url = REDIS_URL!): Promise<TestRedisClient> {
  const client = plainClient(url);
  client.on('error', () => {});
  await client.connect();
  return client;
}

export async function keysWithPrefix(client: TestRedisClient, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const batch of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) keys.push(...batch);
  return keys;
}

export async function deleteKeysWithPrefix(prefix: string, url = REDIS_URL!): Promise<void> {
  const client = await inspector(url);
  const keys = await keysWithPrefix(client, prefix);
  if (keys.length > 0) await client.del(keys);
  await client.close();
}

/** A Redis server of the test's own on a spare port, to stop and restart at will. */
export class OwnRedisServer {
  port = 0;
  #process: ChildProcess | undefined;

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    this.#process = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    for (let attempt = 0; attempt < 100; attempt++) {
      try {
        const client = await inspector(this.url);
        await client.close();
        return;
      } catch {
        await sleep(50);
      }
    }
    throw new Error(`redis-server did not start on port ${this.port}`);
  }

  async stop(): Promise<void> {
    const child = this.#process;
    if (!child || child.exitCode !== null) return;
    child.kill('SIGKILL');
    await once(child, 'exit');
  }
}

/**
 * `--sessions`: how the cost of a `/get` grows with the number of live sessions in the store. run.ts gives
 * each size its own row in the /get scenario (memory and redis stores), measured in the same rounds as the
 * others; this file fills a row's store before its turns and checks that the sessions are there.
 *
 * - Memory store: the sessions must be in the server process. Its rows run growth-server.ts (the benchmark's
 *   server plus POST /bench-fill), with SESSION_MAX_ENTRIES above the largest size (nothing is evicted); the
 *   store's size is read back from /healthz.
 * - Redis store: each row gets a redis-server of its own (no persistence, on a spare port, stopped at the end),
 *   so the small case does not read its one session from a keyspace the large rows filled. The row's live
 *   session is written by the template (/set); the fill copies its text and TTL under new store keys with
 *   the row's key prefix, by a Lua script in batches. The key count (DBSIZE) is read back.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from 'redis';

/** What filling a row's store did. */
export interface Fill {
  /** Sessions (memory) or keys (Redis) in the store after the fill, live session included: read back. */
  readonly sessions: number;
  readonly fillMs: number;
  /** Heap bytes (memory store: heapUsed after full collections) or Redis used_memory bytes per session added. */
  readonly bytesPerSession: number;
}

/**
 * Fills a memory-store row's server (growth-server.ts) to `total` sessions, its live session included, and
 * checks the count in /healthz.
 */
export async function fillMemoryRow(url: string, total: number): Promise<Fill> {
  const response = await fetch(`${url}/bench-fill?count=${Math.max(0, total - 1)}`, { method: 'POST' });
  if (!response.ok) throw new Error(`${url}/bench-fill: ${response.status} ${await response.text()}`);
  const fill = (await response.json()) as { created: number; fillMs: number; heapBytesPerSession: number };
  const health = (await (await fetch(`${url}/healthz`)).json()) as { store: { sessions?: number } };
  const sessions = health.store.sessions ?? Number.NaN;
  if (sessions !== total)
    throw new Error(`memory store: ${sessions} sessions after filling to ${total} (${fill.created} created)`);
  return { sessions, fillMs: fill.fillMs, bytesPerSession: fill.heapBytesPerSession };
}

/** Writes `count` keys per call: long enough to be quick, short enough to leave Redis answering in between. */
const FILL_SCRIPT = `
local prefix, text, ttl, from, count = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
for i = from, from + count - 1 do
  redis.call('SET', prefix .. string.format('fill%018d', i), text, 'PX', ttl)
end
return count`;
const KEYS_PER_SCRIPT = 50_000;

/**
 * Fills a Redis row's own server to `total` keys under `keyPrefix`, its live session included: the new keys
 * (22 characters after the prefix, the length of a store key) hold the live session's text with its TTL.
 */
export async function fillRedisRow(redisUrl: string, keyPrefix: string, total: number): Promise<Fill> {
  const client = createClient({ url: redisUrl });
  await client.connect();
  try {
    const live = await client.keys(`${keyPrefix}*`);
    if (live.length !== 1) throw new Error(`${redisUrl}: ${live.length} keys before the fill, not the live session`);
    const text = await client.get(live[0]);
    const ttlMs = await client.pTTL(live[0]);
    if (text === null || !(ttlMs > 0)) throw new Error(`${redisUrl}: the live session has no text or no TTL`);
    const usedMemory = async () => Number(/^used_memory:(\d+)/m.exec(await client.info('memory'))?.[1]);
    const memoryBefore = await usedMemory();
    const started = performance.now();
    for (let from = 0; from < total - 1; from += KEYS_PER_SCRIPT) {
      const count = Math.min(KEYS_PER_SCRIPT, total - 1 - from);
      await client.eval(FILL_SCRIPT, { arguments: [keyPrefix, text, String(ttlMs), String(from), String(count)] });
    }
    const fillMs = Math.round(performance.now() - started);
    const sessions = await client.dbSize();
    if (sessions !== total) throw new Error(`${redisUrl}: ${sessions} keys after filling to ${total}`);
    const added = total - 1;
    return {
      sessions,
      fillMs,
      bytesPerSession: added > 0 ? Math.round(((await usedMemory()) - memoryBefore) / added) : 0,
    };
  } finally {
    client.destroy();
  }
}

/** redis-server processes of ours still running: killed if this process exits first (Ctrl-C, a failure). */
const liveServers = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveServers) child.kill('SIGKILL');
});

/** A redis-server of the benchmark's own (from the PATH), without persistence, on a spare loopback port. */
export class OwnRedis {
  readonly url: string;
  readonly #child: ChildProcess;

  private constructor(url: string, child: ChildProcess) {
    this.url = url;
    this.#child = child;
  }

  static async start(): Promise<OwnRedis> {
    const port = await sparePort();
    const child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'],
      { stdio: 'ignore' },
    );
    liveServers.add(child);
    const redis = new OwnRedis(`redis://127.0.0.1:${port}`, child);
    for (let attempt = 0; ; attempt++) {
      if (child.exitCode !== null) throw new Error(`redis-server on port ${port} exited (${child.exitCode})`);
      const client = createClient({ url: redis.url, socket: { reconnectStrategy: false } });
      try {
        await client.connect();
        await client.ping();
        client.destroy();
        return redis;
      } catch (error) {
        client.destroy();
        if (attempt >= 100) {
          await redis.stop();
          throw new Error(`redis-server on port ${port} did not answer: ${(error as Error).message}`);
        }
        await sleep(50);
      }
    }
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      const exited = once(this.#child, 'exit');
      this.#child.kill('SIGTERM');
      await exited;
    }
    liveServers.delete(this.#child);
  }
}

function sparePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Redis for tests. The Redis tests find Redis the way the app does: REDIS_URL from the environment,
 * else from a .env file in the working directory. They run when a Redis answers there (.ci/run
 * makes sure one does); otherwise they are skipped with a title that says why. Each test works under
 * a key prefix of its own and deletes its keys afterwards, so tests can run in parallel and leave
 * nothing behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseEnv } from 'node:util';
import type { Implementation, TestFn } from 'ava';
import { createClient } from 'redis';
import { silentLogger } from '../../app/logger.ts';
import { RedisStore, type RedisStoreOptions } from '../../app/stores/redis.ts';
import { freePort } from './process.ts';

const CONFIGURED_REDIS_URL =
  process.env.REDIS_URL ||
  (existsSync('.env') ? parseEnv(readFileSync('.env', 'utf8')).REDIS_URL : undefined) ||
  undefined;

/** Whether a Redis answers PING at the URL within a second. */
async function answers(url: string): Promise<boolean> {
  const client = createClient({ url, socket: { connectTimeout: 1_000, reconnectStrategy: false } });
  client.on('error', () => {});
  try {
    await Promise.race([
      client.connect().then(() => client.ping()),
      sleep(1_000).then(() => Promise.reject(new Error('timeout'))),
    ]);
    return true;
  } catch {
    return false;
  } finally {
    client.destroy();
  }
}

const REDIS_ANSWERS = CONFIGURED_REDIS_URL !== undefined && (await answers(CONFIGURED_REDIS_URL));
/** The Redis the tests use, or undefined when none is configured or none answers. */
export const REDIS_URL = REDIS_ANSWERS ? CONFIGURED_REDIS_URL : undefined;
export const REDIS_SKIP_REASON =
  CONFIGURED_REDIS_URL === undefined
    ? 'skipped: REDIS_URL is not set in the environment or .env (set it to a Redis server to run this; .ci/run does)'
    : 'skipped: no Redis answers at REDIS_URL (start one there to run this; .ci/run does)';

/** ava's test, or test.skip with the reason in the title when no Redis is there. */
export function redisTest(test: TestFn): TestFn {
  if (REDIS_URL) return test;
  const skipWithReason = (title: string, implementation: Implementation<unknown[]>) =>
    test.skip(`${title} (${REDIS_SKIP_REASON})`, implementation);
  return Object.assign(skipWithReason, test) as unknown as TestFn;
}

/**
 * Deadlines for apps whose tests are not about deadlines: long enough that a loaded machine never
 * turns a slow answer into an outage (a 503). Beside a second `npm test` on 2 cores, Redis answers were
 * seen to take more than the app's default second. The outage tests set short ones of their own.
 */
export const PATIENT_REDIS: Readonly<Record<string, string>> = {
  REDIS_CONNECT_TIMEOUT: '10s',
  REDIS_COMMAND_TIMEOUT: '10s',
};

export function uniquePrefix(): string {
  return `test:${randomUUID()}:`;
}

export type TestRedisStoreOptions = Partial<Omit<RedisStoreOptions, 'keyPrefix'>>;

/**
 * A RedisStore (on REDIS_URL unless told otherwise) under a fresh prefix; close() also deletes
 * every key it made. A number in place of the options is accepted and ignored: it was the default
 * idle lifetime, which stores no longer have (every call brings its own TTL).
 */
export async function openTestRedisStore(
  options: TestRedisStoreOptions | number = {},
): Promise<{ store: RedisStore; keyPrefix: string; close(): Promise<void> }> {
  const settings = typeof options === 'number' ? {} : options;
  const keyPrefix = uniquePrefix();
  const url = settings.url ?? REDIS_URL!;
  const store = await RedisStore.connect({
    // Patient by default (see PATIENT_REDIS); the outage tests pass short ones.
    connectTimeoutMs: 10_000,
    commandTimeoutMs: 10_000,
    logger: silentLogger(),
    ...settings,
    url,
    keyPrefix,
  });
  return {
    store,
    keyPrefix,
    async close() {
      await store.close();
      await deleteKeysWithPrefix(keyPrefix, url);
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

/** Answers whether a Redis at `url` replies to PING within `ms`, without retrying or hanging. */
export async function answersPing(url: string, ms: number): Promise<boolean> {
  return (await pingFailure(url, ms)) === undefined;
}

/** Why a Redis at `url` did not reply PONG to PING within `ms`, or undefined when it did. */
async function pingFailure(url: string, ms: number): Promise<string | undefined> {
  const client = createClient({ url, socket: { connectTimeout: ms, reconnectStrategy: false } });
  client.on('error', () => {});
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<string>(
    (resolve) => (timer = setTimeout(() => resolve(`no answer within ${ms} ms`), ms)),
  );
  const answered = client
    .connect()
    .then(() => client.ping())
    .then((reply) => (reply === 'PONG' ? undefined : `replied ${reply}`))
    .catch((error: unknown) => (error instanceof Error ? error.message : String(error)));
  try {
    return await Promise.race([answered, timedOut]);
  } finally {
    clearTimeout(timer);
    client.destroy();
  }
}

/** Every redis-server a test started and has not stopped: killed if the worker exits first. */
const liveServers = new Set<ChildProcess>();
// ava ends a worker whose tests time out with SIGTERM, which skips 'exit' handlers unless the process
// exits by itself: so it does, and the servers (and temp folders, elsewhere) go too.
process.once('SIGTERM', () => process.exit(143));
process.once('exit', () => {
  for (const child of liveServers) {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  }
});

/** redis-server could not bind its port: another process has it. */
class PortTakenError extends Error {}

/**
 * A Redis server of the test's own on a spare port, to stop, restart, pause (SIGSTOP: the process
 * keeps its port and the kernel still accepts connections, but nothing is answered) and resume.
 * Use ownRedisServer(t), which stops it when the test ends, passed or failed.
 */
export interface OwnRedisServerOptions {
  /** The server requires it (requirepass) and `url` carries it. */
  readonly password?: string;
  /**
   * The whole command line for a port, in place of the plain server's (a Cluster node, a Sentinel); asked
   * again at each start, so that a restart can come back in another role.
   */
  readonly args?: (port: number) => string[] | Promise<string[]>;
  /** What the server writes once it accepts connections (a Sentinel says no "Ready to accept connections"). */
  readonly ready?: RegExp;
}

export class OwnRedisServer {
  port = 0;
  readonly #password: string | undefined;
  readonly #args: OwnRedisServerOptions['args'];
  readonly #ready: RegExp;
  #process: ChildProcess | undefined;
  #paused = false;

  constructor(options: OwnRedisServerOptions = {}) {
    this.#password = options.password;
    this.#args = options.args;
    this.#ready = options.ready ?? /Ready to accept connections/;
  }

  /** Running: started, not stopped, not exited (paused or not). */
  get running(): boolean {
    const child = this.#process;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  get paused(): boolean {
    return this.running && this.#paused;
  }

  get url(): string {
    return this.#urlFor(this.port);
  }

  #urlFor(port: number): string {
    const auth = this.#password === undefined ? '' : `:${encodeURIComponent(this.#password)}@`;
    return `redis://${auth}127.0.0.1:${port}`;
  }

  /**
   * Starts redis-server and waits until it answers, for at most `timeoutMs`: on the same port as
   * before if it ran already, else on a free port (another if a process takes that one first).
   * Ready means this very process said it accepts connections, and then answered PING: an answer
   * alone could come from another Redis that took the port meanwhile.
   */
  async start(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    if (this.port !== 0) return this.#startOn(this.port, deadline);
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      try {
        await this.#startOn(port, deadline);
        this.port = port;
        return;
      } catch (error) {
        // The port was taken between the probe and redis-server's bind: try another one.
        if (!(error instanceof PortTakenError) || attempt === 5) throw error;
      }
    }
  }

  async #startOn(port: number, deadline: number): Promise<void> {
    const args = this.#args
      ? await this.#args(port)
      : ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
    if (this.#password !== undefined) args.push('--requirepass', this.#password);
    const child = spawn('redis-server', args, {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let announcedReady = false;
    const collect = (chunk: string) => {
      output = (output + chunk).slice(-2_000);
      if (this.#ready.test(output)) announcedReady = true;
    };
    child.stdout!.setEncoding('utf8').on('data', collect);
    child.stderr!.setEncoding('utf8').on('data', collect);
    let spawnError: Error | undefined;
    child.on('error', (error) => (spawnError = error));
    this.#process = child;
    this.#paused = false;
    liveServers.add(child);
    child.once('exit', () => liveServers.delete(child));
    const started = Date.now();
    const url = this.#urlFor(port);
    let lastFailure = 'it never said it was ready';
    while (Date.now() < deadline) {
      if (spawnError || child.exitCode !== null || child.signalCode !== null) break;
      if (announcedReady) {
        // One PING with all the time left: this process is up and bound, so an answer only waits for
        // a loaded machine to get round to it (short deadlines retried back to back never got there).
        const failure = await pingFailure(url, Math.max(1, deadline - Date.now()));
        if (failure === undefined) return;
        lastFailure = `the last PING: ${failure}`;
      }
      await sleep(50);
    }
    const exit = child.exitCode ?? child.signalCode;
    const why = spawnError
      ? spawnError.message
      : exit !== null
        ? `exited: ${exit}`
        : `not ready within ${Date.now() - started} ms, ${lastFailure}`;
    await this.stop();
    const message = `redis-server on port ${port} did not start (${why}, after ${Date.now() - started} ms): ${output.trim()}`;
    throw /Address already in use/i.test(output) ? new PortTakenError(message) : new Error(message);
  }

  /** SIGSTOP: Redis keeps its port and connections but answers nothing until resume(). */
  pause(): void {
    if (!this.#process || this.#process.exitCode !== null) throw new Error('redis-server is not running');
    this.#process.kill('SIGSTOP');
    this.#paused = true;
  }

  /** SIGCONT: Redis answers again, including what was sent to it meanwhile. */
  resume(): void {
    if (!this.#process || !this.#paused) return;
    this.#process.kill('SIGCONT');
    this.#paused = false;
  }

  /** Kills the server (resuming it first if paused); safe to call at any time, more than once. */
  async stop(): Promise<void> {
    const child = this.#process;
    // No pid: it never started (spawn failed), so there is no exit to wait for.
    if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    this.resume();
    child.kill('SIGKILL');
    await exited;
  }
}

/** An OwnRedisServer, started, and stopped (resumed first if paused) when the test ends, whatever its outcome. */
export async function ownRedisServer(
  t: { teardown(fn: () => unknown): void },
  options: OwnRedisServerOptions = {},
): Promise<OwnRedisServer> {
  const server = new OwnRedisServer(options);
  t.teardown(() => server.stop());
  await server.start();
  return server;
}

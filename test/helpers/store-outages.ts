/**
 * The Redis store's outage tests, one suite (outageSuite) over every Redis deployment: a server alone
 * (test/redis.test.ts), a Cluster (test/redis-cluster.test.ts) and Sentinels (test/redis-sentinel.test.ts).
 * What holds a key stops answering (SIGSTOP: the process keeps its port and the kernel still accepts
 * connections, but nothing is answered) or is killed; every call must fail with StoreUnavailableError
 * within its deadline, never hang, and the same store must serve again once Redis is back: the server
 * resumed or restarted, or, with a Cluster or Sentinels, a replica promoted in the killed master's place.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ExecutionContext, TestFn } from 'ava';
import { createLogger, silentLogger } from '../../app/logger.ts';
import { RedisStore, type RedisStoreOptions } from '../../app/stores/redis.ts';
import { StoreUnavailableError } from '../../app/stores/store.ts';
import { StartupError } from '../../config/index.ts';
import { type OwnRedisServer, ownRedisServer, uniquePrefix } from './redis.ts';
import { boundedClient, type OwnRedisCluster, OwnRedisSentinel } from './redis-topologies.ts';
import { OwnDelay } from './timing.ts';

/**
 * REDIS_COMMAND_TIMEOUT in the outage tests, and the most any call may take past it. Measured beside a
 * second `npm test` on 2 cores: a round trip to a healthy Redis past 500 ms (so 1 s here: a call that
 * misses it counts as an outage, and an outage is logged), a burst of 50 requests answered after ~2.9 s
 * (so 4 s of slack). What these bounds tell apart is still far off: a call without a deadline never
 * ends while Redis is paused, and 50 calls queued one behind another would take 50 deadlines.
 */
export const COMMAND_TIMEOUT_MS = 1_000;
export const SLACK_MS = 4_000;
export const BOUND_MS = COMMAND_TIMEOUT_MS + SLACK_MS;
/** "At once": well under the command timeout, so a call that waited for its deadline (or for a connection) cannot pass. */
export const AT_ONCE_MS = COMMAND_TIMEOUT_MS / 2;
export const TTL_MS = 60_000;

/** Log lines written to memory, parsed. */
export function logSink() {
  const lines: string[] = [];
  return {
    logger: createLogger(
      { level: 'debug', format: 'json', production: false },
      { write: (line: string) => void lines.push(line) },
    ),
    text: () => lines.join(''),
    messages: () => lines.map((line) => (JSON.parse(line) as { msg: string }).msg),
  };
}

/**
 * Awaits a call that must fail with StoreUnavailableError within BOUND_MS plus the time this process
 * could not run meanwhile (OwnDelay: a loaded machine, not the store); returns how long it took.
 */
export async function timeRejection(t: ExecutionContext, label: string, call: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  const ownDelay = new OwnDelay();
  const error = await t.throwsAsync(call, { instanceOf: StoreUnavailableError }, label);
  const elapsed = performance.now() - started;
  const delayed = ownDelay.stop();
  t.true(
    elapsed < BOUND_MS + delayed,
    `${label} failed after ${Math.round(elapsed)} ms, this process held up ${Math.round(delayed)} ms of it (${error?.message})`,
  );
  return elapsed;
}

/** Polls health() until it is ok; returns how long that took (Infinity if not within `withinMs`). */
export async function timeRecovery(store: RedisStore, withinMs: number): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < withinMs) {
    if ((await store.health()).ok) return performance.now() - started;
    await sleep(20);
  }
  return Infinity;
}

/**
 * One call of each kind, on ids that share a hash tag: in a Cluster their keys share a slot, so one
 * master holds them all.
 */
export const CALLS: ReadonlyArray<[string, (store: RedisStore) => Promise<unknown>]> = [
  ['get', (store) => store.get('{o}a', TTL_MS)],
  ['create', (store) => store.create('{o}b', '{}', TTL_MS)],
  ['update', (store) => store.update('{o}a', '{}', TTL_MS)],
  ['destroy', (store) => store.destroy('{o}a')],
];

/** One outage test's Redis: what the store connects to, and the server behind a key. */
export interface OutageSetup {
  readonly storeOptions: Pick<RedisStoreOptions, 'url' | 'topology'>;
  /** The redis-server that holds `key` now (the server, the key's master, the master). */
  serverOf(key: string): Promise<OwnRedisServer>;
  /** Writes `key` with a plain client (no deadline), on every replica too before it returns. */
  seed(key: string, text: string): Promise<void>;
  /** No failover while a paused server is meant to come back as it was (a Cluster, Sentinels). */
  holdFailovers(held: boolean): Promise<void>;
  /** After `server` was killed: a server alone is restarted (empty); a Cluster or Sentinels fail over by themselves. */
  afterKill(server: OwnRedisServer): Promise<void>;
  /** The password the servers require and the store's URL carries, if any: never in an error or a log line. */
  readonly password?: string;
}

export interface OutageDeployment {
  /** 'redis', 'redis cluster', 'redis sentinel', for test titles. */
  readonly name: string;
  /** ava's test; serial for a deployment the file's tests share (one breaks it for all). */
  readonly test: TestFn;
  /** Sets up one test's Redis and heals it when the test ends (t.teardown). */
  setUp(t: ExecutionContext, options?: { password?: string }): Promise<OutageSetup>;
  /**
   * Whether calls fail at once, without waiting for a deadline, once the store knows what holds their
   * keys is gone: paused (a server's or Sentinel's connection recycled; a Cluster's calls to the paused
   * master wait on a fresh connection to it, for their deadline), and killed (a Sentinel client's first
   * calls wait for its own lookup of the master, for their deadline).
   */
  readonly failsAtOnce: { readonly paused: boolean; readonly killed: boolean };
  /** Whether what was written before a kill is read after recovery (a replica took over). */
  readonly keepsDataThroughKill: boolean;
}

/** A store on the setup with the short command timeout; connecting keeps a long deadline (a loaded machine). */
export async function outageStore(
  t: ExecutionContext,
  setup: OutageSetup,
  options: Partial<Omit<RedisStoreOptions, 'keyPrefix'>> = {},
): Promise<{ store: RedisStore; keyPrefix: string; seed(id: string, text: string): Promise<void> }> {
  const keyPrefix = uniquePrefix();
  const store = await RedisStore.connect({
    connectTimeoutMs: 10_000,
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    logger: silentLogger(),
    ...setup.storeOptions,
    ...options,
    keyPrefix,
  });
  t.teardown(() => store.close());
  return { store, keyPrefix, seed: (id, text) => setup.seed(keyPrefix + id, text) };
}

/** A redis-server of the test's own. */
export function singleOutages(test: TestFn): OutageDeployment {
  return {
    name: 'redis',
    test,
    async setUp(t, options = {}) {
      const server = await ownRedisServer(t, options);
      return {
        storeOptions: { url: server.url },
        serverOf: async () => server,
        async seed(key, text) {
          const client = await boundedClient(server.url);
          try {
            await client.set(key, text, { expiration: { type: 'PX', value: TTL_MS } });
          } finally {
            client.destroy();
          }
        },
        holdFailovers: async () => {},
        afterKill: () => server.start(), // same port, empty
        password: options.password,
      };
    },
    failsAtOnce: { paused: true, killed: true },
    keepsDataThroughKill: false,
  };
}

/** Writes a key on its master and waits until the master's replicas have it (WAIT). */
async function seedReplicated(master: OwnRedisServer, replicas: number, key: string, text: string): Promise<void> {
  const client = await boundedClient(master.url);
  try {
    await client.set(key, text, { expiration: { type: 'PX', value: TTL_MS } });
    const acknowledged = Number(await client.sendCommand(['WAIT', String(replicas), '5000']));
    if (acknowledged < replicas) throw new Error(`${key}: ${acknowledged} of ${replicas} replicas have it`);
  } finally {
    client.destroy();
  }
}

/** A Cluster with a replica per master, shared by the file's tests (serial), healed after each. */
export function clusterOutages(test: TestFn, cluster: () => Promise<OwnRedisCluster>): OutageDeployment {
  return {
    name: 'redis cluster',
    test,
    async setUp(t) {
      const own = await cluster();
      t.teardown(() => own.heal());
      return {
        storeOptions: {
          url: 'redis://127.0.0.1',
          topology: { kind: 'cluster', nodes: own.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })) },
        },
        serverOf: async (key) => (await own.shardOf(key)).master,
        async seed(key, text) {
          const { master, replicas } = await own.shardOf(key);
          await seedReplicated(master, replicas.length, key, text);
        },
        holdFailovers: (held) => own.holdFailovers(held),
        afterKill: async () => {},
      };
    },
    failsAtOnce: { paused: false, killed: true },
    keepsDataThroughKill: true,
  };
}

/** A master, a replica and three Sentinels, shared by the file's tests (serial), healed after each. */
export function sentinelOutages(test: TestFn, setup: () => Promise<OwnRedisSentinel>): OutageDeployment {
  return {
    name: 'redis sentinel',
    test,
    async setUp(t) {
      const own = await setup();
      t.teardown(() => own.heal());
      return {
        storeOptions: {
          url: 'redis://127.0.0.1',
          topology: {
            kind: 'sentinel',
            nodes: own.sentinels.map((node) => ({ host: '127.0.0.1', port: node.port })),
            masterName: OwnRedisSentinel.MASTER_NAME,
          },
        },
        serverOf: () => own.master(),
        seed: async (key, text) => seedReplicated(await own.master(), 1, key, text),
        holdFailovers: (held) => own.holdFailovers(held),
        afterKill: async () => {},
      };
    },
    failsAtOnce: { paused: true, killed: false },
    keepsDataThroughKill: true,
  };
}

/** The outage tests, on one deployment. */
export function outageSuite(deployment: OutageDeployment): void {
  const { name, test } = deployment;

  test(`${name} store: with what holds a key paused, every call on it fails with StoreUnavailableError within the command timeout`, async (t) => {
    const setup = await deployment.setUp(t);
    await setup.holdFailovers(true);
    for (const [call, run] of CALLS) {
      // A fresh store each time, so that each command meets a stalled connection, not a recycled one.
      const { store, keyPrefix, seed } = await outageStore(t, setup);
      await seed('{o}a', '{}');
      const server = await setup.serverOf(`${keyPrefix}{o}a`);
      server.pause();
      const elapsed = await timeRejection(t, `${call} on a stalled connection`, () => run(store));
      t.true(elapsed >= COMMAND_TIMEOUT_MS - 50, `${call} waited for its deadline (${Math.round(elapsed)} ms)`);
      t.log(`${call}: StoreUnavailableError after ${Math.round(elapsed)} ms (deadline ${COMMAND_TIMEOUT_MS} ms)`);
      await Promise.all(
        CALLS.map(async ([other, again]) => {
          const next = await timeRejection(t, `${other} after the connection stalled`, () => again(store));
          if (deployment.failsAtOnce.paused)
            t.true(next < AT_ONCE_MS, `${other} failed at once without a connection (${Math.round(next)} ms)`);
        }),
      );
      server.resume();
      await store.close();
    }

    const { store, keyPrefix } = await outageStore(t, setup);
    const server = await setup.serverOf(`${keyPrefix}{o}a`);
    server.pause();
    const started = performance.now();
    const health = await store.health();
    const elapsed = performance.now() - started;
    server.resume();
    t.like(health, { ok: false, reachable: false });
    t.true(elapsed < BOUND_MS, `health answered not ok after ${Math.round(elapsed)} ms`);
    t.log(`health: { ok: false } after ${Math.round(elapsed)} ms`);
  });

  test(`${name} store: a burst of 50 calls with what holds their keys paused all settle within the bound, and the same store serves again after SIGCONT`, async (t) => {
    const setup = await deployment.setUp(t, { password: 's3cret-pass' });
    await setup.holdFailovers(true);
    const logs = logSink();
    const { store, keyPrefix, seed } = await outageStore(t, setup, { logger: logs.logger });
    await seed('{o}kept', '{"n":1}');
    const server = await setup.serverOf(`${keyPrefix}{o}kept`);

    server.pause();
    const started = performance.now();
    const outcomes = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) => {
        const [, call] = CALLS[i % CALLS.length];
        return call(store);
      }),
    );
    const settledAfter = performance.now() - started;
    t.true(
      outcomes.every((outcome) => outcome.status === 'rejected' && outcome.reason instanceof StoreUnavailableError),
      'every call failed with StoreUnavailableError',
    );
    const errorMessages = outcomes.map((outcome) =>
      outcome.status === 'rejected' ? String((outcome.reason as Error).message) : '',
    );
    if (setup.password) {
      t.false(
        errorMessages.some((message) => message.includes(setup.password!)),
        `no password in the errors: ${[...new Set(errorMessages)].join('; ')}`,
      );
    }
    t.true(settledAfter < BOUND_MS, `all 50 settled after ${Math.round(settledAfter)} ms`);
    t.is(store.inFlight, 0, 'nothing left waiting');
    t.log(`burst of 50 on a paused Redis: all settled after ${Math.round(settledAfter)} ms`);
    t.false((await store.health()).ok);

    await sleep(3_000); // a long outage: reconnection attempts keep meeting the paused server
    server.resume();
    const recovery = await timeRecovery(store, 10_000);
    t.true(recovery < 10_000, 'the store reconnected by itself');
    t.log(`recovered ${Math.round(recovery)} ms after SIGCONT`);
    t.is(await store.get('{o}kept', TTL_MS), '{"n":1}', 'the data is still there');
    t.true(await store.update('{o}kept', '{"n":2}', TTL_MS));

    const messages = logs.messages();
    t.is(messages.filter((message) => /redis unreachable/.test(message)).length, 1, messages.join('\n'));
    t.is(messages.filter((message) => /redis reachable again/.test(message)).length, 1, messages.join('\n'));
    t.notRegex(logs.text(), /kept/, 'no session id in the logs');
    if (setup.password) t.false(logs.text().includes(setup.password), 'no password in the logs');
  });

  test(`${name} store: calls in flight are bounded; past the bound they fail at once`, async (t) => {
    const setup = await deployment.setUp(t);
    await setup.holdFailovers(true);
    const { store, keyPrefix } = await outageStore(t, setup, { maxInFlight: 10 });
    const server = await setup.serverOf(`${keyPrefix}{o}a`);
    server.pause();
    const started = performance.now();
    const timings = await Promise.all(
      Array.from({ length: 50 }, () =>
        store.get('{o}a', TTL_MS).then(
          () => ({ ok: true, ms: performance.now() - started }),
          (error: unknown) => ({ ok: !(error instanceof StoreUnavailableError), ms: performance.now() - started }),
        ),
      ),
    );
    server.resume();
    t.true(
      timings.every(({ ok }) => !ok),
      'every call failed with StoreUnavailableError',
    );
    const waited = timings.filter(({ ms }) => ms >= COMMAND_TIMEOUT_MS - 50).length;
    t.is(waited, 10, 'only the 10 in flight waited for the deadline; the other 40 failed at once');
    t.true(Math.max(...timings.map(({ ms }) => ms)) < BOUND_MS);
  });

  test(`${name} store: idle for longer than its connections' socket timeout, the next calls are answered`, async (t) => {
    const setup = await deployment.setUp(t);
    const logs = logSink();
    // A Cluster's or Sentinel's node connections are dropped after half of this in silence. The long
    // command deadline keeps a slow answer on a loaded machine from passing for an outage: a dropped
    // connection still shows, as a call that fails at once and an outage in the log.
    const { store } = await outageStore(t, setup, {
      connectTimeoutMs: 4_000,
      commandTimeoutMs: 10_000,
      logger: logs.logger,
    });
    t.true(await store.create('{o}a', '{}', TTL_MS));
    await sleep(3_000);
    t.is(await store.get('{o}a', TTL_MS), '{}');
    t.true(await store.update('{o}a', '{"n":1}', TTL_MS));
    t.deepEqual(logs.messages(), [], 'no outage');
  });

  test(`${name} store: with what holds a key killed, calls fail within the bound, and the same store serves again once Redis is back`, async (t) => {
    const setup = await deployment.setUp(t);
    const logs = logSink();
    const { store, keyPrefix, seed } = await outageStore(t, setup, { logger: logs.logger });
    await seed('{o}a', '{"before":"the kill"}');
    const server = await setup.serverOf(`${keyPrefix}{o}a`);
    await server.stop();
    for (let attempt = 0; attempt < 100 && (await store.health()).ok; attempt++) await sleep(50); // until the client sees the close
    t.false((await store.health()).ok);
    for (const [call, run] of CALLS) {
      const elapsed = await timeRejection(t, call, () => run(store));
      if (deployment.failsAtOnce.killed) t.true(elapsed < AT_ONCE_MS, `${call} failed at once`);
    }
    await setup.afterKill(server);
    const recovery = await timeRecovery(store, 20_000);
    t.true(recovery < 20_000, 'the store serves again by itself');
    t.log(`health ok ${Math.round(recovery)} ms after the calls above`);
    if (deployment.keepsDataThroughKill) {
      t.is(
        await store.get('{o}a', TTL_MS),
        '{"before":"the kill"}',
        'what was written (and replicated) before is there',
      );
    }
    t.true(await store.create('{o}new', '{}', TTL_MS));
    // A Cluster's repair says so in its next round, a moment after the masters answer again.
    for (let attempt = 0; attempt < 100 && !logs.messages().includes('redis reachable again'); attempt++)
      await sleep(50);
    t.deepEqual(
      logs.messages().filter((message) => /redis/.test(message)),
      ['redis unreachable; session requests answer 503 until it is back', 'redis reachable again'],
    );
  });
}

/**
 * A store that must refuse to start on `topology` (2 s to connect, the outage tests' command timeout): the
 * StartupError it throws, and how long the refusal took.
 */
export async function refusedStart(
  t: ExecutionContext,
  topology: RedisStoreOptions['topology'],
): Promise<{ error: StartupError | undefined; elapsedMs: number }> {
  const started = performance.now();
  const error = await t.throwsAsync(
    RedisStore.connect({
      url: 'redis://127.0.0.1',
      topology,
      keyPrefix: uniquePrefix(),
      connectTimeoutMs: 2_000,
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      logger: silentLogger(),
    }),
    { instanceOf: StartupError },
  );
  return { error, elapsedMs: performance.now() - started };
}

/**
 * Redis Cluster (REDIS_CLUSTER_NODES): the outage suite (test/helpers/store-outages.ts) on a Cluster of
 * this file's own, three masters with a replica each, and what only a Cluster has: one master stalled
 * while the others serve, a stalled master failed over under the store, MOVED and ASK while a slot moves,
 * a master killed under HTTP load, start-up errors, a password. The tests share the cluster, so they run
 * one at a time, each leaving it healthy (every node up, replicas in sync).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { silentLogger } from '../app/logger.ts';
import { RedisStore, type RedisStoreOptions } from '../app/stores/redis.ts';
import { StoreUnavailableError } from '../app/stores/store.ts';
import { StartupError } from '../config/index.ts';
import { appForTest } from './helpers/app.ts';
import { Browser } from './helpers/browser.ts';
import { type FailoverTarget, failoverUnderLoad } from './helpers/failover-load.ts';
import { freePort, runToExit } from './helpers/process.ts';
import { answersPing, REDIS_URL, uniquePrefix } from './helpers/redis.ts';
import { ask, boundedClient, sharedCluster, topologyTest } from './helpers/redis-topologies.ts';
import {
  BOUND_MS,
  COMMAND_TIMEOUT_MS,
  clusterOutages,
  outageSuite,
  refusedStart,
  TTL_MS,
  timeRecovery,
} from './helpers/store-outages.ts';

const test = topologyTest((anyTest as TestFn).serial as unknown as TestFn);
const cluster = sharedCluster(anyTest as TestFn, { replicas: true });

outageSuite(clusterOutages(test, cluster));

/** The cluster, healed when the test ends, and a store on it (closed then) under a fresh prefix. */
async function clusterStore(t: ExecutionContext, options: Partial<RedisStoreOptions> = {}) {
  const own = await cluster();
  t.teardown(() => own.heal());
  const keyPrefix = uniquePrefix();
  const store = await RedisStore.connect({
    url: 'redis://127.0.0.1',
    topology: { kind: 'cluster', nodes: own.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })) },
    keyPrefix,
    connectTimeoutMs: 10_000,
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    logger: silentLogger(),
    ...options,
  });
  t.teardown(async () => {
    for (const node of own.nodes) node.resume(); // a failed test may leave one paused
    await store.close();
    await own.deleteKeysWithPrefix(keyPrefix);
  });
  return { own, store, keyPrefix };
}

/** Reads every id at once: the value, or the StoreUnavailableError, and how long each call took. */
async function readAll(store: RedisStore, ids: readonly string[]) {
  return Promise.all(
    ids.map(async (id) => {
      const started = performance.now();
      try {
        const value = await store.get(id, TTL_MS);
        return { id, value, ms: performance.now() - started };
      } catch (error) {
        return { id, error, ms: performance.now() - started };
      }
    }),
  );
}

test('one master stalled: calls on its keys fail within the deadline, the other masters keep answering meanwhile, and all answer again after SIGCONT', async (t) => {
  // A longer deadline here: a healthy master's answer must not miss it on a loaded machine.
  const deadline = 2 * COMMAND_TIMEOUT_MS;
  const { own, store, keyPrefix } = await clusterStore(t, { commandTimeoutMs: deadline });
  await own.holdFailovers(true);
  const ids = Array.from({ length: 30 }, (_, i) => `s${i}`);
  for (const id of ids) t.true(await store.create(id, `{"id":"${id}"}`, TTL_MS));
  const victim = (await own.shardOf(keyPrefix + ids[0])).master;
  const onVictim = new Set<string>();
  for (const id of ids) if ((await own.shardOf(keyPrefix + id)).master === victim) onVictim.add(id);
  t.true(
    onVictim.size > 0 && onVictim.size < ids.length,
    `${onVictim.size} of ${ids.length} ids on the stalled master`,
  );

  victim.pause();
  for (let round = 1; round <= 3; round++) {
    const results = await readAll(store, ids);
    for (const result of results) {
      if (onVictim.has(result.id)) {
        t.true(result.error instanceof StoreUnavailableError, `round ${round}: ${result.id} fails`);
        t.true(result.ms < deadline + BOUND_MS - COMMAND_TIMEOUT_MS, `round ${round}: ${result.id} within the bound`);
      } else {
        t.is(result.value, `{"id":"${result.id}"}`, `round ${round}: ${result.id} on another master answers`);
      }
    }
    const slowest = Math.max(...results.filter((result) => onVictim.has(result.id)).map((result) => result.ms));
    t.log(
      `round ${round}: ${ids.length - onVictim.size} answered, ${onVictim.size} failed after ${Math.round(slowest)} ms at most`,
    );
  }
  t.false((await store.health()).ok, 'health says a master does not answer');

  victim.resume();
  const recovery = await timeRecovery(store, 10_000);
  t.true(recovery < 10_000, 'every master answers again');
  t.log(`health ok ${Math.round(recovery)} ms after SIGCONT`);
  for (const result of await readAll(store, ids)) t.is(result.value, `{"id":"${result.id}"}`, result.id);
});

test('every master stalled: every call fails within the deadline, health says so, and all answer again after SIGCONT', async (t) => {
  const { own, store } = await clusterStore(t);
  await own.holdFailovers(true);
  const ids = Array.from({ length: 12 }, (_, i) => `all${i}`);
  for (const id of ids) t.true(await store.create(id, `{"id":"${id}"}`, TTL_MS));
  const masters = await own.masters();
  for (const master of masters) master.pause();
  for (let round = 1; round <= 2; round++) {
    for (const result of await readAll(store, ids)) {
      t.true(result.error instanceof StoreUnavailableError, `round ${round}: ${result.id} fails`);
      t.true(result.ms < BOUND_MS, `round ${round}: ${result.id} after ${Math.round(result.ms)} ms`);
    }
  }
  t.false((await store.health()).ok);
  for (const master of masters) master.resume();
  t.true((await timeRecovery(store, 10_000)) < 10_000, 'every master answers again');
  for (const result of await readAll(store, ids)) t.is(result.value, `{"id":"${result.id}"}`, result.id);
});

test('a stalled master that the cluster fails over: the store serves its keys from the promoted replica while it is still stopped', async (t) => {
  const { own, store, keyPrefix } = await clusterStore(t);
  const ids = ['{v}a', '{v}b', '{v}c'];
  for (const id of ids) t.true(await store.create(id, `{"id":"${id}"}`, TTL_MS));
  const { master: victim, replicas } = await own.shardOf(`${keyPrefix}{v}a`);
  const marker = await own.keyOn(victim);
  const client = await boundedClient(victim.url);
  await client.set(marker, '1');
  t.is(Number(await client.sendCommand(['WAIT', String(replicas.length), '5000'])), replicas.length, 'replicated');
  client.destroy();

  victim.pause();
  const paused = performance.now();
  let served: number | undefined;
  let failures = 0;
  while (served === undefined && performance.now() - paused < 20_000) {
    const results = await readAll(store, ids);
    for (const result of results) t.true(result.ms < BOUND_MS, `${result.id} answered within the bound`);
    if (results.every((result) => result.value === `{"id":"${result.id}"}`)) served = performance.now() - paused;
    else failures += results.filter((result) => result.error).length;
    await sleep(100);
  }
  t.truthy(served, 'served again while the master is stopped');
  t.true(victim.paused, 'the old master is still stopped');
  const { master: now } = await own.shardOf(`${keyPrefix}{v}a`);
  t.not(now, victim, 'by the promoted replica');
  t.log(
    `keys of the stopped master served again ${Math.round(served ?? Number.NaN)} ms after SIGSTOP (${failures} calls failed meanwhile)`,
  );
});

test('MOVED and ASK while a slot moves to another master: every call on its keys is answered, by the client following the redirections', async (t) => {
  const { own, store, keyPrefix } = await clusterStore(t);
  t.true(await store.create('{m}a', '{"n":1}', TTL_MS));
  const key = `${keyPrefix}{m}a`;
  const slot = await ask((await own.masters())[0].port, 'CLUSTER', 'KEYSLOT', key);
  const source = (await own.shardOf(key)).master;
  const destination = (await own.masters()).find((master) => master !== source)!;
  const [sourceId, destinationId] = [await own.idOf(source), await own.idOf(destination)];

  // Half-way: the key already moved, the slot not yet. The source answers ASK for it.
  await ask(destination.port, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId);
  await ask(source.port, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', destinationId);
  await ask(source.port, 'MIGRATE', '127.0.0.1', String(destination.port), '', '0', '5000', 'KEYS', key);
  const plain = await boundedClient(source.url);
  t.teardown(() => plain.destroy());
  await t.throwsAsync(plain.get(key), { message: /^ASK / }, 'the source answers ASK');
  t.is(await store.get('{m}a', TTL_MS), '{"n":1}', 'read through ASK');
  t.true(await store.update('{m}a', '{"n":2}', TTL_MS), 'updated through ASK');
  t.true(await store.create('{m}b', '{"n":3}', TTL_MS), 'a new key of the slot made through ASK');

  // Done: the slot is the destination's. The source answers MOVED.
  for (const master of await own.masters()) await ask(master.port, 'CLUSTER', 'SETSLOT', slot, 'NODE', destinationId);
  await t.throwsAsync(plain.get(key), { message: /^MOVED / }, 'the source answers MOVED');
  t.is(await store.get('{m}a', TTL_MS), '{"n":2}', 'read through MOVED');
  t.is(await store.get('{m}b', TTL_MS), '{"n":3}');
  t.true(await store.destroy('{m}a'));
  t.is((await own.shardOf(key)).master, destination);
  const onDestination = await boundedClient(destination.url);
  t.teardown(() => onDestination.destroy());
  t.is(await onDestination.get(`${keyPrefix}{m}b`), '{"n":3}', 'the keys are on the destination');
});

test("a user's keys caught half-way through a slot's move: every users call is answered or 503, never a wrong answer", async (t) => {
  const { own, store, keyPrefix } = await clusterStore(t);
  const user = 'u:half-moved';
  const entry = (handle: string) => ({ handle, storeKey: `key-${handle}`, label: 'device' });
  await store.users.add(user, entry('old'), TTL_MS, 10);
  t.deepEqual(await store.users.endAll(user, TTL_MS), ['key-old']);
  t.deepEqual(await store.users.add(user, entry('new'), TTL_MS, 10), { epoch: 1, dropped: [] });
  const tag = `${keyPrefix}{${user}}:`;
  const slot = await ask((await own.masters())[0].port, 'CLUSTER', 'KEYSLOT', `${tag}epoch`);
  const source = (await own.shardOf(`${tag}epoch`)).master;
  const destination = (await own.masters()).find((master) => master !== source)!;
  const [sourceId, destinationId] = [await own.idOf(source), await own.idOf(destination)];
  await ask(destination.port, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId);
  await ask(source.port, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', destinationId);
  // The epoch has moved, the list not yet: a script reading one without the other would see epoch 0.
  await ask(source.port, 'MIGRATE', '127.0.0.1', String(destination.port), '', '0', '5000', 'KEYS', `${tag}epoch`);

  const outcome = async (call: () => Promise<unknown>) => {
    try {
      return { answer: await call() };
    } catch (error) {
      t.true(error instanceof StoreUnavailableError, `not a 503: ${error}`);
      return { unavailable: true };
    }
  };
  const touchedNew = await outcome(() => store.users.touch(user, 'new', 1, TTL_MS));
  t.notDeepEqual(touchedNew, { answer: false }, 'the live session is never signed out by the move');
  t.notDeepEqual(
    await outcome(() => store.users.touch(user, 'old', 0, TTL_MS)),
    { answer: true },
    'the session signed out everywhere never comes back',
  );
  const listed = await outcome(() => store.users.list(user));
  if ('answer' in listed)
    t.deepEqual(
      (listed.answer as Array<{ handle: string }>).map((e) => e.handle),
      ['new'],
    );
  t.log({ touchedNew, listed: 'answer' in listed ? 'answered' : 'unavailable' });

  // The move ends: every key of the user on the destination.
  const rest = [`${tag}expires`, `${tag}used`, `${tag}sessions`];
  await ask(source.port, 'MIGRATE', '127.0.0.1', String(destination.port), '', '0', '5000', 'KEYS', ...rest);
  for (const master of await own.masters()) await ask(master.port, 'CLUSTER', 'SETSLOT', slot, 'NODE', destinationId);
  // A call that got a 503 started a repair; the store answers again once it is done.
  t.true((await timeRecovery(store, BOUND_MS)) < BOUND_MS);
  t.true(await store.users.touch(user, 'new', 1, TTL_MS), 'the live session is valid after the move');
  t.false(await store.users.touch(user, 'old', 0, TTL_MS));
  t.deepEqual(await store.users.endAll(user, TTL_MS), ['key-new']);
});

test('a master killed under load: 503s (never a 500) within the deadline, served again with no restart, no session revived or lost beyond unreplicated writes', async (t) => {
  const own = await cluster();
  t.teardown(() => own.heal());
  const target: FailoverTarget = {
    settings: { REDIS_CLUSTER_NODES: own.seeds },
    mastersOf: (keys) => own.mastersOf(keys),
    async masters() {
      const masters = [];
      for (const master of await own.masters()) {
        const key = await own.keyOn(master);
        masters.push({ master, key, replicas: (await own.shardOf(key)).replicas.length });
      }
      return masters;
    },
    inspector: () => own.inspector(),
    deleteKeysWithPrefix: (prefix) => own.deleteKeysWithPrefix(prefix),
  };
  const figures = await failoverUnderLoad(t, target);
  t.log(
    `${figures.requests} requests, ${figures.failed} answered 503 (${figures.failedOnVictim} for sessions of the ` +
      `killed master, ${figures.failedElsewhere} for the others), slowest 503 ${figures.slowestFailureMs} ms, ` +
      `slowest answer ${figures.slowestAnswerMs} ms`,
  );
  t.log(
    `sessions of the killed master served again ${figures.servedAgainAfterMs} ms after the kill; ` +
      `last 503 ${figures.lastFailureAfterMs} ms after it`,
  );
  t.log(
    `${figures.sessions} sessions (${figures.sessionsOnVictim} on the killed master): ${figures.lostWrites} lost ` +
      `an acknowledged write, ${figures.revived} revived, ${figures.replaced} found gone; the last write confirmed ` +
      `on the replica was sent ${figures.watermarkLagMs} ms before the kill`,
  );
});

test('start-up stops when no seed node answers, naming REDIS_CLUSTER_NODES', async (t) => {
  const ports = [await freePort(), await freePort()];
  const nodes = ports.map((port) => `127.0.0.1:${port}`).join(',');
  const server = await runToExit({
    SESSION_STORE: 'redis',
    REDIS_CLUSTER_NODES: nodes,
    REDIS_CONNECT_TIMEOUT: '1s',
  });
  t.not(server.code, 0);
  const stderr = server.stderr();
  t.is(stderr.trimEnd().split('\n').length, 1, stderr);
  t.regex(
    stderr,
    new RegExp(`^Cannot start: REDIS_CLUSTER_NODES="${nodes}": Redis Cluster did not answer within 1000 ms \\(.+\\)`),
  );
});

test('start-up stops when one master does not answer (the seeds do), naming REDIS_CLUSTER_NODES and that master', async (t) => {
  const own = await cluster();
  t.teardown(() => own.heal());
  await own.holdFailovers(true);
  const [first, stalled] = await own.masters();
  stalled.pause();
  t.teardown(() => stalled.resume());
  // The seed answers; the master it names does not.
  const { error, elapsedMs: elapsed } = await refusedStart(t, {
    kind: 'cluster',
    nodes: [{ host: '127.0.0.1', port: first.port }],
  });
  t.log(error?.message, `${Math.round(elapsed)} ms`);
  t.is(error?.variable, 'REDIS_CLUSTER_NODES');
  t.notRegex(error?.message ?? '', /\n/);
  t.true(elapsed < 2_000 + BOUND_MS, `refused after ${Math.round(elapsed)} ms`);
  t.true((error?.message ?? '').includes(`:${stalled.port}`), 'the message names the master that does not answer');
});

test('start-up stops when the seed node is a Redis without cluster mode, naming REDIS_CLUSTER_NODES', async (t) => {
  const port = new URL(REDIS_URL ?? 'redis://127.0.0.1:6379').port || '6379';
  const { error } = await refusedStart(t, { kind: 'cluster', nodes: [{ host: '127.0.0.1', port: Number(port) }] });
  t.is(error?.variable, 'REDIS_CLUSTER_NODES');
  t.regex(error?.message ?? '', /cluster support disabled/, error?.message);
});

test('a password on every node: REDIS_URL gives it to every node, and a wrong one stops start-up without showing it', async (t) => {
  const own = await cluster();
  t.teardown(() => own.heal());
  const password = 'cluster-s3cret';
  const all = own.nodes;
  for (const node of all) await ask(node.port, 'CONFIG', 'SET', 'masterauth', password);
  for (const node of all) await ask(node.port, 'CONFIG', 'SET', 'requirepass', password);
  t.teardown(async () => {
    // Before heal (teardowns run last first): the helpers ask without a password.
    for (const node of all) {
      const client = await boundedClient(`redis://:${password}@127.0.0.1:${node.port}`);
      await client.sendCommand(['CONFIG', 'SET', 'requirepass', '']);
      await client.sendCommand(['CONFIG', 'SET', 'masterauth', '']);
      client.destroy();
    }
  });
  t.false(await answersPing(all[0].url, 2_000), 'the nodes require it');

  const prefix = uniquePrefix();
  const app = await appForTest(t, {
    SESSION_STORE: 'redis',
    REDIS_URL: `redis://:${password}@cluster`,
    REDIS_CLUSTER_NODES: own.seeds,
    REDIS_KEY_PREFIX: prefix,
    REDIS_CONNECT_TIMEOUT: '10s',
    REDIS_COMMAND_TIMEOUT: '10s',
  });
  const browser = new Browser(app.url);
  t.is((await browser.request('/write?value=behind a password')).status, 200);
  t.deepEqual(await browser.json('/read'), { value: 'behind a password' });
  t.is((await browser.request('/end')).status, 200);

  const wrong = 'not-the-s3cret';
  const error = await t.throwsAsync(
    RedisStore.connect({
      url: `redis://default:${wrong}@cluster`,
      topology: { kind: 'cluster', nodes: all.map((node) => ({ host: '127.0.0.1', port: node.port })) },
      keyPrefix: prefix,
      connectTimeoutMs: 2_000,
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      logger: silentLogger(),
    }),
    { instanceOf: StartupError },
  );
  t.regex(
    error?.message ?? '',
    /^REDIS_CLUSTER_NODES="[^"]+": Redis Cluster did not answer within 2000 ms \(.*WRONGPASS/,
  );
  t.false(error?.message.includes(wrong), 'the password is not shown');
});

/**
 * Redis Sentinel (REDIS_SENTINEL_NODES, REDIS_SENTINEL_MASTER): the outage suite
 * (test/helpers/store-outages.ts) on a master, a replica and three Sentinels of this file's own, and what
 * only Sentinel has: a master demoted under the store (READONLY), a master killed under HTTP load,
 * start-up errors. The tests share the set-up, so they run one at a time, each leaving it healthy.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import anyTest, { type TestFn } from 'ava';
import { silentLogger } from '../app/logger.ts';
import { RedisStore } from '../app/stores/redis.ts';
import { StartupError } from '../config/index.ts';
import { appForTest } from './helpers/app.ts';
import { Browser } from './helpers/browser.ts';
import { failoverUnderLoad } from './helpers/failover-load.ts';
import { freePort, runToExit } from './helpers/process.ts';
import { uniquePrefix } from './helpers/redis.ts';
import { ask, boundedClient, OwnRedisSentinel, sharedSentinel, topologyTest } from './helpers/redis-topologies.ts';
import { BOUND_MS, COMMAND_TIMEOUT_MS, outageSuite, refusedStart, sentinelOutages } from './helpers/store-outages.ts';

const test = topologyTest((anyTest as TestFn).serial as unknown as TestFn);
const setup = sharedSentinel(anyTest as TestFn);
const NAME = OwnRedisSentinel.MASTER_NAME;

outageSuite(sentinelOutages(test, setup));

test('a master killed under load: 503s (never a 500) within the deadline, the new master followed with no restart, no session revived or lost beyond unreplicated writes', async (t) => {
  const own = await setup();
  t.teardown(() => own.heal());
  const figures = await failoverUnderLoad(t, {
    settings: { REDIS_SENTINEL_NODES: own.seeds, REDIS_SENTINEL_MASTER: NAME },
    mastersOf: async (keys) => {
      const master = await own.master();
      return keys.map(() => master);
    },
    masters: async () => [{ master: await own.master(), key: 'marker', replicas: 1 }],
    inspector: () => own.inspector(),
    deleteKeysWithPrefix: (prefix) => own.deleteKeysWithPrefix(prefix),
  });
  t.log(
    `${figures.requests} requests, ${figures.failed} answered 503, slowest 503 ${figures.slowestFailureMs} ms, ` +
      `slowest answer ${figures.slowestAnswerMs} ms`,
  );
  t.log(
    `served again ${figures.servedAgainAfterMs} ms after the kill; last 503 ${figures.lastFailureAfterMs} ms after it`,
  );
  t.log(
    `${figures.sessions} sessions: ${figures.lostWrites} lost an acknowledged write, ${figures.revived} revived, ` +
      `${figures.replaced} found gone; the last write confirmed on the replica was sent ${figures.watermarkLagMs} ms ` +
      'before the kill',
  );
});

test('a master demoted under the store (its connections kept) answers READONLY: writes get 503 at worst, never 500, and go to the new master once the Sentinels name it', async (t) => {
  const own = await setup();
  t.teardown(() => own.heal());
  const prefix = uniquePrefix();
  t.teardown(() => own.deleteKeysWithPrefix(prefix));
  const app = await appForTest(t, {
    SESSION_STORE: 'redis',
    REDIS_SENTINEL_NODES: own.seeds,
    REDIS_SENTINEL_MASTER: NAME,
    REDIS_KEY_PREFIX: prefix,
    REDIS_COMMAND_TIMEOUT: `${COMMAND_TIMEOUT_MS}ms`,
    REDIS_CONNECT_TIMEOUT: '10s',
  });
  const browser = new Browser(app.url);
  t.is((await browser.request('/write?value=before')).status, 200);
  const [oldMaster, newMaster] = [await own.master(), await own.replica()];

  // What an operator's REPLICAOF does, without the CLIENT KILL that Sentinel sends along with it. The
  // Sentinels must not act meanwhile (a master that reports itself a replica for long is failed over).
  await own.holdFailovers(true);
  await ask(newMaster.port, 'REPLICAOF', 'NO', 'ONE');
  await ask(oldMaster.port, 'REPLICAOF', '127.0.0.1', String(newMaster.port));
  const plain = await boundedClient(oldMaster.url);
  t.teardown(() => plain.destroy());
  await t.throwsAsync(plain.set(`${prefix}probe`, 'x'), { message: /^READONLY/ }, 'the old master refuses writes');

  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) {
    const started = performance.now();
    const answer = await browser.request(`/write?value=demoted-${i}`);
    statuses.push(answer.status);
    t.true(performance.now() - started < BOUND_MS, 'within the bound');
  }
  t.deepEqual(
    statuses.filter((status) => status !== 503),
    [],
    'while the Sentinels still name the old master: 503, never 500',
  );

  // The Sentinels learn the new master (as after a failover): all forget the old one first, or one still
  // watching it would announce it (with the higher config epoch of past failovers) to those told anew.
  for (const sentinel of own.sentinels) await ask(sentinel.port, 'SENTINEL', 'REMOVE', NAME);
  for (const sentinel of own.sentinels) {
    await ask(sentinel.port, 'SENTINEL', 'MONITOR', NAME, '127.0.0.1', String(newMaster.port), '2');
    await ask(sentinel.port, 'SENTINEL', 'SET', NAME, 'down-after-milliseconds', '1000', 'failover-timeout', '3000');
  }
  const started = performance.now();
  let answer = await browser.request('/write?value=after');
  while (answer.status !== 200 && performance.now() - started < 30_000) {
    t.is(answer.status, 503);
    await sleep(100);
    answer = await browser.request('/write?value=after');
  }
  const named = await Promise.all(
    own.sentinels.map((sentinel) => ask(sentinel.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', NAME)),
  );
  t.is(
    answer.status,
    200,
    `written once the Sentinels name the new master (${newMaster.port}; they name ${named.join(' ')}; ` +
      `the store logged: ${app.logs
        .filter((line) => ['warn', 'error'].includes(String(line.level)))
        .map((line) => line.msg)
        .join('; ')})`,
  );
  t.log(`writes served again ${Math.round(performance.now() - started)} ms after the Sentinels were told`);
  t.deepEqual(await browser.json('/read'), { value: 'after' });
  const onNewMaster = await boundedClient(newMaster.url);
  t.teardown(() => onNewMaster.destroy());
  t.is((await own.keysWithPrefix(prefix)).length, 1, 'one session');
  t.regex((await onNewMaster.get((await own.keysWithPrefix(prefix))[0])) ?? '', /"value":"after"/, 'on the new master');
});

test('a stalled Sentinel first in the list: the store connects through the next one within REDIS_CONNECT_TIMEOUT', async (t) => {
  const own = await setup();
  t.teardown(() => own.heal());
  const [stalled, ...others] = own.sentinels;
  stalled.pause();
  const started = performance.now();
  const store = await RedisStore.connect({
    url: 'redis://127.0.0.1',
    topology: {
      kind: 'sentinel',
      nodes: [stalled, ...others].map((node) => ({ host: '127.0.0.1', port: node.port })),
      masterName: NAME,
    },
    keyPrefix: uniquePrefix(),
    connectTimeoutMs: 4_000,
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    logger: silentLogger(),
  });
  t.teardown(() => store.close());
  t.true((await store.health()).ok);
  t.log(`connected ${Math.round(performance.now() - started)} ms after the start, the first Sentinel stopped`);
});

test('start-up stops when no Sentinel answers, naming REDIS_SENTINEL_NODES', async (t) => {
  const nodes = [await freePort(), await freePort()].map((port) => `127.0.0.1:${port}`).join(',');
  const server = await runToExit({
    SESSION_STORE: 'redis',
    REDIS_SENTINEL_NODES: nodes,
    REDIS_SENTINEL_MASTER: NAME,
    REDIS_CONNECT_TIMEOUT: '1s',
  });
  t.not(server.code, 0);
  const stderr = server.stderr();
  t.is(stderr.trimEnd().split('\n').length, 1, stderr);
  t.regex(
    stderr,
    new RegExp(
      `^Cannot start: REDIS_SENTINEL_NODES="${nodes}": Redis Sentinel \\(master ${NAME}\\) did not answer within 1000 ms \\(.+\\)`,
    ),
  );
});

test('start-up stops when the Sentinels answer but their master does not, in one line naming it', async (t) => {
  const own = await setup();
  t.teardown(() => own.heal());
  await own.holdFailovers(true);
  const master = await own.master();
  master.pause();
  t.teardown(() => master.resume());
  const { error, elapsedMs: elapsed } = await refusedStart(t, {
    kind: 'sentinel',
    nodes: own.sentinels.map((node) => ({ host: '127.0.0.1', port: node.port })),
    masterName: NAME,
  });
  t.log(error?.message, `${Math.round(elapsed)} ms`);
  t.is(error?.variable, 'REDIS_SENTINEL_NODES');
  t.notRegex(error?.message ?? '', /\n/);
  t.true(elapsed < 2_000 + BOUND_MS, `refused after ${Math.round(elapsed)} ms`);
  t.true((error?.message ?? '').includes(`no answer from master 127.0.0.1:${master.port}`), 'the master is named');
});

test('start-up stops when the Sentinels know no master of that name, naming REDIS_SENTINEL_MASTER', async (t) => {
  const own = await setup();
  const error = await t.throwsAsync(
    RedisStore.connect({
      url: 'redis://127.0.0.1',
      topology: {
        kind: 'sentinel',
        nodes: own.sentinels.map((node) => ({ host: '127.0.0.1', port: node.port })),
        masterName: 'no-such-master',
      },
      keyPrefix: uniquePrefix(),
      connectTimeoutMs: 2_000,
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      logger: silentLogger(),
    }),
    { instanceOf: StartupError },
  );
  t.is(error?.variable, 'REDIS_SENTINEL_MASTER');
  t.regex(
    error?.message ?? '',
    /^REDIS_SENTINEL_MASTER="no-such-master": the Sentinels at .+ monitor no master of that name/,
  );
});

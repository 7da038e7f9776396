/**
 * Scaling out: real server processes sharing sessions through a real Redis, restarts, TTLs in
 * Redis itself, start-up errors; the store's conditional writes against a real Redis; and outages
 * (Redis killed, or paused with SIGSTOP so that it accepts connections but answers nothing) with
 * recovery, on Redis servers the tests start themselves. The store's own tests and the TTL test run on
 * every Redis deployment (a Cluster and Sentinels of this file's own too); the outage suite
 * (test/helpers/store-outages.ts) runs here on a server alone, in test/redis-cluster.test.ts and
 * test/redis-sentinel.test.ts on the others.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { RedisStore } from '../app/stores/redis.ts';
import { StoreUnavailableError } from '../app/stores/store.ts';
import { loadConfig, StartupError } from '../config/index.ts';
import { appForTest, TEST_KEY } from './helpers/app.ts';
import { Browser, sessionIdOf } from './helpers/browser.ts';
import { runToExit, startServerProcess, waitForOutput } from './helpers/process.ts';
import {
  deleteKeysWithPrefix,
  inspector,
  keysWithPrefix,
  OwnRedisServer,
  openTestRedisStore,
  ownRedisServer,
  PATIENT_REDIS,
  REDIS_URL,
  redisTest,
  type TestRedisStoreOptions,
  uniquePrefix,
} from './helpers/redis.ts';
import { openStoreOn, type RedisDeployment, redisDeployments } from './helpers/redis-topologies.ts';
import { storeKeyOf } from './helpers/store-key.ts';
import {
  BOUND_MS,
  COMMAND_TIMEOUT_MS,
  logSink,
  outageSuite,
  singleOutages,
  TTL_MS,
  timeRecovery,
} from './helpers/store-outages.ts';

const test = redisTest(anyTest as TestFn);
const deployments = redisDeployments(anyTest as TestFn);

function redisEnv(prefix: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    SESSION_KEYS: TEST_KEY,
    SESSION_STORE: 'redis',
    REDIS_URL: REDIS_URL ?? '',
    REDIS_KEY_PREFIX: prefix,
    ...PATIENT_REDIS,
    ...extra,
  };
}

async function serverPair(t: { teardown(fn: () => unknown): void }, env: Record<string, string>) {
  const servers = await Promise.all([startServerProcess(env), startServerProcess(env)]);
  t.teardown(() => {
    for (const server of servers) server.child.kill('SIGKILL');
  });
  return servers;
}

/** A store on a deployment, closed (and its keys deleted) when the test ends, plus an inspecting client. */
async function storeForTest(t: ExecutionContext, deployment: RedisDeployment) {
  const opened = await openStoreOn(deployment);
  t.teardown(opened.close);
  const redis = await deployment.inspector();
  t.teardown(() => redis.destroy());
  return { ...opened, redis, keys: () => deployment.keysWithPrefix(opened.keyPrefix) };
}

// --- The store against a real Redis, on every deployment: one round trip per call, conditional writes, TTLs ---

for (const deployment of deployments) storeOnRedis(deployment);

/** The store's calls as Redis sees them (keys, values, TTLs), on one deployment. */
function storeOnRedis(deployment: RedisDeployment): void {
  deployment.test(
    `${deployment.name} store: create writes only an unused id, update only an existing one, each with a TTL`,
    async (t) => {
      const { store, keyPrefix, redis, keys } = await storeForTest(t, deployment);
      const key = (id: string) => keyPrefix + id;

      t.true(await store.create('a', '{"n":1}', TTL_MS), 'create on an unused id');
      t.is(await redis.get(key('a')), '{"n":1}');
      const ttl = await redis.pTTL(key('a'));
      t.true(ttl > TTL_MS - 5_000 && ttl <= TTL_MS, `TTL ${ttl}`);

      t.false(await store.create('a', '{"n":2}', TTL_MS * 2), 'create on an existing id');
      t.is(await redis.get(key('a')), '{"n":1}', 'nothing written');
      t.true((await redis.pTTL(key('a'))) <= TTL_MS, 'TTL untouched');

      t.true(await store.update('a', '{"n":3}', TTL_MS * 2), 'update on an existing id');
      t.is(await redis.get(key('a')), '{"n":3}');
      t.true((await redis.pTTL(key('a'))) > TTL_MS, 'update sets its own TTL');

      t.false(await store.update('missing', '{"n":4}', TTL_MS), 'update on an unknown id');
      t.is(await redis.exists(key('missing')), 0, 'and no key is created');

      t.true(await store.destroy('a'), 'destroy of an existing id');
      t.false(await store.destroy('a'), 'destroy of a destroyed id');
      t.false(await store.update('a', '{"n":5}', TTL_MS), 'update after destroy');
      t.is(await redis.exists(key('a')), 0, 'destroyed stays destroyed');

      for (const id of ['x', '__proto__', 'constructor']) {
        t.true(await store.create(id, 'text', TTL_MS), id);
        t.true((await redis.pTTL(key(id))) > 0, `${id} has a TTL`);
      }
      t.is((await keys()).length, 3);
    },
  );

  deployment.test(
    `${deployment.name} store: get returns the text and renews the TTL; unknown ids read undefined and create nothing`,
    async (t) => {
      const { store, keyPrefix, redis, keys } = await storeForTest(t, deployment);
      // 10 s to live: alive when read even after a loaded machine's stall; then renewed to TTL_MS (60 s).
      t.true(await store.create('a', 'any text, not parsed here', 10_000));
      t.is(await store.get('a', TTL_MS), 'any text, not parsed here');
      const ttl = await redis.pTTL(`${keyPrefix}a`);
      t.true(ttl > 10_000 && ttl <= TTL_MS, `read renewed the TTL to ${ttl}`);
      t.is(await store.get('never-written', TTL_MS), undefined);
      t.is(await store.get('__proto__', TTL_MS), undefined);
      t.deepEqual(await keys(), [`${keyPrefix}a`]);
    },
  );

  deployment.test(
    `${deployment.name} store: a key of another Redis type reads as empty text, not an outage, and destroy deletes it`,
    async (t) => {
      const { store, keyPrefix, redis, keys } = await storeForTest(t, deployment);
      await redis.rPush(`${keyPrefix}list`, ['x', 'y']);
      await redis.hSet(`${keyPrefix}hash`, 'field', 'value');
      t.is(await store.get('list', TTL_MS), '');
      t.is(await store.get('hash', TTL_MS), '');
      t.false(await store.create('list', 'text', TTL_MS), 'the id is taken');
      t.true((await store.health()).ok);
      t.true(await store.destroy('list'));
      t.true(await store.destroy('hash'));
      t.deepEqual(await keys(), []);
    },
  );
}

// --- The store on a Redis that stops answering: deadlines, recycling, recovery ---

/** A store on the test's own Redis with the short command timeout (connecting keeps a long deadline). */
async function storeOnOwnServer(t: ExecutionContext, server: OwnRedisServer, options: TestRedisStoreOptions = {}) {
  const opened = await openTestRedisStore({
    url: server.url,
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    connectTimeoutMs: 10_000,
    ...options,
  });
  t.teardown(async () => {
    server.resume();
    await opened.store.close();
  });
  return { store: opened.store };
}

outageSuite(singleOutages(test));

// --- Real server processes ---

test('two server processes share sessions: made on one, read, changed and destroyed on the other', async (t) => {
  const prefix = uniquePrefix();
  t.teardown(() => deleteKeysWithPrefix(prefix));
  const [a, b] = await serverPair(t, redisEnv(prefix));
  const onA = new Browser(a.url);
  await onA.request('/write?value=made on A');
  const onB = new Browser(b.url);
  for (const [name, value] of onA.cookies) onB.cookies.set(name, value);
  const redis = await inspector();
  t.teardown(() => redis.close());
  const key = `${prefix}${storeKeyOf([TEST_KEY], sessionIdOf(onA.cookies.get('sid'))!)}`;
  t.deepEqual(await keysWithPrefix(redis, prefix), [key], "one session, in Redis, under the cookie's id's store key");

  t.deepEqual(JSON.parse((await redis.get(key))!), { value: 'made on A', _session: true }, 'what A wrote');
  // A value no request writes, put in Redis directly: each instance can only show it by reading Redis.
  await redis.set(key, JSON.stringify({ value: 'put in Redis', _session: true }), {
    expiration: { type: 'PX', value: 60_000 },
  });
  t.deepEqual(await onB.json('/read'), { value: 'put in Redis' }, 'B reads what is stored');
  t.deepEqual(await onA.json('/read'), { value: 'put in Redis' }, 'and so does A');

  const write = await onB.request('/write?value=changed on B');
  t.is(write.body, 'ok');
  t.deepEqual(write.setCookies, [], 'B wrote into the same session: no new cookie');
  t.deepEqual(JSON.parse((await redis.get(key))!), { value: 'changed on B', _session: true }, 'B stored its value');
  t.deepEqual(await onA.json('/read'), { value: 'changed on B' }, 'A sees the change B made');

  t.is((await onB.request('/end')).body, 'ok');
  t.deepEqual(await keysWithPrefix(redis, prefix), [], 'B destroyed it in Redis');
  t.deepEqual(
    await new Browser(a.url).json('/read', { headers: { cookie: onA.cookieHeader! } }),
    {},
    'A sees it destroyed',
  );
});

test('sessions survive a restart of every instance', async (t) => {
  const prefix = uniquePrefix();
  t.teardown(() => deleteKeysWithPrefix(prefix));
  const env = redisEnv(prefix);
  const [a, b] = await serverPair(t, env);
  const browser = new Browser(a.url);
  await browser.request('/write?value=kept');
  const before = await browser.json('/read');
  t.deepEqual(before, { value: 'kept' });
  a.child.kill('SIGTERM');
  b.child.kill('SIGTERM');
  t.deepEqual(await Promise.all([a.exited, b.exited]), [0, 0], 'both stop cleanly, closing their Redis connections');

  const [c] = await serverPair(t, env);
  const after = new Browser(c.url);
  for (const [name, value] of browser.cookies) after.cookies.set(name, value);
  t.deepEqual(await after.json('/read'), before);
});

for (const deployment of deployments) {
  deployment.test(
    `${deployment.name}: every key has a TTL in Redis, renewed on use, and Redis expires idle sessions by itself`,
    async (t) => {
      // No race with the clock: the lifetime is long, and the test itself shortens a key's TTL in Redis
      // before the read that must renew it, so a slow machine cannot make a read look like no renewal.
      const maxAgeMs = 60_000;
      const prefix = uniquePrefix();
      t.teardown(() => deployment.deleteKeysWithPrefix(prefix));
      const app = await appForTest(t, {
        ...redisEnv(prefix, { SESSION_MAX_AGE: `${maxAgeMs}ms` }),
        REDIS_URL: '',
        ...(await deployment.settings()),
      });
      const browsers = [0, 1, 2].map(() => new Browser(app.url));
      for (const browser of browsers) t.is((await browser.request('/write')).status, 200);
      const redis = await deployment.inspector();
      t.teardown(() => redis.destroy());
      const keys = await deployment.keysWithPrefix(prefix);
      t.is(keys.length, 3);
      for (const key of keys) {
        const ttl = await redis.pTTL(key);
        t.true(ttl > 0 && ttl <= maxAgeMs, `${key} has TTL ${ttl}`);
      }
      const key = `${prefix}${storeKeyOf(app, sessionIdOf(browsers[0].cookies.get('sid'))!)}`;
      await redis.pExpire(key, 20_000);
      await browsers[0].request('/read'); // renews it to SESSION_MAX_AGE
      const renewed = await redis.pTTL(key);
      t.true(renewed > 20_000, `a read renewed the TTL (from 20000 to ${renewed} ms)`);
      // Idle sessions: their TTLs cut short in Redis, no request at all meanwhile.
      for (const each of keys) await redis.pExpire(each, 200);
      let left = await deployment.keysWithPrefix(prefix);
      for (let attempt = 0; attempt < 100 && left.length > 0; attempt++) {
        await sleep(100); // Redis's active expiry samples keys about ten times a second
        left = await deployment.keysWithPrefix(prefix);
      }
      t.deepEqual(left, [], 'Redis expired every idle session on its own');
    },
  );
}

test('start-up stops when Redis does not answer, naming REDIS_URL', async (t) => {
  const nobody = new OwnRedisServer();
  await nobody.start();
  const url = nobody.url;
  await nobody.stop(); // a port where nothing answers now
  const server = await runToExit({ ...redisEnv(uniquePrefix()), REDIS_URL: url, REDIS_CONNECT_TIMEOUT: '1s' });
  t.not(server.code, 0);
  const stderr = server.stderr();
  t.is(stderr.trimEnd().split('\n').length, 1, stderr);
  t.regex(stderr, new RegExp(`REDIS_URL="${url}": Redis did not answer within 1000 ms \\(.*ECONNREFUSED`));
  t.notRegex(stderr, /^\s+at /m);
});

test('start-up errors never show the Redis password: Redis unreachable, or refusing the password', async (t) => {
  const secret = 'start-up-s3cret';
  const nobody = new OwnRedisServer();
  await nobody.start();
  const port = nobody.port;
  await nobody.stop(); // a port where nothing answers now
  const unreachable = await runToExit({
    ...redisEnv(uniquePrefix()),
    REDIS_URL: `redis://:${secret}@127.0.0.1:${port}`,
    REDIS_CONNECT_TIMEOUT: '1s',
  });
  t.not(unreachable.code, 0);
  t.regex(
    unreachable.stderr(),
    new RegExp(`^Cannot start: REDIS_URL="redis://\\*\\*\\*@127\\.0\\.0\\.1:${port}": Redis did not answer`),
    unreachable.stderr(),
  );
  t.false(unreachable.stderr().includes(secret) || unreachable.stdout().includes(secret), 'the password is not shown');

  const guarded = await ownRedisServer(t, { password: 'the-right-s3cret' });
  const refused = await runToExit({
    ...redisEnv(uniquePrefix()),
    REDIS_URL: `redis://default:${secret}@127.0.0.1:${guarded.port}`,
    REDIS_CONNECT_TIMEOUT: '2s',
  });
  t.not(refused.code, 0);
  const stderr = refused.stderr();
  t.is(stderr.trimEnd().split('\n').length, 1, stderr);
  t.regex(
    stderr,
    new RegExp(`^Cannot start: REDIS_URL="redis://\\*\\*\\*@127\\.0\\.0\\.1:${guarded.port}": .*WRONGPASS`),
    stderr,
  );
  t.false(stderr.includes(secret) || refused.stdout().includes(secret), 'the password is not shown');
});

// --- The password, whatever it holds, in every message the store writes ---

/** Marker pieces of the hostile passwords below: none of them may appear in any message or log line. */
const PASSWORD_PIECES = ['pwA1', 'pwB2', 'pwC3', 'pwD4', 'pwE5', 'pwF6', 'pwG7'];
/** Between the pieces, each character a URL gives a meaning to. */
const HOSTILE_PASSWORD = 'pwA1:pwB2@pwC3/pwD4#pwE5?pwF6%pwG7';
/** Another one, for a server that requires the first. */
const WRONG_HOSTILE_PASSWORD = 'pwG7@pwF6:pwE5%3ApwD4@pwC3';

/**
 * REDIS_URLs for a password as operators write them, each one a URL config/ accepts: : and @ as they
 * are (the URL parser copes: the user ends at the first colon, the password at the last @), the rest
 * escaped; or everything escaped; with the user default, or none. Each with how messages must show it.
 */
function hostileUrls(password: string, port: number): Array<{ url: string; shown: string }> {
  const asWritten = password.replace(/[%/#?]/g, (character) => encodeURIComponent(character));
  const host = `127.0.0.1:${port}`;
  const urls = [
    { url: `redis://default:${asWritten}@${host}`, shown: `redis://***@${host}` },
    { url: `redis://:${asWritten}@${host}/0`, shown: `redis://***@${host}/0` },
    { url: `redis://default:${encodeURIComponent(password)}@${host}/0`, shown: `redis://***@${host}/0` },
  ];
  for (const { url } of urls) loadConfig({ SESSION_STORE: 'redis', REDIS_URL: url }); // throws if refused
  return urls;
}

function assertNoPasswordPiece(t: ExecutionContext, text: string, label: string): void {
  for (const piece of PASSWORD_PIECES) t.false(text.includes(piece), `${label}: ${piece} shown in ${text}`);
}

function connectTo(url: string, logger = logSink().logger): Promise<RedisStore> {
  return RedisStore.connect({
    url,
    keyPrefix: uniquePrefix(),
    connectTimeoutMs: 10_000,
    commandTimeoutMs: 1_000,
    logger,
  });
}

test('the StartupError when Redis does not answer never shows the password, whatever it holds', async (t) => {
  const nobody = new OwnRedisServer();
  await nobody.start();
  const port = nobody.port;
  await nobody.stop(); // a port where nothing answers now
  for (const { url, shown } of hostileUrls(HOSTILE_PASSWORD, port)) {
    const logs = logSink();
    const error = await t.throwsAsync(connectTo(url, logs.logger), { instanceOf: StartupError });
    t.true(error!.message.startsWith(`REDIS_URL="${shown}": Redis did not answer within`), error!.message);
    t.regex(error!.message, /ECONNREFUSED/, 'with what node-redis said');
    assertNoPasswordPiece(t, error!.message, url);
    assertNoPasswordPiece(t, logs.text(), url);
  }
});

test("node-redis's refusal of a wrong password (WRONGPASS) carries neither password into the StartupError", async (t) => {
  const guarded = await ownRedisServer(t, { password: HOSTILE_PASSWORD });
  for (const { url, shown } of hostileUrls(WRONG_HOSTILE_PASSWORD, guarded.port)) {
    const error = await t.throwsAsync(connectTo(url), { instanceOf: StartupError });
    t.true(error!.message.startsWith(`REDIS_URL="${shown}": `), error!.message);
    t.regex(error!.message, /\(WRONGPASS /, error!.message);
    assertNoPasswordPiece(t, error!.message, url);
  }
  // The right password, written the same ways: the store connects (the URLs are read as meant).
  for (const { url } of hostileUrls(HOSTILE_PASSWORD, guarded.port)) {
    const store = await connectTo(url);
    t.true((await store.health()).ok, url);
    await store.close();
  }
});

test('the runtime "redis unreachable" warning and its recovery line never show the password, whatever it holds', async (t) => {
  const server = await ownRedisServer(t, { password: HOSTILE_PASSWORD });
  for (const { url, shown } of hostileUrls(HOSTILE_PASSWORD, server.port)) {
    const logs = logSink();
    // A patient deadline: a loaded machine must not fail the set-up call on a healthy Redis (and log an
    // outage line this test would not expect); the calls on the stopped server fail at once anyway.
    const { store } = await storeOnOwnServer(t, server, { url, logger: logs.logger, commandTimeoutMs: 10_000 });
    t.true(await store.create('a', '{}', TTL_MS), 'connected with the hostile password');
    await server.stop();
    for (let attempt = 0; attempt < 100 && (await store.health()).ok; attempt++) await sleep(50);
    await t.throwsAsync(store.get('a', TTL_MS), { instanceOf: StoreUnavailableError });
    await server.start(); // same port, same password
    t.true((await timeRecovery(store, 10_000)) < 10_000, 'reconnected');
    await store.close();
    const lines = logs
      .text()
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    t.deepEqual(
      lines.map((line) => line.msg),
      ['redis unreachable; session requests answer 503 until it is back', 'redis reachable again'],
    );
    for (const line of lines) t.is(line.url, shown);
    t.is(typeof lines[0].err, 'string', "node-redis's reason is logged");
    assertNoPasswordPiece(t, logs.text(), url);
  }
});

test('a Redis outage gives fast 503s, other routes keep working, and service recovers by itself', async (t) => {
  const redis = await ownRedisServer(t);
  const server = await startServerProcess({
    ...redisEnv(uniquePrefix()),
    REDIS_URL: redis.url,
    REDIS_COMMAND_TIMEOUT: `${COMMAND_TIMEOUT_MS}ms`,
    LOG_LEVEL: 'warn',
  });
  t.teardown(() => server.child.kill('SIGKILL'));
  const browser = new Browser(server.url);
  t.is((await browser.request('/write')).status, 200);

  await redis.stop();
  for (const path of ['/read', '/write', '/end']) {
    const started = Date.now();
    const answer = await browser.request(path);
    t.is(answer.status, 503, path);
    t.true(Date.now() - started < BOUND_MS, `${path} answered within a bounded time`);
    t.regex(answer.headers.get('content-type') ?? '', /^application\/json/);
    t.like(JSON.parse(answer.body), { error: 'Service Unavailable' });
  }
  const cookie = browser.cookieHeader!;
  const burst = await Promise.all(
    Array.from({ length: 50 }, () => new Browser(server.url).request('/read', { headers: { cookie } })),
  );
  t.deepEqual(
    new Set(burst.map((answer) => answer.status)),
    new Set([503]),
    'a burst during the outage is refused, not queued',
  );
  t.is(
    (await new Browser(server.url).request('/read')).body,
    '{}',
    'a request without a session cookie never needs the store',
  );
  t.is((await browser.request('/healthz')).status, 503);
  t.is((await browser.request('/nothing-here')).status, 404, 'routes that do not touch the store still work');

  await redis.start(); // same port; an empty Redis (nothing was persisted)
  let healthy = false;
  for (let attempt = 0; attempt < 100 && !healthy; attempt++) {
    healthy = (await browser.request('/healthz')).status === 200;
    if (!healthy) await sleep(100);
  }
  t.true(healthy, 'the app reconnected by itself');
  t.is((await browser.request('/write?value=after the outage')).status, 200);
  t.deepEqual(await browser.json('/read'), { value: 'after the outage' });
  t.is(server.child.exitCode, null, 'the process stayed up');
  t.regex(server.stdout(), /redis unreachable/);
});

test('a paused Redis (SIGSTOP) gives 503s within the command timeout on every session route and /healthz, and service recovers after SIGCONT', async (t) => {
  const redis = await ownRedisServer(t, { password: 'http-s3cret' });
  const server = await startServerProcess({
    ...redisEnv(uniquePrefix()),
    REDIS_URL: redis.url,
    REDIS_COMMAND_TIMEOUT: `${COMMAND_TIMEOUT_MS}ms`,
    LOG_LEVEL: 'info',
  });
  t.teardown(() => server.child.kill('SIGKILL'));
  const browser = new Browser(server.url);
  t.is((await browser.request('/write')).status, 200);
  const cookie = browser.cookieHeader!;
  const sessionId = sessionIdOf([...browser.cookies.values()][0])!;

  redis.pause();
  const timings: string[] = [];
  const requests: Array<[string, () => Promise<{ status: number; body: string }>]> = [
    ['/read', () => new Browser(server.url).request('/read', { headers: { cookie } })],
    ['/write', () => new Browser(server.url).request('/write?value=paused', { headers: { cookie } })],
    ['/write (new session)', () => new Browser(server.url).request('/write')],
    ['/end', () => new Browser(server.url).request('/end', { headers: { cookie } })],
    ['/healthz', () => new Browser(server.url).request('/healthz')],
  ];
  for (const [name, request] of requests) {
    const started = performance.now();
    const answer = await request();
    const elapsed = performance.now() - started;
    timings.push(`${name} ${answer.status} after ${Math.round(elapsed)} ms`);
    t.is(answer.status, 503, `${name}: ${answer.body}`);
    t.true(elapsed < BOUND_MS, `${name} answered after ${Math.round(elapsed)} ms`);
  }
  t.log(timings.join('; '));

  const started = performance.now();
  const burst = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      new Browser(server.url).request(i % 2 ? '/read' : `/write?value=${i}`, { headers: { cookie } }),
    ),
  );
  const burstMs = performance.now() - started;
  t.deepEqual(
    new Set(burst.map((answer) => answer.status)),
    new Set([503]),
    'a burst while paused is refused, not queued',
  );
  t.true(burstMs < BOUND_MS, `a burst of 50 answered within ${Math.round(burstMs)} ms`);
  t.log(`burst of 50 requests while paused: all 503 after ${Math.round(burstMs)} ms`);
  t.is(
    (await new Browser(server.url).request('/read')).body,
    '{}',
    'a request without a session cookie never needs the store',
  );

  await sleep(2_000);
  redis.resume();
  const resumed = performance.now();
  let healthy = false;
  while (!healthy && performance.now() - resumed < 10_000) {
    healthy = (await browser.request('/healthz')).status === 200;
    if (!healthy) await sleep(50);
  }
  const recoveryMs = performance.now() - resumed;
  t.true(healthy, 'the app recovered by itself, with no restart');
  t.log(`/healthz 200 again ${Math.round(recoveryMs)} ms after SIGCONT`);
  t.is((await browser.request('/write?value=after SIGCONT')).status, 200);
  t.deepEqual(await browser.json('/read'), { value: 'after SIGCONT' });
  t.is(server.child.exitCode, null, 'the process stayed up');

  await waitForOutput(server, /"msg":"redis reachable again"/); // log lines go out in batches, every 100 ms at least
  const storeLines = server
    .stdout()
    .split('\n')
    .filter((line) => /"msg":"redis /.test(line));
  t.is(storeLines.filter((line) => line.includes('redis unreachable')).length, 1, storeLines.join('\n'));
  t.is(storeLines.filter((line) => line.includes('redis reachable again')).length, 1, storeLines.join('\n'));
  t.false(server.stdout().includes('http-s3cret'), 'the password is never logged');
  t.false(storeLines.join('\n').includes(sessionId), 'the store logs no session id');
});

/**
 * Scaling out: real server processes sharing sessions through a real Redis, restarts, TTLs in
 * Redis itself, start-up errors, and an outage with recovery on a Redis server the test owns.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import anyTest, { type TestFn } from 'ava';
import { Browser } from './helpers/browser.ts';
import { appForTest, TEST_KEY } from './helpers/app.ts';
import { spawnServer, startServerProcess } from './helpers/process.ts';
import { deleteKeysWithPrefix, inspector, keysWithPrefix, OwnRedisServer, REDIS_URL, redisTest, uniquePrefix } from './helpers/redis.ts';

const test = redisTest(anyTest as TestFn);

function redisEnv(prefix: string, extra: Record<string, string> = {}): Record<string, string> {
  return { SESSION_KEYS: TEST_KEY, SESSION_STORE: 'redis', REDIS_URL: REDIS_URL ?? '', REDIS_KEY_PREFIX: prefix, ...extra };
}

async function serverPair(t: { teardown(fn: () => unknown): void }, env: Record<string, string>) {
  const servers = await Promise.all([startServerProcess(env), startServerProcess(env)]);
  t.teardown(() => servers.forEach((server) => server.child.kill('SIGKILL')));
  return servers;
}

test('two server processes share sessions: made on one, read, changed and destroyed on the other', async (t) => {
  const prefix = uniquePrefix();
  t.teardown(() => deleteKeysWithPrefix(prefix));
  const [a, b] = await serverPair(t, redisEnv(prefix));
  const onA = new Browser(a.url);
  await onA.request('/set');
  const onB = new Browser(b.url);
  for (const [name, value] of onA.cookies) onB.cookies.set(name, value);

  const read = await onB.json('/get');
  t.deepEqual(read, await onA.json('/get'), 'B reads what A stored');

  const redis = await inspector();
  t.teardown(() => redis.close());
  const [key] = await keysWithPrefix(redis, prefix);
  await redis.set(key, JSON.stringify({ time: 1, _session: true }), { expiration: { type: 'PX', value: 60_000 } });
  t.is((await onB.request('/set')).body, 'ok');
  t.not((await onA.json('/get')).time, 1, 'A sees the change B made');

  t.is((await onB.request('/del')).body, 'ok');
  t.deepEqual(await new Browser(a.url).json('/get', { headers: { cookie: onA.cookieHeader! } }), {}, 'A sees it destroyed');
  t.deepEqual(await keysWithPrefix(redis, prefix), []);
});

test('sessions survive a restart of every instance', async (t) => {
  const prefix = uniquePrefix();
  t.teardown(() => deleteKeysWithPrefix(prefix));
  const env = redisEnv(prefix);
  const [a, b] = await serverPair(t, env);
  const browser = new Browser(a.url);
  await browser.request('/set');
  const before = await browser.json('/get');
  a.child.kill('SIGTERM');
  b.child.kill('SIGTERM');
  t.deepEqual(await Promise.all([a.exited, b.exited]), [0, 0], 'both stop cleanly, closing their Redis connections');

  const [c] = await serverPair(t, env);
  const after = new Browser(c.url);
  for (const [name, value] of browser.cookies) after.cookies.set(name, value);
  t.deepEqual(await after.json('/get'), before);
});

test('every key has a TTL in Redis, renewed on use, and Redis expires idle sessions by itself', async (t) => {
  const prefix = uniquePrefix();
  t.teardown(() => deleteKeysWithPrefix(prefix));
  const app = await appForTest(t, redisEnv(prefix, { SESSION_MAX_AGE: '1500ms' }));
  const browsers = [0, 1, 2].map(() => new Browser(app.url));
  for (const browser of browsers) await browser.request('/set');
  const redis = await inspector();
  t.teardown(() => redis.close());
  const keys = await keysWithPrefix(redis, prefix);
  t.is(keys.length, 3);
  for (const key of keys) {
    const ttl = await redis.pTTL(key);
    t.true(ttl > 0 && ttl <= 1_500, `${key} has TTL ${ttl}`);
  }
  await sleep(900);
  await browsers[0].request('/get'); // renews one of them
  const renewed = await redis.pTTL(`${prefix}${browsers[0].cookies.get('sid')!.split('.')[0]}`);
  t.true(renewed > 1_000, `a read renewed the TTL (now ${renewed} ms)`);
  await sleep(3_000); // no request at all meanwhile
  t.deepEqual(await keysWithPrefix(redis, prefix), [], 'Redis expired every idle session on its own');
});

test('start-up stops when Redis does not answer, naming REDIS_URL', async (t) => {
  const nobody = new OwnRedisServer();
  await nobody.start();
  const url = nobody.url;
  await nobody.stop(); // a port where nothing answers now
  const server = spawnServer({ ...redisEnv(uniquePrefix()), REDIS_URL: url, REDIS_CONNECT_TIMEOUT: '1s' });
  t.not(await server.exited, 0);
  const stderr = server.stderr();
  t.is(stderr.trimEnd().split('\n').length, 1, stderr);
  t.regex(stderr, new RegExp(`REDIS_URL="${url}": Redis did not answer within 1000 ms \\(.*ECONNREFUSED`));
  t.notRegex(stderr, /^\s+at /m);
});

test('a Redis outage gives fast 503s, other routes keep working, and service recovers by itself', async (t) => {
  const redis = new OwnRedisServer();
  await redis.start();
  t.teardown(() => redis.stop());
  const server = await startServerProcess({ ...redisEnv(uniquePrefix()), REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT: '500ms', LOG_LEVEL: 'warn' });
  t.teardown(() => server.child.kill('SIGKILL'));
  const browser = new Browser(server.url);
  t.is((await browser.request('/set')).status, 200);

  await redis.stop();
  for (const path of ['/get', '/set', '/del']) {
    const started = Date.now();
    const answer = await browser.request(path);
    t.is(answer.status, 503, path);
    t.true(Date.now() - started < 3_000, `${path} answered within a bounded time`);
    t.regex(answer.headers.get('content-type') ?? '', /^application\/json/);
    t.like(JSON.parse(answer.body), { error: 'Service Unavailable' });
  }
  const cookie = browser.cookieHeader!;
  const burst = await Promise.all(Array.from({ length: 50 }, () => new Browser(server.url).request('/get', { headers: { cookie } })));
  t.deepEqual(new Set(burst.map((answer) => answer.status)), new Set([503]), 'a burst during the outage is refused, not queued');
  t.is((await new Browser(server.url).request('/get')).body, '{}', 'a request without a session cookie never needs the store');
  t.is((await browser.request('/healthz')).status, 503);
  t.is((await browser.request('/nothing-here')).status, 404, 'routes that do not touch the store still work');

  await redis.start(); // same port; an empty Redis (nothing was persisted)
  let healthy = false;
  for (let attempt = 0; attempt < 100 && !healthy; attempt++) {
    healthy = (await browser.request('/healthz')).status === 200;
    if (!healthy) await sleep(100);
  }
  t.true(healthy, 'the app reconnected by itself');
  t.is((await browser.request('/set')).status, 200);
  t.deepEqual(Object.keys(await browser.json('/get')), ['time']);
  t.is(server.child.exitCode, null, 'the process stayed up');
  t.regex(server.stdout(), /redis unreachable/);
});

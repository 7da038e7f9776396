/**
 * The settings that pick a Redis deployment: REDIS_URL alone (one server), REDIS_CLUSTER_NODES (a
 * Cluster), REDIS_SENTINEL_NODES with REDIS_SENTINEL_MASTER (Sentinels). Each bad value stops start-up
 * with one line naming the variable, the value and what is allowed; a password never shows.
 */
import test from 'ava';
import { ConfigError, loadConfig } from '../config/index.ts';
import { runToExit } from './helpers/process.ts';

const redis = (env: Record<string, string>) => loadConfig({ SESSION_STORE: 'redis', ...env }).redis!;

function errorFor(env: Record<string, string>): ConfigError {
  try {
    loadConfig({ SESSION_STORE: 'redis', ...env });
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`no error for ${JSON.stringify(env)}`);
}

test('REDIS_URL alone: one server', (t) => {
  t.is(redis({}).topology, undefined);
  t.is(redis({ REDIS_URL: 'redis://cache:6380/2' }).topology, undefined);
});

test('REDIS_CLUSTER_NODES: a Cluster, its seed nodes as listed (spaces around commas, IPv6 in brackets)', (t) => {
  t.deepEqual(redis({ REDIS_CLUSTER_NODES: '10.0.0.1:7000, redis-b:7001 ,[::1]:7002' }).topology, {
    kind: 'cluster',
    nodes: [
      { host: '10.0.0.1', port: 7000 },
      { host: 'redis-b', port: 7001 },
      { host: '::1', port: 7002 },
    ],
  });
  const config = redis({ REDIS_CLUSTER_NODES: 'a:1', REDIS_URL: 'rediss://app:pw@cluster' });
  t.is(config.url, 'rediss://app:pw@cluster', 'REDIS_URL kept for its user, password and scheme');
});

test('REDIS_SENTINEL_NODES with REDIS_SENTINEL_MASTER: Sentinels, a database allowed in REDIS_URL', (t) => {
  const config = redis({
    REDIS_SENTINEL_NODES: 'sentinel-1:26379,sentinel-2:26379',
    REDIS_SENTINEL_MASTER: 'sessions',
    REDIS_URL: 'redis://:pw@master/3',
  });
  t.deepEqual(config.topology, {
    kind: 'sentinel',
    nodes: [
      { host: 'sentinel-1', port: 26379 },
      { host: 'sentinel-2', port: 26379 },
    ],
    masterName: 'sessions',
  });
});

test('a node list that is not host:port, comma-separated, each once, is refused with one line naming it', (t) => {
  for (const variable of ['REDIS_CLUSTER_NODES', 'REDIS_SENTINEL_NODES']) {
    const extra: Record<string, string> =
      variable === 'REDIS_SENTINEL_NODES' ? { REDIS_SENTINEL_MASTER: 'sessions' } : {};
    for (const value of [
      'cache',
      'cache:0',
      'cache:65536',
      'a:1,,b:2',
      'redis://a:1',
      'a:1;b:2',
      '::1:7000',
      'a:1 b:2',
    ]) {
      const error = errorFor({ [variable]: value, ...extra });
      t.is(error.variable, variable, value);
      t.is(
        error.message,
        `${variable}=${JSON.stringify(value)} is not allowed: a comma-separated list of host:port (port 1 to 65535), ` +
          'e.g. 10.0.0.1:7000,10.0.0.2:7000',
      );
    }
    t.is(
      errorFor({ [variable]: 'a:1,b:2,a:1', ...extra }).message,
      `${variable}="a:1,b:2,a:1" is not allowed: each host:port once (a:1 is there twice)`,
    );
  }
});

test('Sentinel nodes and master only together; a Cluster and Sentinels not both', (t) => {
  t.is(
    errorFor({ REDIS_SENTINEL_NODES: 'a:26379' }).message,
    'REDIS_SENTINEL_MASTER="" is not allowed: required with REDIS_SENTINEL_NODES: the name the Sentinels monitor ' +
      'the master under (sentinel monitor <name> ...)',
  );
  t.is(
    errorFor({ REDIS_SENTINEL_MASTER: 'sessions' }).message,
    'REDIS_SENTINEL_MASTER="sessions" is not allowed: only together with REDIS_SENTINEL_NODES',
  );
  t.is(
    errorFor({ REDIS_SENTINEL_NODES: 'a:26379', REDIS_SENTINEL_MASTER: 'my master' }).message,
    'REDIS_SENTINEL_MASTER="my master" is not allowed: a master name as Sentinel knows it: no spaces',
  );
  const both = errorFor({ REDIS_CLUSTER_NODES: 'a:7000', REDIS_SENTINEL_NODES: 'b:26379', REDIS_SENTINEL_MASTER: 'm' });
  t.is(both.variable, 'REDIS_SENTINEL_NODES');
  t.regex(both.message, /^REDIS_SENTINEL_NODES="b:26379" is not allowed: not together with REDIS_CLUSTER_NODES/);
});

test('with a Cluster: no database in REDIS_URL (password hidden), no hash tag in REDIS_KEY_PREFIX', (t) => {
  const database = errorFor({ REDIS_CLUSTER_NODES: 'a:7000', REDIS_URL: 'redis://app:hunter2@cluster/3' });
  t.is(database.variable, 'REDIS_URL');
  t.regex(database.message, /^REDIS_URL="redis:\/\/\*\*\*@cluster\/3" is not allowed: no database but 0/);
  t.false(database.message.includes('hunter2'));
  t.is(redis({ REDIS_CLUSTER_NODES: 'a:7000', REDIS_URL: 'redis://cluster/0' }).topology?.kind, 'cluster');
  for (const prefix of ['{sess}:', 'sess{', 'sess}']) {
    const error = errorFor({ REDIS_CLUSTER_NODES: 'a:7000', REDIS_KEY_PREFIX: prefix });
    t.is(error.variable, 'REDIS_KEY_PREFIX', prefix);
    t.regex(error.message, /no \{ or \} with REDIS_CLUSTER_NODES/);
  }
  t.is(redis({ REDIS_KEY_PREFIX: '{sess}:' }).keyPrefix, '{sess}:', 'one server: any prefix');
});

test('the node lists are not even read with the memory store', (t) => {
  t.is(loadConfig({ REDIS_CLUSTER_NODES: 'not a list', REDIS_SENTINEL_MASTER: 'x' }).redis, null);
});

test('a bad node list stops the server with that one line and exit 1', async (t) => {
  const server = await runToExit({ SESSION_STORE: 'redis', REDIS_CLUSTER_NODES: 'redis-a:7000,redis-b' });
  t.is(server.code, 1);
  t.is(
    server.stderr().trimEnd(),
    'Cannot start: REDIS_CLUSTER_NODES="redis-a:7000,redis-b" is not allowed: a comma-separated list of host:port ' +
      '(port 1 to 65535), e.g. 10.0.0.1:7000,10.0.0.2:7000',
  );
});

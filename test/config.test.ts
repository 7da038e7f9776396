/**
 * Every bad setting stops the real server before it listens: a non-zero exit, one line on stderr
 * that names the variable, the value and what is allowed, and no stack trace.
 */

import { once } from 'node:events';
import { Agent, get, type IncomingMessage } from 'node:http';
import { createServer } from 'node:net';
import { parseEnv } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { checkEnvFile, loadConfig, SETTING_NAMES } from '../config/index.ts';
import { TEST_KEY } from './helpers/app.ts';
import { freePort, killOnTeardown, runToExit, startServerProcess } from './helpers/process.ts';

interface BadSetting {
  readonly env: Record<string, string>;
  readonly variable: string;
  /** What the line must show of the value (secrets are described, never echoed). */
  readonly shows: string;
  readonly allowed: RegExp;
}

const BAD_SETTINGS: Record<string, BadSetting> = {
  'PORT not a number': { env: { PORT: 'http' }, variable: 'PORT', shows: '"http"', allowed: /0 to 65535/ },
  'PORT negative': { env: { PORT: '-1' }, variable: 'PORT', shows: '"-1"', allowed: /0 to 65535/ },
  'PORT out of range': { env: { PORT: '65536' }, variable: 'PORT', shows: '"65536"', allowed: /0 to 65535/ },
  'SESSION_MAX_AGE not a duration': {
    env: { SESSION_MAX_AGE: 'soon' },
    variable: 'SESSION_MAX_AGE',
    shows: '"soon"',
    allowed: /90s, 1m, 2h/,
  },
  'SESSION_MAX_AGE negative': {
    env: { SESSION_MAX_AGE: '-5s' },
    variable: 'SESSION_MAX_AGE',
    shows: '"-5s"',
    allowed: /at least 1 ms/,
  },
  'SESSION_MAX_AGE zero': {
    env: { SESSION_MAX_AGE: '0' },
    variable: 'SESSION_MAX_AGE',
    shows: '"0"',
    allowed: /at least 1 ms/,
  },
  'SESSION_MAX_AGE unknown unit': {
    env: { SESSION_MAX_AGE: '3w' },
    variable: 'SESSION_MAX_AGE',
    shows: '"3w"',
    allowed: /ms, s, m, h or d/,
  },
  'SESSION_MAX_AGE too long': {
    env: { SESSION_MAX_AGE: '400d' },
    variable: 'SESSION_MAX_AGE',
    shows: '"400d"',
    allowed: /at most 24d \(2147483647 ms, the longest a Node timer can wait\)/,
  },
  'SHUTDOWN_TIMEOUT longer than a Node timer can wait': {
    env: { SHUTDOWN_TIMEOUT: '30d' },
    variable: 'SHUTDOWN_TIMEOUT',
    shows: '"30d"',
    allowed: /at most 24d \(2147483647 ms, the longest a Node timer can wait\)/,
  },
  'REDIS_COMMAND_TIMEOUT longer than a Node timer can wait': {
    env: { SESSION_STORE: 'redis', REDIS_COMMAND_TIMEOUT: '25d' },
    variable: 'REDIS_COMMAND_TIMEOUT',
    shows: '"25d"',
    allowed: /at most 24d \(2147483647 ms, the longest a Node timer can wait\)/,
  },
  'SESSION_MAX_LIFETIME not a duration': {
    env: { SESSION_MAX_LIFETIME: '1 hour' },
    variable: 'SESSION_MAX_LIFETIME',
    shows: '"1 hour"',
    allowed: /duration/,
  },
  'SESSION_MAX_ENTRIES zero': {
    env: { SESSION_MAX_ENTRIES: '0' },
    variable: 'SESSION_MAX_ENTRIES',
    shows: '"0"',
    allowed: /1 to 100000000/,
  },
  'SESSION_MAX_ENTRIES fractional': {
    env: { SESSION_MAX_ENTRIES: '1.5' },
    variable: 'SESSION_MAX_ENTRIES',
    shows: '"1.5"',
    allowed: /whole number/,
  },
  'SESSION_STORE unknown': {
    env: { SESSION_STORE: 'mongo' },
    variable: 'SESSION_STORE',
    shows: '"mongo"',
    allowed: /memory, redis/,
  },
  'SESSION_KEYS missing in production': {
    env: { NODE_ENV: 'production', SESSION_KEYS: '' },
    variable: 'SESSION_KEYS',
    shows: '""',
    allowed: /required when NODE_ENV=production/,
  },
  'SESSION_KEYS too short in production': {
    env: { NODE_ENV: 'production', SESSION_KEYS: `${TEST_KEY},sh0rt-k3y` },
    variable: 'SESSION_KEYS',
    shows: '2 key(s) of 41, 9 characters',
    allowed: /at least 32 characters/,
  },
  'SESSION_KEYS with an empty key': {
    env: { SESSION_KEYS: `${TEST_KEY},` },
    variable: 'SESSION_KEYS',
    shows: '2 key(s) of 41, 0 characters',
    allowed: /none of them empty/,
  },
  'SESSION_COOKIE_NAME with a space': {
    env: { SESSION_COOKIE_NAME: 'my session' },
    variable: 'SESSION_COOKIE_NAME',
    shows: '"my session"',
    allowed: /cookie name/,
  },
  'SESSION_COOKIE_SECURE unknown': {
    env: { SESSION_COOKIE_SECURE: 'maybe' },
    variable: 'SESSION_COOKIE_SECURE',
    shows: '"maybe"',
    allowed: /auto, true, false/,
  },
  'SESSION_COOKIE_SAMESITE unknown': {
    env: { SESSION_COOKIE_SAMESITE: 'loose' },
    variable: 'SESSION_COOKIE_SAMESITE',
    shows: '"loose"',
    allowed: /lax, strict, none/,
  },
  'SESSION_COOKIE_SAMESITE none without Secure': {
    env: { SESSION_COOKIE_SAMESITE: 'none' },
    variable: 'SESSION_COOKIE_SAMESITE',
    shows: '"none"',
    allowed: /SESSION_COOKIE_SECURE=true/,
  },
  'TRUST_PROXY not a boolean': {
    env: { TRUST_PROXY: 'perhaps' },
    variable: 'TRUST_PROXY',
    shows: '"perhaps"',
    allowed: /true or false/,
  },
  'LOG_LEVEL unknown': {
    env: { LOG_LEVEL: 'verbose' },
    variable: 'LOG_LEVEL',
    shows: '"verbose"',
    allowed: /debug, info, warn, error, silent/,
  },
  'HTTP_HEADERS_TIMEOUT not a duration': {
    env: { HTTP_HEADERS_TIMEOUT: 'never' },
    variable: 'HTTP_HEADERS_TIMEOUT',
    shows: '"never"',
    allowed: /duration/,
  },
  'HTTP_REQUEST_TIMEOUT below the headers timeout': {
    env: { HTTP_HEADERS_TIMEOUT: '10s', HTTP_REQUEST_TIMEOUT: '5s' },
    variable: 'HTTP_REQUEST_TIMEOUT',
    shows: '"5s"',
    allowed: /at least HTTP_HEADERS_TIMEOUT/,
  },
  'HTTP_KEEP_ALIVE_TIMEOUT zero': {
    env: { HTTP_KEEP_ALIVE_TIMEOUT: '0' },
    variable: 'HTTP_KEEP_ALIVE_TIMEOUT',
    shows: '"0"',
    allowed: /at least 1 ms/,
  },
  'HTTP_KEEP_ALIVE_TIMEOUT past the longest timer less the second Node adds': {
    env: { HTTP_KEEP_ALIVE_TIMEOUT: '2147482648' },
    variable: 'HTTP_KEEP_ALIVE_TIMEOUT',
    shows: '"2147482648"',
    allowed: /at most 2147482647 ms \(Node waits 1 s more than this/,
  },
  'SESSION_KEYS too short with NODE_ENV=staging': {
    env: { NODE_ENV: 'staging', SESSION_KEYS: 'q7z!' },
    variable: 'SESSION_KEYS',
    shows: '1 key(s) of 4 characters',
    allowed: /at least 32 characters in production \(NODE_ENV=staging\)/,
  },
  'SESSION_KEYS missing with NODE_ENV=Production': {
    env: { NODE_ENV: 'Production', SESSION_KEYS: '' },
    variable: 'SESSION_KEYS',
    shows: '""',
    allowed: /required/,
  },
  'SESSION_COOKIE_NAME __host- (any case) without Secure': {
    env: { SESSION_COOKIE_NAME: '__host-sid' },
    variable: 'SESSION_COOKIE_NAME',
    shows: '"__host-sid"',
    allowed: /SESSION_COOKIE_SECURE=true/,
  },
  'SESSION_COOKIE_NAME __Host- without Secure': {
    env: { SESSION_COOKIE_NAME: '__Host-sid' },
    variable: 'SESSION_COOKIE_NAME',
    shows: '"__Host-sid"',
    allowed: /SESSION_COOKIE_SECURE=true/,
  },
  'SHUTDOWN_DRAIN not shorter than SHUTDOWN_TIMEOUT': {
    env: { SHUTDOWN_DRAIN: '5s', SHUTDOWN_TIMEOUT: '5s' },
    variable: 'SHUTDOWN_DRAIN',
    shows: '"5s"',
    allowed: /less than SHUTDOWN_TIMEOUT \(5s\)/,
  },
  'SHUTDOWN_TIMEOUT not a duration': {
    env: { SHUTDOWN_TIMEOUT: 'later' },
    variable: 'SHUTDOWN_TIMEOUT',
    shows: '"later"',
    allowed: /duration/,
  },
  'REDIS_URL not a Redis URL': {
    env: { SESSION_STORE: 'redis', REDIS_URL: 'http://user:hunter2@cache:6379' },
    variable: 'REDIS_URL',
    shows: '"http://***@cache:6379/"',
    allowed: /redis:\/\//,
  },
  'REDIS_URL not a Redis URL, with a colon and an @ in the password': {
    env: { SESSION_STORE: 'redis', REDIS_URL: 'redis://default:hunter2:x@hunter2@cache:6379/db' },
    variable: 'REDIS_URL',
    shows: '"redis://***@cache:6379/***"',
    allowed: /redis:\/\//,
  },
  'REDIS_URL with a slash in the password': {
    env: { SESSION_STORE: 'redis', REDIS_URL: 'redis://:hunter2/hunter2@cache:6379' },
    variable: 'REDIS_URL',
    shows: '"redis://***"',
    allowed: /write \/ \? # % as %2F %3F %23 %25/,
  },
  'REDIS_URL with its host forgotten, no user': {
    env: { SESSION_STORE: 'redis', REDIS_URL: 'redis://:hunter2' },
    variable: 'REDIS_URL',
    shows: '"redis://***"',
    allowed: /redis:\/\/\[user:password@\]host/,
  },
  'REDIS_URL with its host forgotten, user default': {
    env: { SESSION_STORE: 'redis', REDIS_URL: 'redis://default:hunter2' },
    variable: 'REDIS_URL',
    shows: '"redis://***"',
    allowed: /redis:\/\/\[user:password@\]host/,
  },
  'REDIS_URL with the password in a query': {
    env: { SESSION_STORE: 'redis', REDIS_URL: 'redis://cache:6379?password=hunter2' },
    variable: 'REDIS_URL',
    shows: '"redis://cache:6379?***"',
    allowed: /no \?query or #fragment, which node-redis ignores/,
  },
  'REDIS_CONNECT_TIMEOUT not a duration': {
    env: { SESSION_STORE: 'redis', REDIS_CONNECT_TIMEOUT: 'fast' },
    variable: 'REDIS_CONNECT_TIMEOUT',
    shows: '"fast"',
    allowed: /duration/,
  },
  'REDIS_COMMAND_TIMEOUT not a duration': {
    env: { SESSION_STORE: 'redis', REDIS_COMMAND_TIMEOUT: '-1' },
    variable: 'REDIS_COMMAND_TIMEOUT',
    shows: '"-1"',
    allowed: /duration/,
  },
};

function assertOneLineNoStack(t: ExecutionContext, stderr: string) {
  t.is(stderr.trimEnd().split('\n').length, 1, `exactly one line: ${stderr}`);
  t.notRegex(stderr, /^\s+at /m, 'no stack trace');
}

for (const [name, bad] of Object.entries(BAD_SETTINGS)) {
  test(`start-up stops on ${name}`, async (t) => {
    const env = { SESSION_KEYS: TEST_KEY, ...bad.env };
    const server = await runToExit(env);
    const { code } = server;
    t.not(code, 0, 'non-zero exit');
    const stderr = server.stderr();
    assertOneLineNoStack(t, stderr);
    t.true(
      stderr.includes(`${bad.variable}=`) || stderr.includes(`${bad.variable} `),
      `names ${bad.variable}: ${stderr}`,
    );
    t.true(stderr.includes(bad.shows), `shows the value ${bad.shows}: ${stderr}`);
    t.regex(stderr, bad.allowed, 'says what is allowed');
    t.notRegex(stderr, /hunter2/, 'never prints a password');
    for (const key of env.SESSION_KEYS.split(',').filter((key) => key !== ''))
      t.false(stderr.includes(key), 'never prints a signing key');
    t.is(server.stdout(), '', 'nothing was served or logged');
  });
}

test('start-up stops when the port is taken, naming it', async (t) => {
  const blocker = createServer().listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  t.teardown(() => blocker.close());
  const { port } = blocker.address() as { port: number };
  const server = await runToExit({ SESSION_KEYS: TEST_KEY, PORT: String(port) });
  t.not(server.code, 0);
  assertOneLineNoStack(t, server.stderr());
  t.regex(server.stderr(), new RegExp(`PORT.*${port}.*EADDRINUSE`));
});

test('a password written where the user goes never shows when Redis does not answer', async (t) => {
  const port = await freePort(); // nothing answers there
  const server = await runToExit({
    SESSION_KEYS: TEST_KEY,
    SESSION_STORE: 'redis',
    REDIS_URL: `redis://hunter2@127.0.0.1:${port}/0`,
    REDIS_CONNECT_TIMEOUT: '1s',
  });
  t.not(server.code, 0);
  assertOneLineNoStack(t, server.stderr());
  t.regex(
    server.stderr(),
    new RegExp(`^Cannot start: REDIS_URL="redis://\\*\\*\\*@127\\.0\\.0\\.1:${port}/0": Redis did not answer`),
  );
  t.notRegex(server.stderr() + server.stdout(), /hunter2/);
});

test('HTTP_KEEP_ALIVE_TIMEOUT at its bound: a keep-alive answer sets no timer past what Node can wait', async (t) => {
  const server = await startServerProcess({ SESSION_KEYS: TEST_KEY, HTTP_KEEP_ALIVE_TIMEOUT: '2147482647' });
  killOnTeardown(t, server);
  const agent = new Agent({ keepAlive: true });
  t.teardown(() => agent.destroy());
  const response = await new Promise<IncomingMessage>((resolve, reject) =>
    get(`${server.url}/healthz`, { agent }, resolve).on('error', reject),
  );
  response.resume();
  await once(response, 'end');
  t.is(response.headers.connection, 'keep-alive');
  t.regex(String(response.headers['keep-alive']), /timeout=2147482/);
  // Every line the process writes is read by the time it has exited.
  server.child.kill('SIGTERM');
  t.is(await server.exited, 0);
  t.notRegex(server.stderr(), /TimeoutOverflowWarning|does not fit into a 32-bit/, server.stderr());
});

test("defaults: the seed's port and one-minute max age, memory store, safe cookie settings", (t) => {
  const config = loadConfig({});
  t.is(config.http.port, 8199);
  t.is(config.http.host, '127.0.0.1');
  t.is(config.session.maxAgeMs, 60_000);
  t.is(config.session.maxLifetimeMs, null);
  t.is(config.session.store, 'memory');
  t.is(config.session.maxEntries, 100_000);
  t.true(config.session.keysAreEphemeral);
  t.deepEqual(config.session.cookie, { name: 'sid', secure: 'auto', sameSite: 'lax' });
  t.is(config.http.shutdownDrainMs, 0, 'no drain in development');
  t.is(
    loadConfig({ NODE_ENV: 'production', SESSION_KEYS: TEST_KEY }).http.shutdownDrainMs,
    5_000,
    'a 5 s drain in production',
  );
  t.is(config.http.shutdownTimeoutMs, 9_000);
  t.false(config.production);
  t.true(Object.isFrozen(config) && Object.isFrozen(config.session.cookie), 'frozen all the way down');
});

test('durations accept milliseconds and units; keys split on commas', (t) => {
  const parse = (value: string) => loadConfig({ SESSION_MAX_AGE: value }).session.maxAgeMs;
  t.is(parse('1500'), 1_500);
  t.is(parse('250ms'), 250);
  t.is(parse('90s'), 90_000);
  t.is(parse('1m'), 60_000);
  t.is(parse('2h'), 7_200_000);
  t.is(parse('1d'), 86_400_000);
  t.is(parse(' 2M '), 120_000, 'trimmed, unit case-insensitive');
  t.deepEqual(loadConfig({ SESSION_KEYS: 'a, b' }).session.keys, ['a', 'b']);
});

test('a .env file in the working directory is read, and the environment wins over it', async (t) => {
  const fromFile = await runToExit({ SESSION_KEYS: TEST_KEY }, { dotEnv: 'SESSION_STORE=mongo\n' });
  t.not(fromFile.code, 0);
  t.regex(fromFile.stderr(), /SESSION_STORE="mongo"/, 'the file was read');

  // startServerProcess fails the test if the server exits instead of listening.
  const overridden = await startServerProcess(
    { SESSION_KEYS: TEST_KEY, SESSION_MAX_AGE: '90s' },
    { dotEnv: 'SESSION_MAX_AGE=soon\n' },
  );
  killOnTeardown(t, overridden);
  t.pass('SESSION_MAX_AGE=90s from the environment beat the bad value in the file');
  overridden.child.kill('SIGTERM');
  t.is(await overridden.exited, 0);
});

test('a .env that starts with a byte-order mark keeps its first line: NODE_ENV=production there means production', async (t) => {
  // NODE_ENV left unset, so the file decides; no SESSION_KEYS, which production rules require.
  const server = await runToExit({ NODE_ENV: undefined }, { dotEnv: '\uFEFFNODE_ENV=production\nPORT=0\n' });
  t.not(server.code, 0, 'refused, not started under development rules');
  assertOneLineNoStack(t, server.stderr());
  t.regex(server.stderr(), /^Cannot start: SESSION_KEYS="" is not allowed: required when NODE_ENV=production/);
  t.is(server.stdout(), '', 'no warning about the first line either');
});

test('a .env that cannot be read (a folder) stops start-up with one line naming it', async (t) => {
  const server = await runToExit({ SESSION_KEYS: TEST_KEY }, { dotEnvFolder: true });
  t.not(server.code, 0);
  assertOneLineNoStack(t, server.stderr());
  t.is(server.stderr(), 'Cannot start: .env cannot be read (EISDIR: it is a folder, not a file)\n');
  t.is(server.stdout(), '');
});

test('production rules unless NODE_ENV is unset, development or test', (t) => {
  const production = (NODE_ENV: string | undefined) => loadConfig({ NODE_ENV, SESSION_KEYS: TEST_KEY }).production;
  for (const value of [undefined, '', 'development', 'test'])
    t.false(production(value), `NODE_ENV=${value}: development rules`);
  for (const value of ['production', 'Production', 'PRODUCTION', 'staging', 'prod', 'dev'])
    t.true(production(value), `NODE_ENV=${value}: production rules`);
  const refused = t.throws(() => loadConfig({ NODE_ENV: 'staging', SESSION_KEYS: 'sh0rt-k3y' }), {
    message: /SESSION_KEYS/,
  });
  t.false(refused?.message.includes('sh0rt-k3y'), 'the error does not show the key');
});

test('a short key in development is accepted with a warning; a long one without', (t) => {
  const short = loadConfig({ SESSION_KEYS: 'x' });
  t.deepEqual(short.session.keys, ['x']);
  t.is(short.warnings.length, 1);
  t.regex(short.warnings[0], /SESSION_KEYS.*shorter than 32 characters/);
  t.false(short.warnings[0].includes('x,'), 'the key itself is not shown');
  t.deepEqual(loadConfig({ SESSION_KEYS: TEST_KEY }).warnings, []);
});

test('SESSION_COOKIE_SECURE=true makes the default cookie name __Host-sid', (t) => {
  t.is(loadConfig({ SESSION_COOKIE_SECURE: 'true' }).session.cookie.name, '__Host-sid');
  t.is(
    loadConfig({ SESSION_COOKIE_SECURE: 'true', SESSION_COOKIE_NAME: 'app' }).session.cookie.name,
    'app',
    'an explicit name wins',
  );
  t.is(
    loadConfig({ SESSION_COOKIE_SECURE: 'true', SESSION_COOKIE_NAME: '__Secure-app' }).session.cookie.name,
    '__Secure-app',
  );
  t.throws(() => loadConfig({ SESSION_COOKIE_SECURE: 'auto', SESSION_COOKIE_NAME: '__Secure-app' }), {
    message: /SESSION_COOKIE_SECURE=true/,
  });
  t.is(loadConfig({ SHUTDOWN_DRAIN: '0' }).http.shutdownDrainMs, 0, 'a drain of 0 switches it off');
});

test('a .env line that is not NAME=value, and a name that looks like a setting, each give one warning', (t) => {
  const text = [
    '# a comment',
    '',
    'SESION_MAX_AGE=5s',
    'PORT 8200',
    'session_store=redis',
    'SESSION_MAX_AGES=1m',
    'DATABASE_URL=postgres://x',
    'PORT=8201',
  ].join('\n');
  t.deepEqual(checkEnvFile(text, SETTING_NAMES), [
    '.env line 3: SESION_MAX_AGE is not a setting of this app; did you mean SESSION_MAX_AGE?',
    '.env line 4 is not NAME=value and is ignored: "PORT ..."',
    '.env line 5: session_store is not a setting of this app; did you mean SESSION_STORE?',
    // Node 20 reads a line without = as the start of the next line's name; Node 22 and later skip it.
    ...(Object.hasOwn(parseEnv(text), 'session_store')
      ? []
      : ['.env line 5: Node reads this line as part of a line above it, so session_store is not set: fix line 4']),
    '.env line 6: SESSION_MAX_AGES is not a setting of this app; did you mean SESSION_MAX_AGE?',
  ]);
});

test('the server prints the .env warnings at start, one line each, and still starts', async (t) => {
  const server = await startServerProcess(
    { SESSION_KEYS: TEST_KEY, LOG_FORMAT: 'json' },
    { dotEnv: 'SESION_MAX_AGE=5s\nPORT 8200\n' },
  );
  t.teardown(() => server.child.kill('SIGKILL'));
  const warnings = server
    .stdout()
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as { level: string; msg: string })
    .filter((line) => line.level === 'warn');
  t.deepEqual(
    warnings.map((line) => line.msg),
    [
      '.env line 1: SESION_MAX_AGE is not a setting of this app; did you mean SESSION_MAX_AGE?',
      '.env line 2 is not NAME=value and is ignored: "PORT ..."',
    ],
  );
});

test('Redis settings are not even read with the memory store', (t) => {
  t.is(loadConfig({ REDIS_URL: 'not a url' }).redis, null);
  t.throws(() => loadConfig({ SESSION_STORE: 'redis', REDIS_URL: 'not a url' }), { message: /REDIS_URL/ });
});

/**
 * config/ in-process, at its edges: every bound of every parser, each error message exactly as the
 * operator reads it, the defaults of every setting, and the .env check line by line. (test/config.test.ts
 * checks the same errors through the real server's start-up, which is too slow for `npm run mutate`.)
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEnv, promisify } from 'node:util';
import test from 'ava';
import {
  ConfigError,
  checkEnvFile,
  loadConfig,
  readEnvironment,
  redactUrl,
  SETTING_NAMES,
  StartupError,
} from '../config/index.ts';
import {
  readBoolean,
  readChoice,
  readDuration,
  readInteger,
  readOptionalString,
  readString,
} from '../config/parsers.ts';

const KEY = 'k'.repeat(32);
/** Node 20 reads a line of blanks, or one without =, as the start of the next line's name; Node 22 on skip it. */
const JOINS_LINES = !Object.hasOwn(parseEnv('A=1\n \nB=2'), 'B');
/** The message loadConfig throws for this environment (fails the test when it does not throw). */
const errorFor = (env: Record<string, string>): string => {
  try {
    loadConfig({ SESSION_KEYS: KEY, ...env });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.message;
  }
  throw new Error(`no error for ${JSON.stringify(env)}`);
};

test('ConfigError and StartupError: their names, the variable, the one-line message and a cause', (t) => {
  const error = new ConfigError('PORT', 'http', 'a port');
  t.true(error instanceof StartupError && error instanceof Error);
  t.is(error.name, 'ConfigError');
  t.is(error.variable, 'PORT');
  t.is(error.message, 'PORT="http" is not allowed: a port');
  const cause = new Error('root');
  const startup = new StartupError('REDIS_URL', 'no answer', { cause });
  t.is(startup.name, 'StartupError');
  t.is(startup.variable, 'REDIS_URL');
  t.is(startup.message, 'no answer');
  t.is(startup.cause, cause);
});

test('a blank or unset variable means its default; values are trimmed', (t) => {
  t.is(readString({}, 'X', 'fallback'), 'fallback');
  t.is(readString({ X: '' }, 'X', 'fallback'), 'fallback');
  t.is(readString({ X: '   ' }, 'X', 'fallback'), 'fallback');
  t.is(readString({ X: ' value ' }, 'X', 'fallback'), 'value');
  t.is(readOptionalString({ X: ' \t' }, 'X'), undefined);
  t.is(readOptionalString({}, 'X'), undefined);
  t.is(readOptionalString({ X: ' a ' }, 'X'), 'a');
  t.is(readInteger({ N: ' ' }, 'N', 7, 0, 10), 7);
  t.is(readBoolean({ B: '' }, 'B', true), true);
  t.is(readChoice({ C: '' }, 'C', 'b', ['a', 'b']), 'b');
  t.is(readDuration({ D: '' }, 'D', null), null);
  t.is(readDuration({ D: '' }, 'D', 42), 42);
});

test('whole numbers: both bounds included, nothing else accepted', (t) => {
  const read = (value: string) => readInteger({ N: value }, 'N', 5, 1, 10);
  t.is(read('1'), 1);
  t.is(read('10'), 10);
  t.is(read(' 7 '), 7);
  t.is(read('007'), 7);
  for (const bad of ['0', '11', '-1', '+5', '1.5', '1e1', '0x5', '5 5', 'five', '99999999999999999999']) {
    t.throws(
      () => read(bad),
      { instanceOf: ConfigError, message: `N=${JSON.stringify(bad)} is not allowed: a whole number from 1 to 10` },
      bad,
    );
  }
  t.is(readInteger({ N: '9007199254740991' }, 'N', 0, 0, Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER);
  t.throws(
    () => readInteger({ N: '9007199254740992' }, 'N', 0, 0, Number.MAX_SAFE_INTEGER),
    { instanceOf: ConfigError },
    'not a safe integer',
  );
  t.is(loadConfig({ PORT: '0' }).http.port, 0, 'port 0: any free port');
  t.is(loadConfig({ PORT: '65535' }).http.port, 65_535);
  t.is(errorFor({ PORT: '65536' }), 'PORT="65536" is not allowed: a whole number from 0 to 65535');
  t.is(loadConfig({ SESSION_MAX_ENTRIES: '1' }).session.maxEntries, 1);
  t.is(loadConfig({ SESSION_MAX_ENTRIES: '100000000' }).session.maxEntries, 100_000_000);
  t.is(
    errorFor({ SESSION_MAX_ENTRIES: '100000001' }),
    'SESSION_MAX_ENTRIES="100000001" is not allowed: a whole number from 1 to 100000000',
  );
  t.is(
    errorFor({ SESSION_MAX_ENTRIES: '0' }),
    'SESSION_MAX_ENTRIES="0" is not allowed: a whole number from 1 to 100000000',
  );
});

test('booleans: true/1/yes and false/0/no in any case, whole values only', (t) => {
  const read = (value: string) => readBoolean({ B: value }, 'B', false);
  for (const value of ['true', 'TRUE', 'True', '1', 'yes', 'YES', ' yes ']) t.true(read(value), value);
  for (const value of ['false', 'FALSE', '0', 'no', 'No']) t.false(readBoolean({ B: value }, 'B', true), value);
  for (const bad of ['truee', 'atrue', 'yes please', 'nope', '01', '10', 'on', 'off', 'y', 'n']) {
    t.throws(
      () => read(bad),
      { message: `B=${JSON.stringify(bad)} is not allowed: true or false (yes/no and 1/0 also work)` },
      bad,
    );
  }
  t.true(loadConfig({ TRUST_PROXY: 'yes' }).http.trustProxy);
  t.false(loadConfig({}).http.trustProxy);
});

test('choices: in any case, returned as listed; the error lists them all', (t) => {
  t.is(readChoice({ C: 'REDIS' }, 'C', 'memory', ['memory', 'redis'] as const), 'redis');
  t.is(readChoice({ C: ' Memory ' }, 'C', 'redis', ['memory', 'redis'] as const), 'memory');
  t.throws(() => readChoice({ C: 'mem' }, 'C', 'memory', ['memory', 'redis'] as const), {
    message: 'C="mem" is not allowed: one of memory, redis',
  });
  t.is(errorFor({ LOG_FORMAT: 'xml' }), 'LOG_FORMAT="xml" is not allowed: one of auto, json, pretty');
  t.is(loadConfig({ LOG_FORMAT: 'JSON', LOG_LEVEL: 'Silent' }).log.format, 'json');
  t.is(loadConfig({ LOG_LEVEL: 'Silent' }).log.level, 'silent');
  t.deepEqual(loadConfig({}).log, { level: 'info', format: 'auto' });
});

test('durations: every unit in any case, 0 only where allowed, at most 2^31-1 ms (the longest Node timer)', (t) => {
  const read = (value: string, allowZero = false) => readDuration({ D: value }, 'D', 1, { allowZero });
  t.is(read('1'), 1);
  t.is(read('1ms'), 1);
  t.is(read('1MS'), 1);
  t.is(read('3s'), 3_000);
  t.is(read('3S'), 3_000);
  t.is(read('2m'), 120_000);
  t.is(read('2H'), 7_200_000);
  t.is(read('2d'), 172_800_000);
  t.is(read('24d'), 2_073_600_000);
  t.is(read('596h'), 2_145_600_000);
  t.is(read('2147483647'), 2_147_483_647, 'the limit itself');
  t.is(read('2147483s'), 2_147_483_000);
  t.is(read('0', true), 0);
  t.is(read('0s', true), 0);
  const help = (minimum: string) =>
    `a duration of at least ${minimum} and at most 24d (2147483647 ms, the longest a Node timer can wait): milliseconds (60000) or a number with a unit ms, s, m, h or d (90s, 1m, 2h)`;
  for (const bad of [
    '0',
    '0ms',
    '25d',
    '30d',
    '365d',
    '2147483648',
    '2147484s',
    '35792m',
    '597h',
    '1.5s',
    '1 s',
    's',
    '-1',
    '1w',
    '1sec',
    'x1s',
    '1s1',
  ]) {
    t.throws(() => read(bad), { message: `D=${JSON.stringify(bad)} is not allowed: ${help('1 ms')}` }, bad);
  }
  t.throws(() => read('25d', true), { message: `D="25d" is not allowed: ${help('0')}` });
  t.throws(() => read('-1', true), { message: `D="-1" is not allowed: ${help('0')}` });
  t.throws(() => readDuration({ D: '0' }, 'D', 5), { message: /at least 1 ms/ }, 'no options: 0 refused');
});

test('every duration setting refuses what a Node timer cannot wait for, naming itself', (t) => {
  const durations = [
    'HTTP_HEADERS_TIMEOUT',
    'HTTP_REQUEST_TIMEOUT',
    'SHUTDOWN_DRAIN',
    'SHUTDOWN_TIMEOUT',
    'SESSION_MAX_AGE',
    'SESSION_MAX_LIFETIME',
    'REDIS_CONNECT_TIMEOUT',
    'REDIS_COMMAND_TIMEOUT',
  ];
  t.deepEqual(
    durations.filter((name) => SETTING_NAMES.includes(name as (typeof SETTING_NAMES)[number])),
    durations,
  );
  for (const name of durations) {
    for (const value of ['25d', '2147483648']) {
      t.regex(
        errorFor({ SESSION_STORE: 'redis', [name]: value }),
        new RegExp(
          `^${name}="${value}" is not allowed: a duration of at least [01].* and at most 24d \\(2147483647 ms`,
        ),
        `${name}=${value}`,
      );
    }
  }
  const longest = loadConfig({
    SESSION_STORE: 'redis',
    HTTP_HEADERS_TIMEOUT: '2147483647',
    HTTP_REQUEST_TIMEOUT: '2147483647',
    HTTP_KEEP_ALIVE_TIMEOUT: '2147482647',
    SHUTDOWN_DRAIN: '24d',
    SHUTDOWN_TIMEOUT: '2147483647',
    SESSION_MAX_AGE: '2147483647',
    SESSION_MAX_LIFETIME: '2147483647',
    REDIS_CONNECT_TIMEOUT: '2147483647',
    REDIS_COMMAND_TIMEOUT: '2147483647',
  });
  t.like(longest.http, {
    headersTimeoutMs: 2_147_483_647,
    keepAliveTimeoutMs: 2_147_482_647,
    shutdownDrainMs: 2_073_600_000,
    shutdownTimeoutMs: 2_147_483_647,
  });
  t.is(longest.session.maxLifetimeMs, 2_147_483_647);
  t.like(longest.redis, { connectTimeoutMs: 2_147_483_647, commandTimeoutMs: 2_147_483_647 });
});

test('HTTP_KEEP_ALIVE_TIMEOUT: at most 2^31-1 ms less the second Node adds to it, in the usual one line', (t) => {
  const help =
    'a duration of at least 1 ms and at most 2147482647 ms (Node waits 1 s more than this, in a timer that can ' +
    'wait at most 2147483647 ms): milliseconds (60000) or a number with a unit ms, s, m, h or d (90s, 1m, 2h)';
  t.is(loadConfig({ HTTP_KEEP_ALIVE_TIMEOUT: '2147482647' }).http.keepAliveTimeoutMs, 2_147_482_647, 'the bound');
  t.is(loadConfig({ HTTP_KEEP_ALIVE_TIMEOUT: '24d' }).http.keepAliveTimeoutMs, 2_073_600_000);
  for (const bad of ['2147482648', '2147483647', '2147483s', '2147483648', '25d', '0']) {
    t.is(errorFor({ HTTP_KEEP_ALIVE_TIMEOUT: bad }), `HTTP_KEEP_ALIVE_TIMEOUT="${bad}" is not allowed: ${help}`, bad);
  }
  t.is(readDuration({ D: '2147483647' }, 'D', 1), 2_147_483_647, 'the other durations keep the timer bound');
  t.throws(() => readDuration({ D: '11' }, 'D', 1, { maxMs: 10, maxReason: 'why' }), {
    message:
      'D="11" is not allowed: a duration of at least 1 ms and at most 10 ms (why): ' +
      'milliseconds (60000) or a number with a unit ms, s, m, h or d (90s, 1m, 2h)',
  });
  t.is(readDuration({ D: '10' }, 'D', 1, { maxMs: 10, maxReason: 'why' }), 10);
  t.throws(() => readDuration({ D: '11' }, 'D', 1, { maxMs: 10, maxReason: 'why', allowZero: true }), {
    message: /^D="11" is not allowed: a duration of at least 0 and at most 10 ms \(why\)/,
  });
});

test('every default, in one place', (t) => {
  const config = loadConfig({});
  t.deepEqual(config.http, {
    host: '127.0.0.1',
    port: 8199,
    trustProxy: false,
    headersTimeoutMs: 10_000,
    requestTimeoutMs: 30_000,
    keepAliveTimeoutMs: 5_000,
    shutdownDrainMs: 0,
    shutdownTimeoutMs: 9_000,
  });
  t.deepEqual(config.log, { level: 'info', format: 'auto' });
  t.like(config.session, {
    store: 'memory',
    maxAgeMs: 60_000,
    maxLifetimeMs: null,
    maxEntries: 100_000,
    keysAreEphemeral: true,
  });
  t.deepEqual(config.session.cookie, { name: 'sid', secure: 'auto', sameSite: 'lax' });
  t.is(config.redis, null);
  t.false(config.production);
  t.deepEqual(config.warnings, [], 'no key given is not a short key');
  const set = loadConfig({
    HOST: '0.0.0.0',
    HTTP_HEADERS_TIMEOUT: '1s',
    HTTP_REQUEST_TIMEOUT: '2s',
    HTTP_KEEP_ALIVE_TIMEOUT: '3s',
    SHUTDOWN_DRAIN: '4s',
    SHUTDOWN_TIMEOUT: '5s',
    SESSION_MAX_LIFETIME: '1h',
  });
  t.like(set.http, {
    host: '0.0.0.0',
    headersTimeoutMs: 1_000,
    requestTimeoutMs: 2_000,
    keepAliveTimeoutMs: 3_000,
    shutdownDrainMs: 4_000,
    shutdownTimeoutMs: 5_000,
  });
  t.is(set.session.maxLifetimeMs, 3_600_000);
});

test('the config is frozen all the way down, warnings and keys included', (t) => {
  const config = loadConfig({ SESSION_KEYS: 'short,other', SESSION_STORE: 'redis' });
  for (const part of [
    config,
    config.http,
    config.log,
    config.session,
    config.session.cookie,
    config.session.keys,
    config.warnings,
    config.redis,
  ]) {
    t.true(Object.isFrozen(part));
  }
});

test('production rules: NODE_ENV trimmed, development and test exactly; a 5 s drain by default', (t) => {
  t.false(loadConfig({ NODE_ENV: ' test ' }).production);
  t.false(loadConfig({ NODE_ENV: '  ' }).production, 'blank is unset');
  t.true(loadConfig({ NODE_ENV: 'Test', SESSION_KEYS: KEY }).production, 'only the exact names mean development');
  t.true(loadConfig({ NODE_ENV: 'developments', SESSION_KEYS: KEY }).production);
  t.is(loadConfig({ NODE_ENV: 'production', SESSION_KEYS: KEY }).http.shutdownDrainMs, 5_000);
  t.is(loadConfig({ NODE_ENV: 'production', SESSION_KEYS: KEY, SHUTDOWN_DRAIN: '0' }).http.shutdownDrainMs, 0);
});

test('SESSION_KEYS: split on commas and trimmed; 32 characters is long enough; errors describe the keys, never show them', (t) => {
  const random = loadConfig({});
  t.is(random.session.keys.length, 1);
  t.regex(random.session.keys[0], /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url');
  t.not(loadConfig({}).session.keys[0], random.session.keys[0], 'a new one each time');
  t.deepEqual(loadConfig({ SESSION_KEYS: ` ${KEY} , second ` }).session.keys, [KEY, 'second']);
  t.false(loadConfig({ SESSION_KEYS: KEY }).session.keysAreEphemeral);

  const production = { NODE_ENV: 'production' };
  t.deepEqual(loadConfig({ ...production, SESSION_KEYS: KEY }).session.keys, [KEY], 'exactly 32 is enough');
  t.deepEqual(loadConfig({ ...production, SESSION_KEYS: KEY }).warnings, []);
  t.is(
    errorFor({ ...production, SESSION_KEYS: '' }),
    'SESSION_KEYS="" is not allowed: required when NODE_ENV=production: comma-separated keys of at least 32 characters',
  );
  t.is(
    errorFor({ ...production, SESSION_KEYS: `${KEY},${'s'.repeat(31)}` }),
    'SESSION_KEYS="<2 key(s) of 32, 31 characters>" is not allowed: every key at least 32 characters in production (NODE_ENV=production)',
  );
  t.is(
    errorFor({ SESSION_KEYS: `${KEY}, ,x` }),
    'SESSION_KEYS="<3 key(s) of 32, 0, 1 characters>" is not allowed: comma-separated keys, none of them empty',
  );
  t.is(
    errorFor({ SESSION_KEYS: ',' }),
    'SESSION_KEYS="<2 key(s) of 0, 0 characters>" is not allowed: comma-separated keys, none of them empty',
  );

  const short = 'x'.repeat(31);
  t.deepEqual(loadConfig({ SESSION_KEYS: `${KEY},${short}` }).warnings, [
    'SESSION_KEYS has a key shorter than 32 characters: fine for development, refused in production',
  ]);
  t.deepEqual(loadConfig({ SESSION_KEYS: short }, ['from .env']).warnings, [
    'from .env',
    'SESSION_KEYS has a key shorter than 32 characters: fine for development, refused in production',
  ]);
  t.deepEqual(
    loadConfig({ SESSION_KEYS: KEY }, ['from .env']).warnings,
    ['from .env'],
    'earlier warnings lead, and stay',
  );
});

test('cookie names: any RFC 6265 token; the __Host- and __Secure- prefixes in any case need Secure', (t) => {
  const name = "a!#$%&'*+-.^_`|~Z9";
  t.is(loadConfig({ SESSION_COOKIE_NAME: name }).session.cookie.name, name);
  for (const bad of ['a b', 'a=b', 'a;b', 'a,b', 'a"b', 'a/b', 'a(b)', 'a:b', 'sé']) {
    t.is(
      errorFor({ SESSION_COOKIE_NAME: bad }),
      `SESSION_COOKIE_NAME=${JSON.stringify(bad)} is not allowed: a cookie name: letters, digits and !#$%&'*+-.^_\`|~`,
      bad,
    );
  }
  t.is(
    errorFor({ SESSION_COOKIE_NAME: '__SECURE-id' }),
    'SESSION_COOKIE_NAME="__SECURE-id" is not allowed: a name starting with __Secure- only together with SESSION_COOKIE_SECURE=true (browsers drop it otherwise)',
  );
  t.is(
    errorFor({ SESSION_COOKIE_NAME: '__host-id', SESSION_COOKIE_SECURE: 'false' }),
    'SESSION_COOKIE_NAME="__host-id" is not allowed: a name starting with __Host- only together with SESSION_COOKIE_SECURE=true (browsers drop it otherwise)',
  );
  t.is(
    loadConfig({ SESSION_COOKIE_NAME: '__host-id', SESSION_COOKIE_SECURE: 'TRUE' }).session.cookie.name,
    '__host-id',
  );
  t.is(loadConfig({ SESSION_COOKIE_NAME: '_Host-id' }).session.cookie.name, '_Host-id', 'not the prefix');
  t.is(
    loadConfig({ SESSION_COOKIE_NAME: 'x__Host-id' }).session.cookie.name,
    'x__Host-id',
    'a prefix only at the start',
  );
  t.is(loadConfig({ SESSION_COOKIE_SECURE: 'false' }).session.cookie.name, 'sid');
  t.is(loadConfig({ SESSION_COOKIE_SECURE: 'auto' }).session.cookie.name, 'sid');
});

test('SameSite: lax by default, strict and none by name; none only with Secure', (t) => {
  t.is(loadConfig({ SESSION_COOKIE_SAMESITE: 'Strict' }).session.cookie.sameSite, 'strict');
  t.deepEqual(loadConfig({ SESSION_COOKIE_SAMESITE: 'none', SESSION_COOKIE_SECURE: 'true' }).session.cookie, {
    name: '__Host-sid',
    secure: 'true',
    sameSite: 'none',
  });
  for (const secure of ['auto', 'false']) {
    t.is(
      errorFor({ SESSION_COOKIE_SAMESITE: 'NONE', SESSION_COOKIE_SECURE: secure }),
      'SESSION_COOKIE_SAMESITE="none" is not allowed: none only together with SESSION_COOKIE_SECURE=true',
    );
  }
});

test('Redis settings: defaults, URL forms accepted and refused, password never shown', (t) => {
  t.deepEqual(loadConfig({ SESSION_STORE: 'redis' }).redis, {
    url: 'redis://127.0.0.1:6379',
    keyPrefix: 'sess:',
    connectTimeoutMs: 5_000,
    commandTimeoutMs: 1_000,
  });
  t.like(
    loadConfig({
      SESSION_STORE: 'redis',
      REDIS_KEY_PREFIX: 'app:',
      REDIS_CONNECT_TIMEOUT: '2s',
      REDIS_COMMAND_TIMEOUT: '250ms',
    }).redis,
    {
      keyPrefix: 'app:',
      connectTimeoutMs: 2_000,
      commandTimeoutMs: 250,
    },
  );
  for (const url of [
    'redis://cache',
    'rediss://user:pw@cache:6380',
    'redis://cache/',
    'redis://cache:6379/15',
    'REDIS://cache/0',
  ]) {
    t.is(loadConfig({ SESSION_STORE: 'redis', REDIS_URL: url }).redis?.url, url, url);
  }
  const allowed =
    'a URL like redis://[user:password@]host[:port][/db] or rediss://… for TLS ' +
    '(in the password, write / ? # % as %2F %3F %23 %25)';
  for (const [url, shown] of [
    ['redis://cache/db', 'redis://cache/***'],
    ['redis://cache/1/2', 'redis://cache/***'],
    ['redis:///0', 'redis://***'],
    ['redis:cache', '***'],
    ['cache:6379', '***'],
    ['https://u:secret@cache', 'https://***@cache/'],
    ['no url at all', '***'],
    ['redis://u:50%off@cache', 'redis://***@cache'],
    ['redis://%E0%A4%A@cache', 'redis://***@cache'],
    ['redis://u:1#x@cache', 'redis://***'],
    ['redis://u:1?x@cache/0', 'redis://***'],
    ['redis://:PW1', 'redis://***'],
    ['redis://default:PW1', 'redis://***'],
  ]) {
    t.is(
      errorFor({ SESSION_STORE: 'redis', REDIS_URL: url }),
      `REDIS_URL=${JSON.stringify(shown)} is not allowed: ${allowed}`,
      url,
    );
  }
  const noQuery =
    'a URL with no ?query or #fragment, which node-redis ignores: redis://[user:password@]host[:port][/db] ' +
    '(in the password, write / ? # % as %2F %3F %23 %25)';
  for (const [url, shown] of [
    ['redis://cache:6379?password=PW1', 'redis://cache:6379?***'],
    ['redis://cache:6379/0?db=1', 'redis://cache:6379/0?***'],
    ['rediss://u:PW1@cache?tls=1#x', 'rediss://***@cache?***#***'],
    ['redis://cache#PW1', 'redis://cache#***'],
    ['redis://cache?', 'redis://cache?***'],
    ['redis://cache#', 'redis://cache#***'],
    ['redis://cache/?x', 'redis://cache/?***'],
  ]) {
    t.is(
      errorFor({ SESSION_STORE: 'redis', REDIS_URL: url }),
      `REDIS_URL=${JSON.stringify(shown)} is not allowed: ${noQuery}`,
      url,
    );
  }
  t.is(
    loadConfig({ SESSION_STORE: 'redis', REDIS_URL: 'redis://u:p%3Fw%23d@cache/1' }).redis?.url,
    'redis://u:p%3Fw%23d@cache/1',
    '? and # escaped in a password are no query',
  );
  t.is(
    errorFor({ SESSION_STORE: 'redis', REDIS_COMMAND_TIMEOUT: '0' }).split(':')[0],
    'REDIS_COMMAND_TIMEOUT="0" is not allowed',
  );
  t.is(
    errorFor({ SESSION_STORE: 'redis', REDIS_CONNECT_TIMEOUT: '0' }).split(':')[0],
    'REDIS_CONNECT_TIMEOUT="0" is not allowed',
  );
});

test('redactUrl shows the scheme, host, port and database number, and nothing that may be secret', (t) => {
  t.is(redactUrl('redis://cache:6379'), 'redis://cache:6379');
  t.is(redactUrl('redis://cache'), 'redis://cache');
  t.is(redactUrl('rediss://cache:6380/15'), 'rediss://cache:6380/15');
  t.is(redactUrl('redis://cache/'), 'redis://cache/');
  t.is(redactUrl('REDIS://Cache/0'), 'redis://Cache/0', 'as the URL parser writes it');
  t.is(redactUrl('redis://[::1]:6379/2'), 'redis://[::1]:6379/2');
  t.is(redactUrl('redis://user:hunter2@cache:6379/1'), 'redis://***@cache:6379/1', 'the user goes too');
  t.is(redactUrl('redis://:hunter2@cache'), 'redis://***@cache');
  t.is(redactUrl('redis://PW1@cache'), 'redis://***@cache', 'a password written where the user goes');
  t.is(redactUrl('redis://user:@cache'), 'redis://***@cache');
  t.is(redactUrl('redis://@cache'), 'redis://***@cache');
  t.is(redactUrl('redis://default:se:cret@host'), 'redis://***@host');
  t.is(redactUrl('redis://:p@ssword@host'), 'redis://***@host', 'the userinfo ends at the last @');
  t.is(redactUrl('redis://us@er:pa:ss@host:1/2'), 'redis://***@host:1/2');
  t.is(redactUrl('rediss://u:p%40ss%2Fw@cache:6380/3'), 'rediss://***@cache:6380/3', 'escapes');
  t.is(redactUrl('redis://u:a\\b@host'), 'redis://***@host', 'a backslash');
  t.is(redactUrl('redis://cache/db'), 'redis://cache/***', 'a path that is no database number');
  t.is(redactUrl('redis://cache:6379?password=PW1'), 'redis://cache:6379?***', 'a query');
  t.is(redactUrl('redis://cache/0#PW1'), 'redis://cache/0#***', 'a fragment');
  t.is(redactUrl('redis://cache/x?a#b'), 'redis://cache/***?***#***');
  t.is(redactUrl('redis://cache#a?b'), 'redis://cache#***', 'a ? inside the fragment is no query');
  t.is(redactUrl('redis://cache?#'), 'redis://cache?***#***', 'empty ones too');
  t.is(redactUrl('http:u:secret@cache'), 'http://***@cache/', 'no //, read as the parser reads it');
});

test('redactUrl: text that is not a URL with a host, or has an @ past its host, shows its scheme alone', (t) => {
  t.is(redactUrl('redis://:PW1'), 'redis://***', 'the host forgotten: the password would be read as a port');
  t.is(redactUrl('redis://default:PW1'), 'redis://***');
  t.is(redactUrl('redis://:SECRETHEAD'), 'redis://***', 'a .env line cut at #');
  t.is(redactUrl('redis://u:p@/0'), 'redis://***', 'no host');
  t.is(redactUrl('redis:///0'), 'redis://***');
  t.is(redactUrl('redis://u:12/x@host'), 'redis://***', 'parsed as host u, port 12 and a path');
  t.is(redactUrl('redis://u:1#x@host'), 'redis://***', 'a fragment');
  t.is(redactUrl('redis://u:1?x@host/0'), 'redis://***', 'a query');
  t.is(redactUrl('redis://cache:6379/a:b@c'), 'redis://***', 'an @ past the host may end a password too');
  t.is(redactUrl('redis://u:p/a#b?c@host:6379/0'), 'redis://***', 'does not parse');
  t.is(redactUrl('http://u:a\\b@host'), 'http://***', 'a backslash ends the host of http');
  t.is(redactUrl('redis:cache'), '***', 'no //: not even the scheme, which may be a user');
  t.is(redactUrl('u:secret@cache:6379'), '***');
  t.is(redactUrl('http:u:secret'), '***');
  t.is(redactUrl('u:pa//ss@cache'), '***', 'a // inside the password is not a scheme');
  t.is(redactUrl('no url at all'), '***');
  t.is(redactUrl(''), '***');
});

/** Marker pieces of a password: none of them may appear in any message. */
const PASSWORD_PIECES = ['pwA1', 'pwB2', 'pwC3'];
/** What people put in passwords that URLs give a meaning to. */
const HOSTILE_SEPARATORS = [
  ':',
  '@',
  '/',
  '#',
  '?',
  '%',
  '%40',
  '%3A',
  '%2F',
  '%23',
  '%3F',
  '%25',
  '\\',
  '//',
  ':@',
  '@:',
  '/@#?',
];

test('a Redis password never shows in a REDIS_URL error, whatever it holds and however the URL is wrong', (t) => {
  let refused = 0;
  let accepted = 0;
  for (const separator of HOSTILE_SEPARATORS) {
    const password = PASSWORD_PIECES.join(separator);
    const urls = [
      // Where the user goes, alone.
      `redis://${password}@cache`,
      `redis://${password}@cache:6379/0`,
    ];
    for (const user of ['default', '']) {
      for (const [before, after] of [
        ['redis://', '@cache:6379/0'],
        ['rediss://', '@cache'],
        ['http://', '@cache:6379'],
        ['redis://', '@cache/db'],
        ['redis://', '@cache:http'],
        ['redis://', '@'],
        ['', '@cache:6379'],
        // The host forgotten, or cut off (an unquoted # in .env). With an @ in the password, what follows
        // its last @ reads as the host and is shown: no reading can tell it from one.
        ...(password.includes('@')
          ? []
          : [
              ['redis://', ''],
              ['rediss://', '/0'],
            ]),
        // In a query or fragment, which node-redis ignores.
        ['redis://cache:6379?password=', ''],
        ['redis://cache:6379/0?user=x&password=', '&db=1'],
        ['redis://cache#', ''],
      ]) {
        urls.push(`${before}${user}:${password}${after}`);
      }
    }
    for (const url of urls) {
      let shown: string;
      try {
        shown = redactUrl(loadConfig({ SESSION_STORE: 'redis', REDIS_URL: url }).redis!.url);
        accepted++;
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        t.true(error.message.startsWith('REDIS_URL="'), error.message);
        shown = error.message;
        refused++;
      }
      for (const piece of PASSWORD_PIECES) t.false(shown.includes(piece), `${url} shown as ${shown}`);
    }
  }
  t.true(refused > 0 && accepted > 0, `${refused} refused, ${accepted} accepted`);
});

test('timeouts that contradict each other: the message shows what the operator wrote, or the default', (t) => {
  t.is(loadConfig({ HTTP_HEADERS_TIMEOUT: '30s' }).http.requestTimeoutMs, 30_000, 'equal is fine');
  t.is(
    errorFor({ HTTP_HEADERS_TIMEOUT: '30001' }),
    'HTTP_REQUEST_TIMEOUT="30000ms, the default" is not allowed: at least HTTP_HEADERS_TIMEOUT (30001)',
  );
  t.is(
    errorFor({ HTTP_REQUEST_TIMEOUT: ' 9s ' }),
    'HTTP_REQUEST_TIMEOUT="9s" is not allowed: at least HTTP_HEADERS_TIMEOUT (10000ms, the default)',
  );
  t.is(loadConfig({ SHUTDOWN_DRAIN: '8999' }).http.shutdownDrainMs, 8_999, 'just under the timeout');
  t.is(
    errorFor({ SHUTDOWN_DRAIN: '9s' }),
    'SHUTDOWN_DRAIN="9s" is not allowed: less than SHUTDOWN_TIMEOUT (9000ms, the default)',
  );
  t.is(
    errorFor({ NODE_ENV: 'production', SHUTDOWN_TIMEOUT: '5s' }),
    'SHUTDOWN_DRAIN="5000ms, the default" is not allowed: less than SHUTDOWN_TIMEOUT (5s)',
  );
  t.is(
    errorFor({ SHUTDOWN_DRAIN: '10s', SHUTDOWN_TIMEOUT: '11s', HTTP_HEADERS_TIMEOUT: '1m' }).split('=')[0],
    'HTTP_REQUEST_TIMEOUT',
    'in order',
  );
});

test('the .env check: comments, blanks, export, CRLF, quoted values over several lines', (t) => {
  const text = [
    '  # indented comment',
    '   ',
    'export PORT=1',
    '  HOST = 0.0.0.0',
    'LOG_LEVEL="multi',
    'line NOT A SETTING',
    'value"  ',
    'BAD LINE',
    'SESSION_KEYS="one line"',
    'ANOTHER BAD',
  ].join('\r\n');
  t.deepEqual(checkEnvFile(text, SETTING_NAMES, 'my.env'), [
    // Node 20 reads a line of blanks, or a line without =, as the start of the next line's name.
    ...(JOINS_LINES
      ? [
          'my.env line 3: Node reads this line as part of a line above it, so PORT is not set: ' +
            'line 2 holds only blanks: empty it',
        ]
      : []),
    'my.env line 8 is not NAME=value and is ignored: "BAD ..."',
    ...(JOINS_LINES
      ? ['my.env line 9: Node reads this line as part of a line above it, so SESSION_KEYS is not set: fix line 8']
      : []),
    'my.env line 10 is not NAME=value and is ignored: "ANOTHER ..."',
  ]);
  t.deepEqual(
    checkEnvFile(`${'  x'.repeat(40)}  `, SETTING_NAMES),
    [`.env line 1 is not NAME=value and is ignored: "x ..."`],
    'trimmed, 60 characters',
  );
  t.deepEqual(checkEnvFile('1PORT=1\n=1\nexportPORT=1\n#PORT 1', SETTING_NAMES), [
    '.env line 1 is not NAME=value and is ignored: "1PORT ..."',
    '.env line 2 is not NAME=value and is ignored: "..."',
    ...(JOINS_LINES
      ? ['.env line 3: Node reads this line as part of a line above it, so exportPORT is not set: fix line 2']
      : []),
  ]);
  t.deepEqual(
    checkEnvFile('HOST = "multi\nline NOT A SETTING\nvalue"\nBAD LINE', SETTING_NAMES),
    ['.env line 4 is not NAME=value and is ignored: "BAD ..."'],
    'a quoted value after spaces round the = spans lines too (as Node reads it)',
  );
  t.deepEqual(
    checkEnvFile('LOG_LEVEL="multi\nline" # the end\nPROT=8200', SETTING_NAMES),
    ['.env line 3: PROT is not a setting of this app; did you mean PORT?'],
    'a quoted value ends at its closing quote even with a comment after it (as Node reads it)',
  );
  const oddExport = '.env line 1: write "export NAME=value" with a single space, or Node may read another name';
  t.deepEqual(
    checkEnvFile('export\tPORT=8200', SETTING_NAMES),
    [oddExport],
    'Node reads a variable named "export<tab>PORT"',
  );
  t.deepEqual(checkEnvFile('export  PORT=8200', SETTING_NAMES), [oddExport], 'Node 20 reads " PORT", Node 24 PORT');
  t.deepEqual(
    checkEnvFile('export PORT=8200\n  export SESSION_STORE=memory', SETTING_NAMES),
    [],
    'one space: as Node reads it',
  );
  t.deepEqual(
    checkEnvFile('HOST=export\tlocalhost\nLOG_LEVEL=export  info', SETTING_NAMES),
    [],
    'only an export at the start of a line counts',
  );
});

test('the .env check: unknown names get the closest setting within two edits, or a hint for our prefixes', (t) => {
  const names = ['SESSION_STORE', 'SESSION_STOKE_X', 'PORT'];
  t.deepEqual(checkEnvFile('PORT=1', names), [], 'known');
  t.deepEqual(
    checkEnvFile('port=1', names),
    ['.env line 1: port is not a setting of this app; did you mean PORT?'],
    'case aside',
  );
  t.deepEqual(
    checkEnvFile('POT=1', names),
    ['.env line 1: POT is not a setting of this app; did you mean PORT?'],
    'one deletion',
  );
  t.deepEqual(
    checkEnvFile('PORTTT=1', names),
    ['.env line 1: PORTTT is not a setting of this app; did you mean PORT?'],
    'two insertions',
  );
  t.deepEqual(
    checkEnvFile('PXRY=1', names),
    ['.env line 1: PXRY is not a setting of this app; did you mean PORT?'],
    'two substitutions',
  );
  t.deepEqual(checkEnvFile('PORTTTT=1', names), [], 'three edits: not a typo of ours');
  t.deepEqual(
    checkEnvFile('SESSION_STOKE=1', names),
    ['.env line 1: SESSION_STOKE is not a setting of this app; did you mean SESSION_STORE?'],
    'the closest',
  );
  t.deepEqual(checkEnvFile('SESSION_STOKE_=1', names), [
    '.env line 1: SESSION_STOKE_ is not a setting of this app; did you mean SESSION_STOKE_X?',
  ]);
  t.deepEqual(
    checkEnvFile('POST=1', ['PORT', 'HOST']),
    ['.env line 1: POST is not a setting of this app; did you mean PORT?'],
    'a tie: the first listed',
  );
  t.deepEqual(
    checkEnvFile('POST=1', ['HOST', 'PORT']),
    ['.env line 1: POST is not a setting of this app; did you mean HOST?'],
    'a tie: the first listed',
  );
  const ours = ['SESSION_COLOR', 'REDIS_DB', 'HTTP_PORT_NUMBER', 'LOG_FILE', 'SHUTDOWN_GRACE'];
  t.deepEqual(
    checkEnvFile(ours.map((name) => `${name}=1`).join('\n'), SETTING_NAMES),
    ours.map((name, index) => `.env line ${index + 1}: ${name} is not a setting of this app (see .env.example)`),
  );
  t.deepEqual(checkEnvFile('DATABASE_URL=x\nMY_SESSION_X=1\nsession_colour=1', SETTING_NAMES), [], 'not ours: no word');
});

test('readEnvironment: no file, no warnings; a file is loaded under the environment and checked', (t) => {
  const missing = readEnvironment(SETTING_NAMES, join(tmpdir(), 'koa-session-test-no-such-file.env'));
  t.is(missing.env, process.env);
  t.deepEqual(missing.warnings, []);
  const dir = mkdtempSync(join(tmpdir(), 'koa-session-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'test.env');
  const name = `CONFIG_EDGES_${process.pid}`;
  writeFileSync(file, `${name}=from-file\nSESION_STORE=redis\n`);
  const read = readEnvironment([...SETTING_NAMES, name], file);
  t.is(read.env, process.env);
  t.is(process.env[name], 'from-file');
  t.deepEqual(read.warnings, [
    `${file} line 2: SESION_STORE is not a setting of this app; did you mean SESSION_STORE?`,
  ]);
});

test('readEnvironment: a byte-order mark before the first line changes nothing', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'koa-session-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'bom.env');
  const first = `CONFIG_BOM_FIRST_${process.pid}`;
  const second = `CONFIG_BOM_SECOND_${process.pid}`;
  t.teardown(() => {
    delete process.env[first];
    delete process.env[second];
    delete process.env[`\uFEFF${first}`];
  });
  writeFileSync(file, `\uFEFF${first}=production\n${second}=2\nSESION_STORE=redis\n`);
  const read = readEnvironment([...SETTING_NAMES, first, second], file);
  t.is(process.env[first], 'production', 'the first line is read under its own name');
  t.is(process.env[`\uFEFF${first}`], undefined, 'not under a name that starts with the mark');
  t.is(process.env[second], '2');
  t.deepEqual(
    read.warnings,
    [`${file} line 3: SESION_STORE is not a setting of this app; did you mean SESSION_STORE?`],
    'checked too, lines counted as before',
  );
});

test('readEnvironment: what is set already wins over the file, even when empty, as with node --env-file', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'koa-session-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'test.env');
  const names = ['SET', 'EMPTY', 'UNSET'].map((name) => `CONFIG_EDGES_${name}_${process.pid}`);
  t.teardown(() => {
    for (const name of names) delete process.env[name];
  });
  const [set, empty, unset] = names;
  process.env[set] = 'from-environment';
  process.env[empty] = '';
  writeFileSync(file, names.map((name) => `${name}=from-file`).join('\n'));
  readEnvironment(names, file);
  t.is(process.env[set], 'from-environment');
  t.is(process.env[empty], '');
  t.is(process.env[unset], 'from-file');
});

test('readEnvironment: a .env that exists but cannot be read stops start-up with one line naming it and why', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'koa-session-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const folder = join(dir, 'folder.env');
  mkdirSync(folder);
  const error = t.throws(() => readEnvironment(SETTING_NAMES, folder), { instanceOf: StartupError });
  t.is(error?.message, `${folder} cannot be read (EISDIR: it is a folder, not a file)`);
  t.is(error?.variable, folder);
  const loop = join(dir, 'loop.env');
  symlinkSync(loop, loop);
  t.throws(() => readEnvironment(SETTING_NAMES, loop), {
    instanceOf: StartupError,
    message: `${loop} cannot be read (ELOOP: a symbolic link that leads back to itself)`,
  });
  const dangling = join(dir, 'dangling.env');
  symlinkSync(join(dir, 'nothing-here'), dangling);
  t.throws(() => readEnvironment(SETTING_NAMES, dangling), {
    instanceOf: StartupError,
    message: `${dangling} cannot be read (a symbolic link to ${join(dir, 'nothing-here')}, which does not exist)`,
  });
});

test('readEnvironment without a file name reads .env in the working directory', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'koa-session-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, '.env'), 'PORT=8321\nPROT=1\n');
  // A fresh process started in that directory (the module's own file, so a mutated copy in a sandbox too).
  const environmentUrl = new URL('../config/environment.ts', import.meta.url).href;
  const script = [
    `import { readEnvironment } from ${JSON.stringify(environmentUrl)};`,
    "const { warnings } = readEnvironment(['PORT']);",
    'console.log(JSON.stringify({ port: process.env.PORT ?? null, warnings }));',
  ].join('\n');
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== 'PORT'));
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [`--import=${import.meta.resolve('tsx')}`, '--input-type=module', '--eval', script],
    {
      cwd: dir,
      env,
      timeout: 20_000,
    },
  );
  t.deepEqual(JSON.parse(stdout), {
    port: '8321',
    warnings: ['.env line 2: PROT is not a setting of this app; did you mean PORT?'],
  });
});

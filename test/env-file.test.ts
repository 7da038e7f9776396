/**
 * The .env file as Node's parser reads it (util.parseEnv, the truth for every value): what would lose a
 * setting, or cut it short, without a word gets a warning naming its line (a name with an unseen
 * character, an unquoted #, a quote never closed or closed too late, old Mac line ends, bytes that are
 * not UTF-8, lines Node reads together); a file Node cannot read as text (UTF-16) or a link to nothing
 * stops start-up with one line. Each premise ("Node drops this") is asserted too, on the Node that runs.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEnv } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { checkEnvFile, readEnvironment, SETTING_NAMES, StartupError } from '../config/index.ts';
import { TEST_KEY } from './helpers/app.ts';
import { killOnTeardown, logLines, runToExit, startServerProcess } from './helpers/process.ts';

const check = (text: string) => checkEnvFile(text, SETTING_NAMES);

/** A temp folder of the test's own, removed at its end. */
function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'koa-session-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Names of this test's own in process.env (readEnvironment loads the file there), deleted at its end. */
function ownNames(t: ExecutionContext, ...names: string[]): string[] {
  const own = names.map((name) => `ENV_FILE_${name}_${process.pid}`);
  t.teardown(() => {
    for (const name of Object.keys(process.env)) if (own.some((mine) => name.includes(mine))) delete process.env[name];
  });
  return own;
}

test('a name with an unseen or non-ASCII character round it is named with its line: Node reads another name', (t) => {
  const text = [
    'PORT=1',
    '\u00a0NODE_ENV=production',
    'NODE_ENV\u00a0=production',
    '\uFEFFSESSION_STORE=redis',
    '\u3000HOST=0.0.0.0',
    'LOG_LEVEL\u200B=debug',
    'NODE\u00a0ENV=production',
    'SESSION_MAX_AGE=1m',
  ].join('\n');
  const read = parseEnv(text);
  for (const name of ['NODE_ENV', 'SESSION_STORE', 'HOST', 'LOG_LEVEL']) t.false(name in read, `Node drops ${name}`);
  t.is(read['\u00a0NODE_ENV'], 'production', 'Node keeps the no-break space in the name');
  const unseen = (line: number, asRead: string, name: string) =>
    `.env line ${line}: Node reads the name as "${asRead}" (with an unseen or non-ASCII character), not ${name}, ` +
    `so ${name} is not set: retype the name`;
  t.deepEqual(check(text), [
    unseen(2, '\\u00a0NODE_ENV', 'NODE_ENV'),
    unseen(3, 'NODE_ENV\\u00a0', 'NODE_ENV'),
    unseen(4, '\\ufeffSESSION_STORE', 'SESSION_STORE'),
    unseen(5, '\\u3000HOST', 'HOST'),
    unseen(6, 'LOG_LEVEL\\u200b', 'LOG_LEVEL'),
    '.env line 7 is not NAME=value and is ignored: "NODE\\u00a0ENV ..."',
  ]);
  // A tab: Node 20 keeps it in the name, Node 22 and later trim it; the warning follows what this Node does.
  const tabKept = Object.hasOwn(parseEnv('\tPORT=1\nHOST\t=x\n'), '\tPORT');
  t.deepEqual(check('\tPORT=1\nHOST\t=x'), tabKept ? [unseen(1, '\\tPORT', 'PORT'), unseen(2, 'HOST\\t', 'HOST')] : []);
});

test('readEnvironment: a name Node reads with a no-break space is not set under the name meant, and is named', (t) => {
  const dir = tempDir(t);
  const [name, other] = ownNames(t, 'NBSP', 'OTHER');
  const file = join(dir, 'nbsp.env');
  writeFileSync(file, `\u00a0${name}=production\n${other}=2\n`);
  const { warnings } = readEnvironment([...SETTING_NAMES, name, other], file);
  t.is(process.env[name], undefined, 'Node did not set it (the premise)');
  t.is(process.env[other], '2');
  t.deepEqual(warnings, [
    `${file} line 1: Node reads the name as "\\u00a0${name}" (with an unseen or non-ASCII character), not ${name}, ` +
      `so ${name} is not set: retype the name`,
  ]);
});

test('an unquoted value with a # in it is cut there: a warning showing no value; a comment after a blank is none', (t) => {
  const key = `${'k'.repeat(32)}#${'x'.repeat(10)}`;
  t.is(parseEnv(`SESSION_KEYS=${key}\n`).SESSION_KEYS, 'k'.repeat(32), 'Node cuts it (the premise)');
  const cut = (line: number, name: string) =>
    `.env line ${line}: the value of ${name} is cut at # (Node reads the rest as a comment): quote it`;
  const text = [
    `SESSION_KEYS=${key}`,
    'PORT=8200 # the port',
    'HOST=0.0.0.0\t# a tab before it',
    'LOG_LEVEL=#info',
    'SESSION_COOKIE_NAME="a#b"',
    "SESSION_HEADER='X#Y'",
    'SESSION_STORE=memory # a#b, in the comment',
    'REDIS_URL=redis://:SECRETHEAD#TAIL@cache',
    'REDIS_KEY_PREFIX= #nothing but a comment',
    'export SESSION_MAX_AGE=1m#x',
  ].join('\n');
  const warnings = check(text);
  t.deepEqual(warnings, [cut(1, 'SESSION_KEYS'), cut(4, 'LOG_LEVEL'), cut(8, 'REDIS_URL'), cut(10, 'SESSION_MAX_AGE')]);
  for (const secret of ['kkkk', 'xxxx', 'SECRETHEAD', 'TAIL']) t.false(warnings.join('\n').includes(secret), secret);
});

test('the server started in production with a SESSION_KEYS cut at # says so at start, without the key', async (t) => {
  const key = `${'k'.repeat(32)}#${'x'.repeat(10)}`;
  const server = await startServerProcess(
    { NODE_ENV: 'production', LOG_FORMAT: 'json' },
    { dotEnv: `SESSION_KEYS=${key}\n` },
  );
  killOnTeardown(t, server);
  const warnings = logLines(server)
    .filter((line) => line.level === 'warn')
    .map((line) => line.msg);
  t.deepEqual(warnings, [
    '.env line 1: the value of SESSION_KEYS is cut at # (Node reads the rest as a comment): quote it',
  ]);
  t.false(server.stdout().includes('kkkk') || server.stderr().includes('kkkk'), 'the key is not shown');
});

test('a REDIS_URL in .env cut at an unquoted # stops start-up showing no part of the password', async (t) => {
  const server = await runToExit(
    { SESSION_KEYS: TEST_KEY, SESSION_STORE: 'redis' },
    { dotEnv: 'REDIS_URL=redis://:SECRETHEAD#TAIL@cache:6379\n' },
  );
  t.not(server.code, 0);
  t.is(
    server.stderr(),
    'Cannot start: REDIS_URL="redis://***" is not allowed: a URL like redis://[user:password@]host[:port][/db] ' +
      'or rediss://… for TLS (in the password, write / ? # % as %2F %3F %23 %25)\n',
  );
  t.is(server.stdout(), '');
});

test('a quote never closed is named, and the lines after it are still checked; for each of the three quotes', (t) => {
  for (const quote of ['"', "'", '`']) {
    const text = `LOG_LEVEL=${quote}info\nPROT=8200\nSESSION_STORE=memory\n`;
    t.is(parseEnv(text).PROT, '8200', 'Node reads the lines after it (the premise)');
    t.deepEqual(
      check(text),
      [
        `.env line 1: the ${quote} that opens the value of LOG_LEVEL is never closed: close it`,
        '.env line 2: PROT is not a setting of this app; did you mean PORT?',
      ],
      quote,
    );
  }
  t.deepEqual(check('SESSION_STORE=memory\nLOG_LEVEL="info'), [
    '.env line 2: the " that opens the value of LOG_LEVEL is never closed: close it',
  ]);
});

test('a quoted value spans lines, with \' and ` as with "; one that takes in a setting is named', (t) => {
  for (const quote of ['"', "'", '`']) {
    const text = `SESSION_KEYS=${quote}${TEST_KEY}\nsecond line of it${quote}\nPORT=1\nPROT=2`;
    t.is(parseEnv(text).SESSION_KEYS, `${TEST_KEY}\nsecond line of it`, 'Node reads two lines (the premise)');
    t.deepEqual(check(text), ['.env line 4: PROT is not a setting of this app; did you mean PORT?'], quote);
  }
  const pem = 'TLS_KEY="-----BEGIN KEY-----\nMIIB=\ndGVzdA==\nAB_CD\n-----END KEY-----"\nPORT=1';
  t.deepEqual(check(pem), [], 'lines of base64 inside are no settings');

  const forgotten = 'LOG_LEVEL="info\nPORT=8200\nHOST="0.0.0.0"\nSESSION_STORE=memory';
  t.false('PORT' in parseEnv(forgotten) || 'HOST' in parseEnv(forgotten), 'Node reads them into LOG_LEVEL');
  t.deepEqual(check(forgotten), [
    '.env line 1: the " that opens the value of LOG_LEVEL closes only 2 line(s) below, so the value takes in the ' +
      'line that sets PORT: close the quote on this line',
  ]);
  t.deepEqual(check("APP_NOTE='one\nMY_OWN_SETTING=2'"), [
    ".env line 1: the ' that opens the value of APP_NOTE closes only 1 line(s) below, so the value takes in the " +
      'line that sets MY_OWN_SETTING: close the quote on this line',
  ]);
});

test('text after a closing quote, which Node drops, is named; a comment there is fine', (t) => {
  t.is(parseEnv('SESSION_KEYS="k1","k2"').SESSION_KEYS, 'k1', 'the premise');
  t.deepEqual(check('SESSION_KEYS="k1","k2"\nLOG_LEVEL="info" # a comment\nHOST="x"  '), [
    '.env line 1: the text after the closing " of SESSION_KEYS is ignored: put it inside the quotes',
  ]);
});

test('line ends of a carriage return alone (old Mac) give one warning, not one per line; CRLF none', (t) => {
  const text = 'PORT=8200\rHOST=0.0.0.0\rLOG_LEVEL=debug\rPROT=1\r';
  t.is(parseEnv(text).PORT, '8200HOST=0.0.0.0LOG_LEVEL=debugPROT=1', 'Node reads one line (the premise)');
  t.deepEqual(check(text), [
    '.env line 1 ends in a carriage return alone (old Mac line ends): Node sees no line end there and runs the ' +
      'lines after it into this one; save the file with LF line ends',
  ]);
  t.deepEqual(check('PORT=8200\r\nHOST=0.0.0.0\r\n'), []);
  t.deepEqual(check('PORT=8200\nHOST=0.0.0.0\rLOG_LEVEL=debug\n'), [
    '.env line 2 ends in a carriage return alone (old Mac line ends): Node sees no line end there and runs the ' +
      'lines after it into this one; save the file with LF line ends',
  ]);
});

test('lines this Node reads together are named: what a line sets on its own must hold in the whole file', (t) => {
  // Node 20 reads a line without =, or of blanks alone, as the start of the next line's name; Node 22
  // and later run a value of blanks alone on into the next line. Whichever this Node does is named.
  const cases = [
    {
      text: 'PORT 8200\nSESSION_STORE=redis',
      lost: 'SESSION_STORE',
      warnings: [
        '.env line 1 is not NAME=value and is ignored: "PORT ..."',
        '.env line 2: Node reads this line as part of a line above it, so SESSION_STORE is not set: fix line 1',
      ],
    },
    {
      text: 'LOG_LEVEL=info\n  \n\nSESSION_STORE=redis',
      lost: 'SESSION_STORE',
      warnings: [
        '.env line 4: Node reads this line as part of a line above it, so SESSION_STORE is not set: ' +
          'line 2 holds only blanks: empty it',
      ],
    },
    {
      text: 'SESSION_MAX_LIFETIME=  \nSESSION_STORE=redis',
      lost: 'SESSION_STORE',
      warnings: [
        '.env line 1: Node reads the value of SESSION_MAX_LIFETIME on past the end of this line: ' +
          'the value is blanks alone: delete them',
        '.env line 2: Node reads this line as part of a line above it, so SESSION_STORE is not set: fix line 1',
      ],
    },
  ];
  let seen = 0;
  for (const { text, lost, warnings } of cases) {
    const dropped = !Object.hasOwn(parseEnv(text), lost);
    const own = warnings.filter((warning) => !/Node reads (this line|the value)/.test(warning));
    t.deepEqual(check(text), dropped ? warnings : own, text);
    if (dropped) seen++;
  }
  t.true(seen > 0, 'this Node reads at least one of them together (every line of Node so far does)');
});

test('a UTF-16 .env, or one with NUL bytes, stops start-up with one line, not a warning per line', (t) => {
  const dir = tempDir(t);
  const text = '\uFEFFPORT=8200\nSESSION_STORE=redis\n';
  const little = join(dir, 'utf16le.env');
  writeFileSync(little, Buffer.from(text, 'utf16le'));
  t.throws(() => readEnvironment(SETTING_NAMES, little), {
    instanceOf: StartupError,
    message: `${little} is UTF-16; save it as UTF-8`,
  });
  const big = join(dir, 'utf16be.env');
  writeFileSync(big, Buffer.from(text, 'utf16le').swap16());
  t.throws(() => readEnvironment(SETTING_NAMES, big), { message: `${big} is UTF-16; save it as UTF-8` });
  const noMark = join(dir, 'nul.env');
  writeFileSync(noMark, Buffer.from('PORT=8200\n', 'utf16le'));
  const error = t.throws(() => readEnvironment(SETTING_NAMES, noMark), { instanceOf: StartupError });
  t.is(error?.message, `${noMark} holds NUL bytes (UTF-16 without a byte-order mark?); save it as UTF-8`);
  t.is(error?.variable, noMark);
});

test('the server stops on a .env of UTF-16 without a byte-order mark, with one line', async (t) => {
  // What spawnServer writes is UTF-8, so ASCII with a NUL after each character is UTF-16LE.
  const server = await runToExit(
    { SESSION_KEYS: TEST_KEY },
    { dotEnv: [...'PORT=8200\n'].map((c) => `${c}\0`).join('') },
  );
  t.not(server.code, 0);
  t.is(server.stderr(), 'Cannot start: .env holds NUL bytes (UTF-16 without a byte-order mark?); save it as UTF-8\n');
  t.is(server.stdout(), '');
});

test('bytes that are not UTF-8 give one warning naming the first line that holds them', (t) => {
  const dir = tempDir(t);
  const [first, second, third] = ownNames(t, 'ONE', 'TWO', 'THREE');
  const file = join(dir, 'latin1.env');
  writeFileSync(file, Buffer.from(`${first}=1\n${second}=caf\xe9\n${third}=na\xefve\n`, 'latin1'));
  const { warnings } = readEnvironment([...SETTING_NAMES, first, second, third], file);
  t.deepEqual(warnings, [
    `${file} line 2 is not UTF-8 (another encoding, Latin-1 say): Node reads each byte it cannot decode as ` +
      'U+FFFD; save the file as UTF-8',
  ]);
  t.is(process.env[second], 'caf\uFFFD');
  t.is(process.env[first], '1');
});

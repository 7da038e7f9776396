/**
 * Hostile requests over real HTTP against a real server (the app on the same HTTP server app/server.ts
 * builds, in this process so that its store can be inspected): odd methods, paths, query strings and
 * Cookie headers (garbage, huge, repeated, wrongly signed, ids that look like object properties).
 *
 * Checked through the store, not only through what the answers say: after every request the store
 * holds only ids the server handed out in a Set-Cookie (an adopted id needs no cookie to be sent), no id
 * a client offered, and a /read shows exactly the data of the session its genuine cookie names, or {}.
 * The cases that matter most (each genuine cookie with one character changed, correctly signed cookies
 * for unknown ids) are sent every run, after the genuine cookie was verified once (so the verified-cookie
 * cache is full), before the random ones (fast-check). FC_RUNS=5000 for a longer random run.
 */
import { createHmac } from 'node:crypto';
import { Agent, request } from 'node:http';
import test from 'ava';
import fc from 'fast-check';
import type { MemoryStore } from '../app/stores/memory.ts';
import { appForTest, TEST_KEY } from './helpers/app.ts';
import { Browser } from './helpers/browser.ts';
import { storeKeyOf } from './helpers/store-key.ts';

const RUNS = Number(process.env.FC_RUNS ?? 0) || 300;
const TTL_MS = 60_000;

interface Reply {
  readonly status: number;
  readonly body: string;
  readonly setCookies: readonly string[];
}

function send(agent: Agent, base: URL, method: string, path: string, cookie: string | undefined): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      { agent, host: base.hostname, port: base.port, method, path, headers: cookie === undefined ? {} : { cookie } },
      (res) => {
        let body = '';
        res.setEncoding('latin1').on('data', (chunk: string) => (body += chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body, setCookies: res.headers['set-cookie'] ?? [] }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** The `sid` value the server reads from a Cookie header: the first one, as the `cookies` package finds it. */
function sidTheServerReads(header: string | undefined): string | undefined {
  const value = header === undefined ? undefined : /(?:^|;) *sid=([^;]*)/.exec(header)?.[1];
  return value?.startsWith('"') ? value.slice(1, -1) : value;
}

/** The ids of every `sid` a Set-Cookie list sets (clearing cookies have none). */
function idsSetIn(setCookies: readonly string[]): string[] {
  return setCookies
    .map((line) => /^sid=([^.;]*)/.exec(line)?.[1])
    .filter((id): id is string => id !== undefined && id !== '');
}

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-';
const printable = fc
  .integer({ min: 0x20, max: 0xff })
  .filter((code) => code !== 0x7f)
  .map((code) => String.fromCharCode(code));
const garbage = fc.string({ unit: printable, maxLength: 200 });
const OBJECT_PROPERTY_IDS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  '__proto__AAAAAAAAAAAA',
  'constructorAAAAAAAAAA',
];
const idLike = fc.oneof(fc.constantFrom(...OBJECT_PROPERTY_IDS), fc.stringMatching(/^[A-Za-z0-9_-]{21}$/));
const signedWith = (key: string, id: string) => {
  const payload = `${id}.${Date.now().toString(36)}`;
  return `${payload}.${createHmac('sha256', key).update(`sid=${payload}`).digest('base64url')}`;
};

test('hostile requests: no 5xx, no foreign id adopted or stored, no session shown but through its own cookie', async (t) => {
  const app = await appForTest(t, { LOG_LEVEL: 'warn', SESSION_MAX_ENTRIES: '1000' });
  const store = app.store as MemoryStore;
  const base = new URL(app.url);
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  t.teardown(() => agent.destroy());

  /** Every id the server has handed out in a Set-Cookie. */
  const issued = new Set<string>();
  /** Their store keys: what the store holds (helpers/store-key.ts). */
  const issuedKeys = new Set<string>();
  // A few genuine sessions, each with data of its own (put in the store: no request writes it), so that
  // an answer shows whose data it is. Each cookie is verified once (/read) before anything hostile is sent.
  const genuineData = (index: number) => ({ value: `genuine ${index + 1}` });
  const genuine: string[] = [];
  for (let i = 0; i < 5; i++) {
    const reply = await send(agent, base, 'GET', '/write', undefined);
    const value = /^sid=([^;]+)/.exec(reply.setCookies[0])![1];
    const id = value.split('.')[0];
    issued.add(id);
    issuedKeys.add(storeKeyOf(app, id));
    genuine.push(value);
    t.true(await store.update(storeKeyOf(app, id), JSON.stringify({ ...genuineData(i), _session: true }), TTL_MS));
    t.is((await send(agent, base, 'GET', '/read', `sid=${value}`)).body, JSON.stringify(genuineData(i)));
  }
  const genuineIds = new Set(genuine.map((value) => value.split('.')[0]));

  /** What a /read must show for this Cookie header: the data of the live session its genuine cookie names, or {}. */
  async function expectedGet(cookie: string | undefined): Promise<string> {
    const value = sidTheServerReads(cookie);
    if (value === undefined || !genuine.includes(value)) return '{}';
    const text = await store.get(storeKeyOf(app, value.split('.')[0]), TTL_MS);
    if (text === undefined) return '{}';
    const { _session, ...data } = JSON.parse(text) as Record<string, unknown>;
    return JSON.stringify(data);
  }

  /** One request, and every check that holds for any request; returns the reply for more. */
  async function check(verb: string, target: string, cookie: string | undefined): Promise<Reply> {
    const label = `${verb} ${target} with ${JSON.stringify(cookie?.slice(0, 100))}`;
    const expected = await expectedGet(cookie);
    const reply = await send(agent, base, verb, target, cookie);
    t.true(reply.status < 500, `${label} answered ${reply.status}`);
    const offered = new Set([...(cookie ?? '').matchAll(/sid=([^.;]*)/g)].map((match) => match[1]));
    for (const id of idsSetIn(reply.setCookies)) {
      t.false(offered.has(id) && !genuineIds.has(id), `${label}: adopted the offered id ${id}`);
      issued.add(id);
      issuedKeys.add(storeKeyOf(app, id));
    }
    // Through the store: every stored id was handed out in a cookie; none a client made up.
    const { probation, protected: kept } = store.segments();
    const unknown = [...probation, ...kept].filter((key) => !issuedKeys.has(key));
    t.deepEqual(unknown, [], `${label}: the store holds ids no cookie handed out`);
    if (verb !== 'HEAD' && reply.status === 200 && /^\/read(\?|$)/.test(target)) {
      t.is(reply.body, expected, `${label}: /read shows exactly the session its own genuine cookie names`);
    } else if (/"value":/.test(reply.body)) {
      t.is(reply.body, expected, `${label}: session data only through its own genuine cookie`);
    }
    return reply;
  }

  // --- Certain every run: each genuine cookie with one character changed, anywhere in it. ---
  for (const value of genuine.slice(0, 2)) {
    const id = value.split('.')[0];
    const storedBefore = await store.get(storeKeyOf(app, id), TTL_MS);
    for (let at = 0; at < value.length; at++) {
      // Another character of the cookie's own alphabet (a dot becomes a letter): still well-formed but for the change.
      const replacement =
        ID_ALPHABET[(ID_ALPHABET.indexOf(value[at]) + 1 + (at % (ID_ALPHABET.length - 1))) % ID_ALPHABET.length];
      const mangled = value.slice(0, at) + replacement + value.slice(at + 1);
      t.not(mangled, value);
      const read = await check('GET', '/read', `sid=${mangled}`);
      t.is(read.body, '{}', `one character changed at ${at}: no session`);
      t.deepEqual(read.setCookies, [], `one character changed at ${at}: /read sends no cookie`);
      const write = await check('GET', '/write', `sid=${mangled}`);
      const [newId] = idsSetIn(write.setCookies);
      t.truthy(newId, `one character changed at ${at}: /write starts a new session, with a cookie`);
      t.not(newId, id);
      t.truthy(await store.get(storeKeyOf(app, newId), TTL_MS), 'the new session is in the store');
    }
    t.is(await store.get(storeKeyOf(app, id), TTL_MS), storedBefore, "the genuine session's data was never touched");
    t.is(
      (await check('GET', '/read', `sid=${value}`)).body,
      JSON.stringify(genuineData(genuine.indexOf(value))),
      'and its own cookie still opens it',
    );
  }
  // --- Certain every run: correctly signed cookies for ids the server never issued. ---
  for (const id of [
    ...OBJECT_PROPERTY_IDS.filter((candidate) => candidate.length === 21),
    'AAAAAAAAAAAAAAAAAAAAA',
    // a genuine id with its first character changed (to Z, or to Y when it was Z: the same id is no forgery)
    genuine[0].split('.')[0].replace(/^./, (first) => (first === 'Z' ? 'Y' : 'Z')),
  ]) {
    const forged = signedWith(TEST_KEY, id);
    t.is((await check('GET', '/read', `sid=${forged}`)).body, '{}', `${id}: no session`);
    const write = await check('GET', '/write', `sid=${forged}`);
    t.truthy(idsSetIn(write.setCookies)[0], `${id}: /write starts a new session, with a cookie`);
    t.is(await store.get(storeKeyOf(app, id), TTL_MS), undefined, `${id}: nothing stored under the forged id`);
  }

  // --- Random hostile requests. ---
  const sidValue = fc.oneof(
    garbage,
    idLike,
    fc.constantFrom(...genuine),
    fc
      .tuple(fc.constantFrom(...genuine), fc.nat({ max: 73 }), printable)
      .map(([value, at, char]) => value.slice(0, at) + char + value.slice(at + 1)),
    idLike.map((id) => signedWith('an-attacker-key-0123456789abcdefghijklm', id)),
    idLike.map((id) => signedWith(TEST_KEY, id)), // correctly signed, but an id the server never issued
    fc.integer({ min: 1_000, max: 12_000 }).map((length) => 'x'.repeat(length)),
  );
  const cookieHeader = fc.option(
    fc.oneof(
      sidValue.map((value) => `sid=${value}`),
      fc
        .array(sidValue, { minLength: 2, maxLength: 4 })
        .map((values) => values.map((value) => `sid=${value}`).join('; ')),
      fc.tuple(garbage, sidValue).map(([other, value]) => `${other}; sid=${value}`),
      garbage,
    ),
    { nil: undefined },
  );
  const method = fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD', 'TRACE', 'PURGE', 'FOO');
  const path = fc
    .tuple(
      fc.oneof(
        fc.constantFrom(
          '/write',
          '/read',
          '/end',
          '/save',
          '/login',
          '/regenerate',
          '/healthz',
          '/',
          '//read',
          '/read/',
          '/READ',
          '/%00',
          '/%ZZ',
          '/..%2fread',
          '/read%20',
        ),
        fc.webPath().filter((p) => p.startsWith('/')),
      ),
      fc.option(fc.webQueryParameters(), { nil: undefined }),
    )
    .map(([p, query]) => (query === undefined ? p : `${p}?${query}`));

  await fc.assert(
    fc.asyncProperty(method, path, cookieHeader, async (verb, target, cookie) => {
      const reply = await check(verb, target, cookie);
      return reply.status < 500;
    }),
    { numRuns: RUNS },
  );

  t.deepEqual(
    app.logs.filter((line) => line.level === 'error'),
    [],
    'no error was logged',
  );
  const browser = new Browser(app.url);
  t.is((await browser.request('/write?value=afterwards')).body, 'ok');
  t.deepEqual(await browser.json('/read'), { value: 'afterwards' }, 'and answers normally afterwards');
});

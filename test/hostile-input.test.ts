/**
 * Random hostile requests against the real server process (fast-check): odd methods, paths, query
 * strings and Cookie headers (garbage, huge, repeated, wrongly signed, ids that look like object
 * properties). Never a 5xx, never a crash, never a session id adopted that the server did not issue,
 * and the server answers normally afterwards. FC_RUNS=5000 for a longer run.
 */
import { createHmac } from 'node:crypto';
import { Agent, request } from 'node:http';
import test from 'ava';
import fc from 'fast-check';
import { TEST_KEY } from './helpers/app.ts';
import { Browser } from './helpers/browser.ts';
import { startServerProcess } from './helpers/process.ts';

const RUNS = Number(process.env.FC_RUNS ?? 0) || 300;

interface Reply {
  readonly status: number;
  readonly body: string;
  readonly setCookies: readonly string[];
}

function send(agent: Agent, base: URL, method: string, path: string, cookie: string | undefined): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ agent, host: base.hostname, port: base.port, method, path, headers: cookie === undefined ? {} : { cookie } }, (res) => {
      let body = '';
      res.setEncoding('latin1').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, setCookies: res.headers['set-cookie'] ?? [] }));
    });
    req.on('error', reject);
    req.end();
  });
}

const printable = fc
  .integer({ min: 0x20, max: 0xff })
  .filter((code) => code !== 0x7f)
  .map((code) => String.fromCharCode(code));
const garbage = fc.string({ unit: printable, maxLength: 200 });
const idLike = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '__proto__AAAAAAAAAAAA', 'constructorAAAAAAAAAA'),
  fc.stringMatching(/^[A-Za-z0-9_-]{21}$/),
);

test('random hostile requests: no 5xx, no crash, no foreign session id adopted', async (t) => {
  const server = await startServerProcess({ SESSION_KEYS: TEST_KEY, LOG_LEVEL: 'warn', SESSION_MAX_ENTRIES: '1000' });
  t.teardown(() => server.child.kill('SIGKILL'));
  const base = new URL(server.url);
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  t.teardown(() => agent.destroy());

  // A few genuine sessions, whose cookies the generator mixes in and mangles.
  const issued = new Set<string>();
  const genuine: string[] = [];
  for (let i = 0; i < 5; i++) {
    const reply = await send(agent, base, 'GET', '/set', undefined);
    const value = /^sid=([^;]+)/.exec(reply.setCookies[0])![1];
    genuine.push(value);
    issued.add(value.split('.')[0]);
  }
  const signedWith = (key: string, id: string) => {
    const payload = `${id}.${Date.now().toString(36)}`;
    return `${payload}.${createHmac('sha256', key).update(`sid=${payload}`).digest('base64url')}`;
  };
  const sidValue = fc.oneof(
    garbage,
    idLike,
    fc.constantFrom(...genuine),
    fc.tuple(fc.constantFrom(...genuine), fc.nat({ max: 70 }), printable).map(([value, at, char]) => value.slice(0, at) + char + value.slice(at + 1)),
    idLike.map((id) => signedWith('an-attacker-key-0123456789abcdefghijklm', id)),
    idLike.map((id) => signedWith(TEST_KEY, id)), // correctly signed, but an id the server never issued
    fc.integer({ min: 1_000, max: 12_000 }).map((length) => 'x'.repeat(length)),
  );
  const cookieHeader = fc.option(
    fc.oneof(
      sidValue.map((value) => `sid=${value}`),
      fc.array(sidValue, { minLength: 2, maxLength: 4 }).map((values) => values.map((value) => `sid=${value}`).join('; ')),
      fc.tuple(garbage, sidValue).map(([other, value]) => `${other}; sid=${value}`),
      garbage,
    ),
    { nil: undefined },
  );
  const method = fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD', 'TRACE', 'PURGE', 'FOO');
  const path = fc
    .tuple(
      fc.oneof(
        fc.constantFrom('/set', '/get', '/del', '/healthz', '/', '//get', '/get/', '/GET', '/%00', '/%ZZ', '/..%2fget', '/get%20'),
        fc.webPath().filter((p) => p.startsWith('/')),
      ),
      fc.option(fc.webQueryParameters(), { nil: undefined }),
    )
    .map(([p, query]) => (query === undefined ? p : `${p}?${query}`));

  await fc.assert(
    fc.asyncProperty(method, path, cookieHeader, async (verb, target, cookie) => {
      const reply = await send(agent, base, verb, target, cookie);
      t.true(reply.status < 500, `${verb} ${target} with ${JSON.stringify(cookie?.slice(0, 80))} answered ${reply.status}`);
      for (const line of reply.setCookies) {
        const id = /^sid=([^.;]*)/.exec(line)?.[1];
        if (id) issued.add(id); // every id the server hands out
      }
      const offeredIds = [...(cookie ?? '').matchAll(/sid=([^.;]*)/g)].map((match) => match[1]);
      for (const line of reply.setCookies) {
        const id = /^sid=([^.;]*)/.exec(line)?.[1];
        if (id)
          t.false(
            offeredIds.some((offered) => offered === id && !genuine.some((value) => value.startsWith(`${id}.`))),
            `adopted ${id}`,
          );
      }
      if (verb !== 'HEAD' && /^\/get(\?|$)/.test(target) && reply.status === 200 && reply.body !== '{}') {
        // Data can only come from a session the server issued, reached through its genuine cookie.
        t.true(
          genuine.some((value) => cookie?.includes(`sid=${value}`)),
          `data for ${JSON.stringify(cookie)}`,
        );
      }
      return reply.status < 500;
    }),
    { numRuns: RUNS },
  );

  t.is(server.child.exitCode, null, 'the server is still running');
  const browser = new Browser(server.url);
  t.is((await browser.request('/set')).body, 'ok');
  t.deepEqual(Object.keys(await browser.json('/get')), ['time'], 'and answers normally afterwards');
});

/**
 * What operators rely on: /healthz, request logs, the error boundary (store outages and bugs, over
 * real HTTP, with what is logged), and slow clients being cut off.
 */

import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type Router from '@koa/router';
import test from 'ava';
import type { SessionMiddleware } from '../app/session/middleware.ts';
import type { MemoryStore } from '../app/stores/memory.ts';
import { type SessionStore, StoreUnavailableError } from '../app/stores/store.ts';
import { appForTest, type RunningApp, TEST_KEY } from './helpers/app.ts';
import { Browser, cookieValue } from './helpers/browser.ts';
import { addTestRoutes } from './helpers/routes.ts';

/** The memory store's counters: any read, write or eviction of a session changes one of them. */
function storeCounters(app: RunningApp) {
  const store = app.store as MemoryStore;
  return { ...store.stats, size: store.size, ...store.segments() };
}

test('/healthz reports the store and never touches a session', async (t) => {
  const app = await appForTest(t);
  const browser = new Browser(app.url);
  await browser.request('/write');
  const before = storeCounters(app);
  const health = await new Browser(app.url).request('/healthz');
  t.is(health.status, 200);
  t.deepEqual(health.setCookies, [], 'no cookie');
  const body = JSON.parse(health.body);
  t.like(body, { status: 'ok', store: { kind: 'memory', ok: true, sessions: 1 } });
  t.true(body.process.rssBytes > 0 && body.process.heapUsedBytes > 0);
  t.is(typeof body.process.eventLoopDelayP99Ms, 'number');
  for (let i = 0; i < 3; i++) {
    const withCookie = await new Browser(app.url).request('/healthz', { headers: { cookie: browser.cookieHeader! } });
    t.is(withCookie.status, 200);
    t.deepEqual(withCookie.setCookies, [], 'no cookie, even for a request that carries one');
  }
  t.deepEqual(
    storeCounters(app),
    before,
    'health checks, even with a session cookie, neither read, write nor add a session',
  );
});

test('a method /healthz does not take is 405 with Allow, not 404', async (t) => {
  const app = await appForTest(t);
  for (const method of ['POST', 'PUT', 'DELETE']) {
    const answer = await new Browser(app.url).request('/healthz', { method });
    t.is(answer.status, 405, method);
    t.is(answer.headers.get('allow'), 'GET, HEAD', method);
  }
  t.is((await new Browser(app.url).request('/healthz', { method: 'HEAD' })).status, 200);
});

test('/healthz answers 503 once shutdown has begun', async (t) => {
  const app = await appForTest(t);
  app.lifecycle.shuttingDown = true;
  const health = await new Browser(app.url).request('/healthz');
  t.is(health.status, 503);
  t.like(JSON.parse(health.body), { status: 'shutting down' });
  t.is(health.headers.get('connection'), 'close', 'clients are told to reconnect elsewhere');
});

test('one JSON log line per request, with a request id and no session id', async (t) => {
  const app = await appForTest(t, { LOG_LEVEL: 'info' });
  const browser = new Browser(app.url);
  const write = await browser.request('/write?token=secret');
  await browser.request('/read', { headers: { 'x-request-id': 'from-the-proxy-1' } });
  await browser.request('/missing');
  const requests = app.logs.filter((line) => line.msg === 'request');
  t.is(requests.length, 3);
  t.like(requests[0], { level: 'info', method: 'GET', path: '/write', status: 200 });
  // The fields of pino's own lines, in pino's order: the line is built by hand (app/request-log.ts).
  t.deepEqual(Object.keys(requests[0]), [
    'level',
    'time',
    'method',
    'path',
    'status',
    'durationMs',
    'requestId',
    'msg',
  ]);
  t.regex(String(requests[0].time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.true(Math.abs(Date.parse(String(requests[0].time)) - Date.now()) < 60_000, 'the time of the request');
  t.is(typeof requests[0].durationMs, 'number');
  t.is(requests[0].requestId, write.headers.get('x-request-id'));
  t.like(requests[1], { path: '/read', requestId: 'from-the-proxy-1' });
  t.like(requests[2], { path: '/missing', status: 404 });
  // Ids made here differ per request, and are well-formed ids in turn (a service behind may honour them).
  t.not(requests[2].requestId, requests[0].requestId);
  for (const { requestId } of [requests[0], requests[2]]) t.regex(String(requestId), /^[A-Za-z0-9._:-]{1,128}$/);
  const id = browser.cookies.get('sid')!.split('.')[0];
  t.false(app.logText().includes(id), 'the session id never reaches the logs');
  t.false(app.logText().includes('secret'), 'nor query strings');
});

test('an X-Request-Id that is not well-formed is replaced by an id made here, in the log and in the answer', async (t) => {
  const app = await appForTest(t, { LOG_LEVEL: 'info' });
  const malformed = ['two words', 'x'.repeat(129), '"quoted"', 'a,b'];
  const answers = [];
  for (const id of malformed)
    answers.push(await new Browser(app.url).request('/read', { headers: { 'x-request-id': id } }));
  const logged = app.logs.filter((line) => line.msg === 'request').map((line) => line.requestId);
  t.is(logged.length, malformed.length);
  for (const [i, id] of logged.entries()) {
    t.false(malformed.includes(String(id)), String(id));
    t.regex(String(id), /^[A-Za-z0-9._:-]{1,128}$/);
    t.is(answers[i].headers.get('x-request-id'), String(id), 'the answer carries the id that was logged');
  }
  t.is(new Set(logged).size, logged.length, 'each its own');
});

test('the request line escapes what the path holds, and cuts a long path short', async (t) => {
  const app = await appForTest(t, { LOG_LEVEL: 'info' });
  // fetch (and a URL) would percent-encode the quote; node:http sends the path as given, and Node's
  // parser lets it through.
  const { hostname, port } = new URL(app.url);
  for (const path of ['/a"quote\\and\\backslashes', `/${'x'.repeat(500)}`, '/missing?x="y"']) {
    await new Promise<void>((resolve, reject) => {
      httpRequest({ hostname, port, path }, (response) => response.resume().on('end', resolve))
        .on('error', reject)
        .end();
    });
  }
  const paths = app.logs.filter((line) => line.msg === 'request').map((line) => line.path);
  t.deepEqual(paths, ['/a"quote\\and\\backslashes', `/${'x'.repeat(199)}`, '/missing']);
});

test('LOG_LEVEL=warn writes no request lines', async (t) => {
  const app = await appForTest(t, { LOG_LEVEL: 'warn' });
  await new Browser(app.url).request('/write');
  t.deepEqual(app.logs, []);
});

// --- The error boundary (app/errors.ts) ---

/** A second signing key: the app signs with it and still accepts TEST_KEY, so an old cookie is re-signed (a Set-Cookie) before the store is read. */
const NEW_KEY = 'rotated-signing-key-0123456789abcdefghijk';

/** A store whose get and create fail with `failure()` while `failing` is set. */
function failingStore(inner: SessionStore, failure: () => Error) {
  const state = { failing: false };
  const store: SessionStore = {
    kind: inner.kind,
    get: (id, ttlMs) => (state.failing ? Promise.reject(failure()) : inner.get(id, ttlMs)),
    create: (id, text, ttlMs) => (state.failing ? Promise.reject(failure()) : inner.create(id, text, ttlMs)),
    update: (id, text, ttlMs) => inner.update(id, text, ttlMs),
    destroy: (id) => inner.destroy(id),
    health: () => inner.health(),
    users: inner.users,
    close: () => inner.close(),
  };
  return { state, store };
}

/** The test routes, plus one that has already set a cookie and a cacheable header when it throws. */
function routesThrowing(failure: () => Error) {
  return (router: Router, session: SessionMiddleware) => {
    addTestRoutes(router, session);
    router.get('/throws', (ctx) => {
      ctx.cookies.set('other', 'value', { httpOnly: true });
      ctx.set('Cache-Control', 'public, max-age=600');
      throw failure();
    });
  };
}

/** An app whose store fails on demand, and a cookie for it signed with its older key. */
async function appWithFailures(t: Parameters<typeof appForTest>[0], failure: () => Error) {
  const older = await appForTest(t); // signs with TEST_KEY only
  const failing = failingStore(older.store, failure);
  const app = await appForTest(
    t,
    { SESSION_KEYS: `${NEW_KEY},${TEST_KEY}`, LOG_LEVEL: 'info' },
    { store: failing.store, keepStore: true, routes: routesThrowing(failure) },
  );
  const browser = new Browser(older.url);
  await browser.request('/write?value=before the outage');
  return { app, failing, cookie: browser.cookieHeader! };
}

test('a store outage answers 503 with Retry-After, no cookie, not cacheable, logged as a warning without a stack', async (t) => {
  const { app, failing, cookie } = await appWithFailures(
    t,
    () => new StoreUnavailableError('redis command failed: no answer within 500 ms'),
  );
  const healthy = await new Browser(app.url).request('/read', { headers: { cookie } });
  t.truthy(
    cookieValue(healthy.setCookies, 'sid'),
    'a cookie signed with the older key is re-signed: a Set-Cookie the outage must drop',
  );

  failing.state.failing = true;
  const answers = [
    [
      'a read with a session cookie being re-signed',
      await new Browser(app.url).request('/read', { headers: { cookie } }),
    ],
    ['a write of a new session', await new Browser(app.url).request('/write')],
    ['a handler that had set a cookie and a cacheable header', await new Browser(app.url).request('/throws')],
  ] as const;
  for (const [what, answer] of answers) {
    t.is(answer.status, 503, what);
    t.is(answer.headers.get('retry-after'), '1', `${what}: Retry-After`);
    t.deepEqual(answer.setCookies, [], `${what}: no Set-Cookie`);
    t.is(answer.headers.get('cache-control'), 'no-store', `${what}: not cacheable`);
    t.regex(answer.headers.get('content-type') ?? '', /^application\/json/, what);
    t.deepEqual(
      JSON.parse(answer.body),
      { error: 'Service Unavailable', message: 'The session store is unavailable; try again shortly.' },
      what,
    );
  }
  t.deepEqual(
    app.logs.filter((line) => /session store unavailable/.test(String(line.msg))),
    [],
    'no line per refused request: the 503s are counted, one line per interval (test/outage-logs.test.ts)',
  );
  t.deepEqual(
    app.logs.filter((line) => line.level === 'error'),
    [],
    'an outage is not a bug: no error line, no stack',
  );
  failing.state.failing = false;
  t.deepEqual(
    await new Browser(app.url).json('/read', { headers: { cookie } }),
    { value: 'before the outage' },
    'served again once the store answers',
  );
  t.false(app.logText().includes(TEST_KEY) || app.logText().includes(NEW_KEY), 'no signing key in the logs');
});

test('a bug answers a generic 500, no cookie, not cacheable, and is logged once with its stack and the request id', async (t) => {
  const detail = `internal detail ${Date.now()}`;
  const { app, failing, cookie } = await appWithFailures(t, () => new Error(detail));
  failing.state.failing = true;
  const answers = [
    [
      'a read whose store read fails',
      await new Browser(app.url).request('/read', { headers: { cookie, 'x-request-id': 'req-bug-1' } }),
    ],
    [
      'a handler that had set a cookie and a cacheable header',
      await new Browser(app.url).request('/throws', { headers: { 'x-request-id': 'req-bug-2' } }),
    ],
  ] as const;
  for (const [what, answer] of answers) {
    t.is(answer.status, 500, what);
    t.is(answer.body, '{"error":"Internal Server Error"}', `${what}: a generic body, nothing of the error`);
    t.deepEqual(answer.setCookies, [], `${what}: no Set-Cookie`);
    t.is(answer.headers.get('cache-control'), 'no-store', `${what}: not cacheable`);
    t.is(answer.headers.get('retry-after'), null, `${what}: no Retry-After for a bug`);
  }
  const errors = app.logs.filter((line) => line.level === 'error');
  t.deepEqual(
    errors.map((line) => [line.msg, line.requestId]),
    [
      ['unhandled error', 'req-bug-1'],
      ['unhandled error', 'req-bug-2'],
    ],
    'exactly one error line per failed request, with its request id',
  );
  for (const [index, line] of errors.entries()) {
    t.like(line, {
      msg: 'unhandled error',
      requestId: `req-bug-${index + 1}`,
      err: { type: 'Error', message: detail },
    });
    t.regex(
      String((line.err as { stack?: string }).stack),
      new RegExp(`^Error: ${detail}\\n\\s+at `),
      'with its stack',
    );
  }
  t.deepEqual(
    app.logs.filter((line) => line.msg === 'request').map((line) => [line.requestId, line.status]),
    [
      ['req-bug-1', 500],
      ['req-bug-2', 500],
    ],
    'and the request lines say 500',
  );
  t.false(app.logText().includes(TEST_KEY) || app.logText().includes(NEW_KEY), 'no signing key in the logs');
});

test('an error a handler marks as safe to show keeps its 4xx status and message', async (t) => {
  const app = await appForTest(
    t,
    {},
    { routes: (router) => router.get('/refuse', (ctx) => ctx.throw(422, 'that will not do')) },
  );
  const answer = await new Browser(app.url).request('/refuse');
  t.is(answer.status, 422);
  t.deepEqual(JSON.parse(answer.body), { error: 'that will not do' });
  t.is(answer.headers.get('cache-control'), 'no-store');
  t.deepEqual(
    app.logs.filter((line) => line.level === 'error'),
    [],
  );
});

/** A raw connection to the app that collects what it receives and when it closed. */
async function rawClient(url: string) {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  await once(socket, 'connect');
  const opened = performance.now();
  let answer = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
  socket.on('error', () => {}); // a reset after the server's answer and close: what was received counts
  const closed = once(socket, 'close').then(() => performance.now() - opened);
  return { socket, answer: () => answer, closed };
}

/** Writes `chunk` every 200 ms until the server starts answering or closes; returns a stop function. */
function trickle(client: Awaited<ReturnType<typeof rawClient>>, chunk: string): () => void {
  const timer = setInterval(() => {
    if (client.answer() === '' && client.socket.writable) client.socket.write(chunk);
  }, 200);
  return () => clearInterval(timer);
}

test('a client trickling its headers is answered 408 and cut off at HTTP_HEADERS_TIMEOUT, long before HTTP_REQUEST_TIMEOUT, while others are served', async (t) => {
  // A request timeout far beyond the wait below: only the headers timeout can end this connection in time.
  const app = await appForTest(t, { SESSION_KEYS: TEST_KEY, HTTP_HEADERS_TIMEOUT: '1s', HTTP_REQUEST_TIMEOUT: '60s' });
  const slow = await rawClient(app.url);
  t.teardown(() => slow.socket.destroy());
  slow.socket.write('GET /read HTTP/1.1\r\nHost: localhost\r\n');
  const stop = trickle(slow, 'X-Slow: a\r\n');
  t.teardown(stop);

  const browser = new Browser(app.url);
  for (let i = 0; i < 5; i++) {
    t.is((await browser.request(`/write?value=${i}`)).status, 200, 'others are served meanwhile');
    await sleep(100);
  }
  const closedAfter = await Promise.race([slow.closed, sleep(20_000).then(() => Infinity)]);
  stop();
  t.true(closedAfter < 20_000, `the server closed the slow connection (after ${Math.round(closedAfter)} ms)`);
  t.true(closedAfter >= 1_000 - 50, `not before the headers timeout (${Math.round(closedAfter)} ms)`);
  t.regex(
    slow.answer(),
    /^HTTP\/1\.1 408 Request Timeout\r\n/,
    `answered 408: ${JSON.stringify(slow.answer().slice(0, 60))}`,
  );
});

test('a client trickling its body is answered 408 and cut off at HTTP_REQUEST_TIMEOUT, not at the shorter headers timeout', async (t) => {
  const app = await appForTest(t, { SESSION_KEYS: TEST_KEY, HTTP_HEADERS_TIMEOUT: '1s', HTTP_REQUEST_TIMEOUT: '3s' });
  const slow = await rawClient(app.url);
  t.teardown(() => slow.socket.destroy());
  // Whole headers at once, then a body that never completes. No route reads a body, so the app
  // answers (404) at once; Node keeps reading the body, and the request timeout ends it.
  slow.socket.write('POST /nothing-here HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n');
  const timer = setInterval(() => slow.socket.writable && slow.socket.write('a'), 200);
  t.teardown(() => clearInterval(timer));
  const closedAfter = await Promise.race([slow.closed, sleep(20_000).then(() => Infinity)]);
  clearInterval(timer);
  t.true(closedAfter < 20_000, `the server closed the slow connection (after ${Math.round(closedAfter)} ms)`);
  t.true(
    closedAfter >= 3_000 - 50,
    `at the request timeout, not the 1 s headers timeout (${Math.round(closedAfter)} ms)`,
  );
  t.regex(slow.answer(), /^HTTP\/1\.1 404 Not Found\r\n/, 'the app answered the request itself');
  t.regex(slow.answer(), /HTTP\/1\.1 408 Request Timeout\r\n/, `then 408: ${JSON.stringify(slow.answer().slice(-80))}`);
});

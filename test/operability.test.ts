/** What operators rely on: /healthz, request logs, and slow clients being cut off. */

import { once } from 'node:events';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { appForTest, TEST_KEY } from './helpers/app.ts';
import { Browser } from './helpers/browser.ts';

test('/healthz reports the store and never creates a session', async (t) => {
  const app = await appForTest(t);
  const browser = new Browser(app.url);
  await browser.request('/set');
  const health = await new Browser(app.url).request('/healthz');
  t.is(health.status, 200);
  t.deepEqual(health.setCookies, [], 'no cookie');
  const body = JSON.parse(health.body);
  t.like(body, { status: 'ok', store: { kind: 'memory', ok: true, sessions: 1 } });
  t.true(body.process.rssBytes > 0 && body.process.heapUsedBytes > 0);
  t.is(typeof body.process.eventLoopDelayP99Ms, 'number');
  for (let i = 0; i < 3; i++) await new Browser(app.url).request('/healthz', { headers: { cookie: browser.cookieHeader! } });
  t.is((await app.store.health()).sessions, 1, 'health checks, even with a cookie, add no session');
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
  const set = await browser.request('/set?token=secret');
  await browser.request('/get', { headers: { 'x-request-id': 'from-the-proxy-1' } });
  await browser.request('/missing');
  const requests = app.logs.filter((line) => line.msg === 'request');
  t.is(requests.length, 3);
  t.like(requests[0], { level: 'info', method: 'GET', path: '/set', status: 200 });
  t.is(typeof requests[0].durationMs, 'number');
  t.is(requests[0].requestId, set.headers.get('x-request-id'));
  t.like(requests[1], { path: '/get', requestId: 'from-the-proxy-1' });
  t.like(requests[2], { path: '/missing', status: 404 });
  const id = browser.cookies.get('sid')!.split('.')[0];
  t.false(app.logText().includes(id), 'the session id never reaches the logs');
  t.false(app.logText().includes('secret'), 'nor query strings');
});

test('LOG_LEVEL=warn writes no request lines', async (t) => {
  const app = await appForTest(t, { LOG_LEVEL: 'warn' });
  await new Browser(app.url).request('/set');
  t.deepEqual(app.logs, []);
});

test('a client trickling its headers is answered 408 and cut off while others are served', async (t) => {
  const app = await appForTest(t, { SESSION_KEYS: TEST_KEY, HTTP_HEADERS_TIMEOUT: '1s', HTTP_REQUEST_TIMEOUT: '2s' });
  const url = new URL(app.url);
  const slow = connect(Number(url.port), url.hostname);
  await once(slow, 'connect');
  let answer = '';
  slow.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
  const closed = once(slow, 'close');
  slow.write('GET /get HTTP/1.1\r\nHost: localhost\r\n');
  const trickle = setInterval(() => slow.writable && slow.write('X-Slow: a\r\n'), 200);
  t.teardown(() => clearInterval(trickle));

  const browser = new Browser(app.url);
  const started = Date.now();
  for (let i = 0; i < 5; i++) {
    t.is((await browser.request('/set')).status, 200, 'others are served meanwhile');
    await sleep(100);
  }
  await Promise.race([closed, sleep(8_000)]);
  clearInterval(trickle);
  t.true(slow.destroyed || slow.readableEnded, 'the slow connection was closed by the server');
  t.true(Date.now() - started < 8_000);
  t.true(answer === '' || answer.startsWith('HTTP/1.1 408'), `answered 408 or cut off: ${JSON.stringify(answer.slice(0, 40))}`);
});

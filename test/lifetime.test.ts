/**
 * Session lifetime over real HTTP, with short max ages and wide margins (the machine is shared and
 * slow at times): idle expiry, sliding expiry, the absolute lifetime, the eviction bound, and many
 * concurrent writes to one session.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { Browser, cookieValue, sessionIdOf } from './helpers/browser.ts';
import { appForTest } from './helpers/app.ts';

test('an idle session expires after SESSION_MAX_AGE; replaying its cookie gives {}', async (t) => {
  const app = await appForTest(t, { SESSION_MAX_AGE: '600ms' });
  const browser = new Browser(app.url);
  await browser.request('/set');
  t.deepEqual(Object.keys(await browser.json('/get')), ['time'], 'alive right after /set');
  await sleep(1_500);
  t.deepEqual(await browser.json('/get'), {}, 'gone after staying idle longer than the max age');
});

test('sliding expiry: a session in use outlives its max age; once idle it is gone for good', async (t) => {
  const app = await appForTest(t, { SESSION_MAX_AGE: '1500ms' });
  const browser = new Browser(app.url);
  await browser.request('/set');
  const stored = await browser.json('/get');
  // Read it every 400 ms for 3.2 s, more than twice the max age: each read renews it.
  for (let i = 0; i < 8; i++) {
    await sleep(400);
    t.deepEqual(await browser.json('/get'), stored, `still alive at read ${i + 1}`);
  }
  const idleCookie = browser.cookieHeader!;
  await sleep(3_000);
  t.deepEqual(await browser.json('/get'), {}, 'expired after 3 s idle');
  await sleep(100);
  const replay = await new Browser(app.url).request('/get', { headers: { cookie: idleCookie } });
  t.is(replay.body, '{}', 'and stays gone');
});

test('SESSION_MAX_LIFETIME refuses a session older than it even while in use', async (t) => {
  const app = await appForTest(t, { SESSION_MAX_AGE: '1m', SESSION_MAX_LIFETIME: '2s' });
  const browser = new Browser(app.url);
  const first = await browser.request('/set');
  const firstId = sessionIdOf(cookieValue(first.setCookies, 'sid'));
  // Keep using it for a while; the idle timeout (1 min) never comes close.
  for (let i = 0; i < 3; i++) {
    await sleep(300);
    t.deepEqual(Object.keys(await browser.json('/get')), ['time']);
  }
  await sleep(3_100); // cookies carry their issue time in whole seconds: allow a second more
  t.deepEqual(await browser.json('/get'), {}, 'refused past the absolute lifetime');
  const again = await browser.request('/set');
  t.not(sessionIdOf(cookieValue(again.setCookies, 'sid')), firstId, 'a new session gets a new id');
});

test('SESSION_MAX_ENTRIES bounds the memory store: the least recently used session is evicted', async (t) => {
  const app = await appForTest(t, { SESSION_MAX_ENTRIES: '3' });
  const browsers = [0, 1, 2, 3].map(() => new Browser(app.url));
  for (const browser of browsers.slice(0, 3)) await browser.request('/set');
  // Reading session 0 makes session 1 the least recently used.
  t.deepEqual(Object.keys(await browsers[0].json('/get')), ['time']);
  await browsers[3].request('/set');
  t.is((await app.store.health()).sessions, 3, 'never more than SESSION_MAX_ENTRIES');
  t.deepEqual(await browsers[1].json('/get'), {}, 'the least recently used session was evicted');
  for (const index of [0, 2, 3]) {
    t.deepEqual(Object.keys(await browsers[index].json('/get')), ['time'], `session ${index} is kept`);
  }
});

test('100 parallel /set on one session all succeed and leave one valid session', async (t) => {
  const app = await appForTest(t);
  const browser = new Browser(app.url);
  await browser.request('/set');
  const cookie = browser.cookieHeader!;
  const answers = await Promise.all(Array.from({ length: 100 }, () => new Browser(app.url).request('/set', { headers: { cookie } })));
  t.true(answers.every((answer) => answer.status === 200 && answer.body === 'ok'));
  t.true(answers.every((answer) => answer.setCookies.length === 0), 'no request replaced the session id');
  t.is((await app.store.health()).sessions, 1);
  const data = (await browser.json('/get')) as { time: number };
  t.true(Number.isInteger(data.time));
});

/**
 * GoFrame's "Session - Memory" walk-through with the seed's routes (as app/routes.ts mounts them), step
 * by step, over real HTTP: /set stores the time, /get shows it, and after a restart the session is gone.
 */
import test from 'ava';
import { addRoutes } from '../../app/routes.ts';
import { startApp } from '../helpers/app.ts';
import { Browser } from '../helpers/browser.ts';

test('set, get, restart, get: memory sessions do not survive a restart', async (t) => {
  const first = await startApp({}, { routes: addRoutes });
  const browser = new Browser(first.url);

  const before = Math.floor(Date.now() / 1000);
  const set = await browser.request('/set');
  const after = Math.floor(Date.now() / 1000);
  t.is(set.status, 200);
  t.is(set.body, 'ok');
  t.is(set.setCookies.length, 1, 'the first /set sends the session cookie');

  const data = (await browser.json('/get')) as { time: number };
  t.deepEqual(Object.keys(data), ['time']);
  t.true(Number.isInteger(data.time), 'time is a whole number of seconds');
  t.true(data.time >= before && data.time <= after, `time ${data.time} is the Unix time in seconds of /set`);

  // Restart: a new app instance with a new memory store, same signing keys, same browser cookie.
  await first.close();
  const second = await startApp({}, { routes: addRoutes });
  t.teardown(() => second.close());
  const restarted = new Browser(second.url);
  for (const [name, value] of browser.cookies) restarted.cookies.set(name, value);

  t.deepEqual(await restarted.json('/get'), {}, 'the session is gone after the restart');
});

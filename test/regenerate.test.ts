/**
 * Rotating the session id after a privilege change (the README's security section), with both
 * stores: the old id is dead, the data moved to the new one.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import Koa from 'koa';
import { createLogger } from '../app/logger.ts';
import { createSessionMiddleware } from '../app/session/middleware.ts';
import { createStore } from '../app/stores/index.ts';
import { loadConfig } from '../config/index.ts';
import { Browser, cookieValue, sessionIdOf } from './helpers/browser.ts';
import { TEST_KEY } from './helpers/app.ts';
import { deleteKeysWithPrefix, REDIS_URL, redisTest, uniquePrefix } from './helpers/redis.ts';

const test = anyTest as TestFn;

async function regenerateProvesItself(t: ExecutionContext, env: Record<string, string>) {
  const config = loadConfig({ SESSION_KEYS: TEST_KEY, ...env });
  const store = await createStore(config, createLogger('silent'));
  const app = new Koa();
  const session = createSessionMiddleware(app, { config: config.session, store });
  const router = new Router();
  router.all('/set', session, (ctx) => {
    ctx.session.time = 1_234_567_890;
    ctx.body = 'ok';
  });
  router.all('/get', session, (ctx) => {
    ctx.body = ctx.session.toJSON();
  });
  router.post('/login', session, async (ctx) => {
    await ctx.session.regenerate(); // exactly what the README shows
    ctx.body = 'welcome';
  });
  app.use(router.routes());
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(async () => {
    server.closeAllConnections();
    server.close();
    await store.close();
  });
  const browser = new Browser(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);

  await browser.request('/set');
  const oldCookie = browser.cookies.get('sid')!;
  const login = await browser.request('/login', { method: 'POST' });
  t.is(login.body, 'welcome');
  const newCookie = cookieValue(login.setCookies, 'sid');
  t.truthy(newCookie, 'a new cookie is sent');
  t.not(sessionIdOf(newCookie), sessionIdOf(oldCookie), 'with a new id');

  t.deepEqual(await browser.json('/get'), { time: 1_234_567_890 }, 'the data moved to the new id');
  t.is(await store.get(sessionIdOf(oldCookie)!, 'session'), undefined, 'the old id is gone from the store');
  const replay = new Browser(browser.baseUrl);
  replay.cookies.set('sid', oldCookie);
  t.deepEqual(await replay.json('/get'), {}, 'the old cookie opens nothing');
}

test('memory store: regenerate() gives the session a new id and kills the old one', (t) => regenerateProvesItself(t, {}));

redisTest(test)('redis store: regenerate() gives the session a new id and kills the old one', async (t) => {
  const prefix = uniquePrefix();
  t.teardown(() => deleteKeysWithPrefix(prefix));
  await regenerateProvesItself(t, { SESSION_STORE: 'redis', REDIS_URL: REDIS_URL ?? '', REDIS_KEY_PREFIX: prefix });
});

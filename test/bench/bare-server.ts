/**
 * The benchmark's baseline: a bare Koa app with the same three routes and no sessions, served the
 * same way as app/server.ts, so the difference measured is what sessions cost.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import Koa from 'koa';

const app = new Koa();
const router = new Router();
router.all('/set', (ctx) => {
  ctx.body = 'ok';
});
router.all('/get', (ctx) => {
  ctx.body = {};
});
router.all('/del', (ctx) => {
  ctx.body = 'ok';
});
app.use(router.routes());

const server = createServer(app.callback()).listen(0, '127.0.0.1');
await once(server, 'listening');
const { port } = server.address() as AddressInfo;
process.stdout.write(`${JSON.stringify({ msg: 'listening', url: `http://127.0.0.1:${port}` })}\n`);
process.once('SIGTERM', () => server.close(() => process.exit(0)));

/** The real server process: start-up output, serving, and graceful shutdown on signals. */
import { connect } from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { Browser } from './helpers/browser.ts';
import { TEST_KEY } from './helpers/app.ts';
import { startServerProcess } from './helpers/process.ts';

test('npm start prints one line with the URL, serves the routes, and exits 0 on SIGTERM', async (t) => {
  const server = await startServerProcess({ SESSION_KEYS: TEST_KEY });
  t.teardown(() => server.child.kill('SIGKILL'));
  const lines = server.stdout().trimEnd().split('\n');
  t.is(lines.length, 1, 'one line at start');
  t.regex(lines[0], /listening on http:\/\/127\.0\.0\.1:\d+/);

  const browser = new Browser(server.url);
  t.is((await browser.request('/set')).body, 'ok');
  t.deepEqual(Object.keys(await browser.json('/get')), ['time']);

  // A keep-alive connection left open by the client must not hold the exit up.
  const started = Date.now();
  server.child.kill('SIGTERM');
  t.is(await server.exited, 0);
  t.true(Date.now() - started < 4_000, 'exits within a few seconds');
  t.is(server.stderr(), '');
  t.notRegex(server.stdout(), new RegExp(browser.cookies.get('sid')!.split('.')[0]), 'no raw session id in the logs');
});

test('without SESSION_KEYS (development) a random key is made, with a one-line warning', async (t) => {
  const server = await startServerProcess({});
  t.teardown(() => server.child.kill('SIGKILL'));
  const lines = server.stdout().trimEnd().split('\n');
  t.is(lines.length, 2);
  t.regex(lines[0], /"level":"warn".*SESSION_KEYS is not set/);
  t.is((await new Browser(server.url).request('/set')).status, 200);
  server.child.kill('SIGINT');
  t.is(await server.exited, 0, 'SIGINT too');
});

test('a request in flight when SIGTERM arrives is answered before the process exits', async (t) => {
  const server = await startServerProcess({ SESSION_KEYS: TEST_KEY });
  t.teardown(() => server.child.kill('SIGKILL'));
  const url = new URL(server.url);
  const socket = connect(Number(url.port), url.hostname);
  await once(socket, 'connect');
  let answer = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
  socket.write('GET /set HTTP/1.1\r\nHost: localhost\r\n'); // headers not finished yet

  await sleep(200);
  server.child.kill('SIGTERM');
  await sleep(300);
  socket.write('\r\n');

  t.is(await server.exited, 0);
  t.regex(answer, /^HTTP\/1\.1 200 OK/);
  t.regex(answer, /\r\nconnection: close\r\n/i, 'told to reconnect elsewhere');
  t.regex(answer, /\r\n\r\nok$/);
  t.regex(server.stdout(), /"msg":"shutting down"[\s\S]*"msg":"stopped"/);
});

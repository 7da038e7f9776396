/**
 * A connection told to close stays told: a request pipelined behind an answer that carries
 * `Connection: close` is refused, also when it reaches the app in the settle step (the end of the drain,
 * when answers keep their connection again). Node would run it and drop its answer with the socket.
 */
import { connect } from 'node:net';
import test from 'ava';
import { appForTest } from './helpers/app.ts';
import { Browser } from './helpers/browser.ts';
import { GatedStore } from './helpers/gated-store.ts';

test('a request pipelined behind a closing answer is refused even once the settle step has begun', async (t) => {
  let gate!: GatedStore;
  const app = await appForTest(t, {}, { wrapStore: (inner) => (gate = new GatedStore(inner)) });
  const first = new Browser(app.url);
  const second = new Browser(app.url);
  await first.request('/write?value=one');
  await second.request('/write?value=two');

  // Draining: answers close their connection.
  app.lifecycle.shuttingDown = true;
  app.lifecycle.closeConnections = true;
  const held = gate.holdNext('get');
  const socket = connect(Number(new URL(app.url).port), '127.0.0.1');
  let received = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (received += chunk));
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  const request = (cookie: string) => `GET /end HTTP/1.1\r\nHost: x\r\nCookie: ${cookie}\r\n\r\n`;
  socket.write(request(first.cookieHeader!));
  await held.reached; // the first /end has been told to close, and waits for the store

  // The settle step begins; the second /end arrives behind the first on the same connection.
  app.lifecycle.closeConnections = false;
  socket.write(request(second.cookieHeader!));
  await new Promise((resolve) => setTimeout(resolve, 100)); // it is parsed and reaches the app
  held.release();
  await closed;

  t.is(received.match(/^HTTP\/1\.1 /gm)?.length, 1, 'one answer, the first, with Connection: close');
  t.regex(received, /connection: close/i);
  app.lifecycle.shuttingDown = false;
  app.lifecycle.closeConnections = undefined;
  t.deepEqual(await second.json('/read'), { value: 'two' }, 'the second /end was not carried out');
  t.is(gate.calls.filter((call) => call.method === 'destroy').length, 1, "the first /end's destroy, and no other");
});

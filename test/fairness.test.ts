/**
 * One connection cannot take the server from everyone else. A client that pipelines thousands of
 * requests in one write gets every answer, in order, while the requests of other connections and
 * /healthz are served as usual: a connection has at most MAX_REQUESTS_PER_CONNECTION requests running,
 * the rest wait their turn and the connection is not read meanwhile (app/pipelining.ts), and /healthz
 * has a path of its own past the Redis store's bound on calls in flight.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { type AddRoutes, createApp } from '../app/app.ts';
import { createHttpServer } from '../app/http-server.ts';
import { silentLogger } from '../app/logger.ts';
import { MAX_REQUESTS_PER_CONNECTION } from '../app/pipelining.ts';
import { MemoryStore } from '../app/stores/memory.ts';
import type { RedisStore } from '../app/stores/redis.ts';
import { StoreUnavailableError } from '../app/stores/store.ts';
import { loadConfig } from '../config/index.ts';
import { appForTest, type RunningApp, TEST_KEY } from './helpers/app.ts';
import { Browser } from './helpers/browser.ts';
import { GatedStore } from './helpers/gated-store.ts';
import {
  deleteKeysWithPrefix,
  inspector,
  openTestRedisStore,
  ownRedisServer,
  REDIS_URL,
  redisTest,
  uniquePrefix,
} from './helpers/redis.ts';

declare module '../app/session/types.ts' {
  interface SessionData {
    /** How many times /write ran in this session (the fairness tests' own field). */
    writes?: number;
  }
}

const test = anyTest as TestFn;
const withRedis = redisTest(anyTest as TestFn);

/** The requests one client pipelines in a single write (what the attack review sent). */
const PIPELINED = 3_000;

/** An answer larger than the socket buffers on loopback, so that it backs up when the client does not read. */
const BIG = 'x'.repeat(32 * 1024 * 1024);

/**
 * /read answers the request's X-N header (its identity) and the session's count, so each answer
 * shows which request it belongs to and that the session was read from the store; /write counts.
 */
const routes: AddRoutes = (router, session) => {
  router.get('/read', session.read, (ctx) => {
    ctx.body = `${ctx.get('X-N')}:${ctx.session.writes ?? 0}`;
  });
  router.get('/write', session.change, (ctx) => {
    ctx.session.writes = (ctx.session.writes ?? 0) + 1;
    ctx.body = String(ctx.session.writes);
  });
  router.get('/big', (ctx) => {
    ctx.body = BIG;
  });
};

interface RawAnswer {
  readonly status: number;
  readonly body: string;
}

/** A raw keep-alive connection: requests written as given, answers parsed in the order they come. */
class RawConnection {
  readonly socket: Socket;
  readonly answers: RawAnswer[] = [];
  /** Bytes received and not parsed yet, in the chunks they came in (joined only when an answer is whole). */
  #chunks: Buffer[] = [];
  #length = 0;
  /** The bytes the answer being received needs in all, once its head is known. */
  #needed = 0;
  #waiting: Array<{ count: number; resolve: () => void }> = [];

  constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#chunks.push(chunk);
      this.#length += chunk.length;
      if (this.#length >= this.#needed) this.#parse();
    });
  }

  static async open(url: string): Promise<RawConnection> {
    const { port } = new URL(url);
    const socket = connect(Number(port), '127.0.0.1');
    await once(socket, 'connect');
    return new RawConnection(socket);
  }

  /** Resolves once `count` answers have arrived (rejects if the connection closes first). */
  received(count: number): Promise<RawAnswer[]> {
    if (this.answers.length >= count) return Promise.resolve(this.answers);
    return new Promise((resolve, reject) => {
      this.#waiting.push({ count, resolve: () => resolve(this.answers) });
      this.socket.once('close', () =>
        reject(new Error(`connection closed after ${this.answers.length} of ${count} answers`)),
      );
    });
  }

  #parse(): void {
    let buffer = Buffer.concat(this.#chunks);
    for (;;) {
      const end = buffer.indexOf('\r\n\r\n');
      if (end === -1) break;
      const head = buffer.subarray(0, end).toString('latin1');
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      this.#needed = end + 4 + length;
      if (buffer.length < this.#needed) break;
      const status = Number(head.slice(9, 12));
      this.answers.push({ status, body: buffer.subarray(end + 4, this.#needed).toString('utf8') });
      buffer = buffer.subarray(this.#needed);
      this.#needed = 0;
    }
    this.#chunks = [buffer];
    this.#length = buffer.length;
    this.#waiting = this.#waiting.filter((waiter) => {
      if (this.answers.length < waiter.count) return true;
      waiter.resolve();
      return false;
    });
  }
}

function readRequests(cookie: string, count: number, from = 0): string {
  let text = '';
  for (let n = from; n < from + count; n++) {
    text += `GET /read HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ${cookie}\r\nX-N: ${n}\r\n\r\n`;
  }
  return text;
}

/** Every answer is 200 and belongs to its request, in order (`from` the first X-N). */
function assertInOrder(t: ExecutionContext, answers: readonly RawAnswer[], count: number, writes: number): void {
  const wrong = answers.slice(0, count).flatMap((answer, n) => {
    const expected = `${n}:${writes}`;
    return answer.status === 200 && answer.body === expected
      ? []
      : [`#${n}: ${answer.status} ${answer.body} (expected 200 ${expected})`];
  });
  t.deepEqual(wrong.slice(0, 5), [], `${wrong.length} of ${count} pipelined answers wrong or out of order`);
  t.is(answers.length, count, 'one answer per request, no more');
}

/** A browser with a session of one write, and its Cookie header. */
async function signedIn(url: string): Promise<{ browser: Browser; cookie: string }> {
  const browser = new Browser(url);
  const first = await browser.request('/write');
  if (first.status !== 200) throw new Error(`/write answered ${first.status}: ${first.body}`);
  return { browser, cookie: browser.cookieHeader! };
}

/**
 * Pipelines PIPELINED reads on one connection (one write) while another client, on its own
 * connection, runs /write and /healthz back to back until the pipeline is answered. Returns what the
 * other client saw.
 */
async function pipelineBesideUser(t: ExecutionContext, app: RunningApp) {
  const piper = await signedIn(app.url);
  const user = await signedIn(app.url);
  const connection = await RawConnection.open(app.url);
  t.teardown(() => connection.socket.destroy());
  const failures: string[] = [];
  let writes = 1;
  let requests = 0;
  let done = false;
  const userLoop = (async () => {
    while (!done) {
      const write = await user.browser.request('/write');
      if (write.status === 200 && write.body === String(writes + 1)) writes++;
      else failures.push(`/write: ${write.status} ${write.body}`);
      const health = await fetch(new URL('/healthz', app.url));
      const body = await health.text();
      if (health.status !== 200) failures.push(`/healthz: ${health.status} ${body}`);
      requests += 2;
    }
  })();
  connection.socket.write(readRequests(piper.cookie, PIPELINED));
  const answers = await connection.received(PIPELINED).finally(() => (done = true));
  await userLoop;
  const refused = answers.filter((answer) => answer.status === 503).length;
  const failedChecks = failures.filter((failure) => failure.startsWith('/healthz')).length;
  t.log(
    `the pipelining client: ${refused} of ${PIPELINED} answered 503; the other client: ${requests} requests, ` +
      `${failures.length - failedChecks} /write and ${failedChecks} /healthz failed`,
  );
  assertInOrder(t, answers, PIPELINED, 1);
  t.deepEqual(failures, [], 'every /write and /healthz of the other client answered 200');
}

withRedis(
  'Redis store: 3,000 reads pipelined in one write on one connection fail no other client, nor /healthz',
  async (t) => {
    const prefix = uniquePrefix();
    t.teardown(() => deleteKeysWithPrefix(prefix));
    const app = await appForTest(
      t,
      {
        SESSION_STORE: 'redis',
        REDIS_URL: REDIS_URL!,
        REDIS_KEY_PREFIX: prefix,
        REDIS_CONNECT_TIMEOUT: '10s',
        REDIS_COMMAND_TIMEOUT: '10s',
        LOG_LEVEL: 'warn',
      },
      { routes },
    );
    await pipelineBesideUser(t, app);
  },
);

test('memory store: 3,000 reads pipelined in one write on one connection fail no other client, nor /healthz', async (t) => {
  const app = await appForTest(t, { LOG_LEVEL: 'warn' }, { routes });
  await pipelineBesideUser(t, app);
});

test('Redis store on a stalled Redis: a pipelining connection holds a bounded share of the calls in flight, and /healthz gets its PING through', async (t) => {
  // Redis paused (SIGSTOP) while the pipeline arrives: every call waits, so the overlap with the other
  // client's requests is certain, not a matter of luck. The deadlines are long: nothing times out.
  const redis = await ownRedisServer(t);
  const app = await appForTest(
    t,
    {
      SESSION_STORE: 'redis',
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: uniquePrefix(),
      REDIS_CONNECT_TIMEOUT: '10s',
      REDIS_COMMAND_TIMEOUT: '20s',
      LOG_LEVEL: 'warn',
    },
    { routes },
  );
  const store = app.store as RedisStore;
  const piper = await signedIn(app.url);
  const user = await signedIn(app.url);
  const connection = await RawConnection.open(app.url);
  t.teardown(() => connection.socket.destroy());

  redis.pause();
  t.teardown(() => redis.resume());
  connection.socket.write(readRequests(piper.cookie, PIPELINED));
  for (let waited = 0; store.inFlight < MAX_REQUESTS_PER_CONNECTION && waited < 10_000; waited += 10) await sleep(10);
  const write = user.browser.request('/write');
  const health = fetch(new URL('/healthz', app.url)).then(async (answer) => ({
    status: answer.status,
    body: await answer.text(),
  }));
  // Until the other client's read has joined the pipeline's calls (or, unbounded, was refused at once).
  for (let waited = 0; store.inFlight === MAX_REQUESTS_PER_CONNECTION && waited < 2_000; waited += 10) await sleep(10);
  const inFlightWhileStalled = store.inFlight;
  redis.resume();

  const written = await write;
  t.is(written.status, 200, `the other client's /write: ${written.body}`);
  t.is(written.body, '2');
  const checked = await health;
  t.is(checked.status, 200, `/healthz: ${checked.body}`);
  t.is(
    inFlightWhileStalled,
    MAX_REQUESTS_PER_CONNECTION + 1,
    'the pipeline held its own bound of calls, the other client one more',
  );
  assertInOrder(t, await connection.received(PIPELINED), PIPELINED, 1);
});

test('a connection runs at most MAX_REQUESTS_PER_CONNECTION requests at once; the rest start in order as answers go out', async (t) => {
  let gate!: GatedStore;
  const app = await appForTest(
    t,
    { LOG_LEVEL: 'warn' },
    { routes, wrapStore: (inner) => (gate = new GatedStore(inner)) },
  );
  const piper = await signedIn(app.url);
  const connection = await RawConnection.open(app.url);
  t.teardown(() => connection.socket.destroy());
  const callsBefore = gate.calls.length;
  const held = gate.holdNext('get');
  const count = MAX_REQUESTS_PER_CONNECTION * 4;
  connection.socket.write(readRequests(piper.cookie, count));
  await held.reached;
  // The first request is held in the store; those behind it are answered by their handlers but wait
  // to be sent (answers go out in order), so they stay unanswered and no further request starts.
  await sleep(200);
  t.is(gate.calls.length - callsBefore, MAX_REQUESTS_PER_CONNECTION, 'only the first requests reached the store');
  t.is(connection.answers.length, 0);
  held.release();
  assertInOrder(t, await connection.received(count), count, 1);
  t.is(gate.calls.length - callsBefore, count);
});

/** An app on a memory store behind a GatedStore, on a server of the test's own: it counts the requests Node parses. */
async function gatedServer(t: ExecutionContext) {
  const config = loadConfig({ SESSION_KEYS: TEST_KEY, LOG_LEVEL: 'silent' });
  const gate = new GatedStore(new MemoryStore({ maxEntries: 100 }));
  const server = createHttpServer(createApp({ config, store: gate, logger: silentLogger(), routes }), config.http);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(async () => {
    server.closeAllConnections();
    server.close();
    await gate.close();
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const counter = { parsed: 0 };
  server.on('request', () => counter.parsed++);
  return { url, gate, counter };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !condition(); waited += 10) {
    if (waited > 10_000) throw new Error(`not within 10 s: ${what}`);
    await sleep(10);
  }
}

test('a connection with MAX_REQUESTS_PER_CONNECTION requests unanswered is not read until one is answered', async (t) => {
  const { url, gate, counter } = await gatedServer(t);
  const piper = await signedIn(url);
  const connection = await RawConnection.open(url);
  t.teardown(() => connection.socket.destroy());

  const held = gate.holdNext('get');
  // One more than may run: the last waits, and the connection is no longer read.
  const first = MAX_REQUESTS_PER_CONNECTION + 1;
  const parsedBefore = counter.parsed;
  connection.socket.write(readRequests(piper.cookie, first));
  await held.reached;
  await until(() => counter.parsed - parsedBefore === first, 'the first write parsed');
  connection.socket.write(readRequests(piper.cookie, 1, first));
  await sleep(300);
  t.is(
    counter.parsed - parsedBefore,
    first,
    'the request sent afterwards is not even parsed while the connection is full',
  );
  held.release();
  assertInOrder(t, await connection.received(first + 1), first + 1, 1);
  t.is(counter.parsed - parsedBefore, first + 1);
});

test('a connection stays unread while requests wait, also after Node resumes it (answers that backed up have drained)', async (t) => {
  const { url, gate, counter } = await gatedServer(t);
  const piper = await signedIn(url);
  const connection = await RawConnection.open(url);
  t.teardown(() => connection.socket.destroy());
  // The client does not read: the big answer backs up in the server's socket, and Node stops reading
  // the connection by itself (output back-pressure) when it parses the next requests.
  connection.socket.pause();
  const parsedBefore = counter.parsed;
  connection.socket.write('GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  await until(() => counter.parsed === parsedBefore + 1, '/big parsed');
  await sleep(200); // its answer is being written, and backs up
  const held = gate.holdNext('get');
  // With /big unanswered, MAX_REQUESTS_PER_CONNECTION - 1 of these run and 2 wait.
  const reads = MAX_REQUESTS_PER_CONNECTION + 1;
  connection.socket.write(readRequests(piper.cookie, reads));
  await held.reached;
  await until(() => counter.parsed === parsedBefore + 1 + reads, 'the reads parsed');
  // The client reads /big: the server's socket drains, Node resumes reading it, and /big is answered
  // (one waiting read starts); the other still waits behind the held one.
  connection.socket.resume();
  await connection.received(1);
  t.is(connection.answers[0].body.length, BIG.length);
  await sleep(100);
  connection.socket.write(readRequests(piper.cookie, 1, reads));
  await sleep(300);
  t.is(counter.parsed, parsedBefore + 1 + reads, 'the request sent afterwards is not parsed while requests wait');
  held.release();
  const answers = await connection.received(reads + 2);
  assertInOrder(t, answers.slice(1), reads + 1, 1);
});

test('Redis store: health() is not refused by the bound on calls in flight, and concurrent checks share one PING', async (t) => {
  const redis = await ownRedisServer(t);
  const opened = await openTestRedisStore({ url: redis.url, maxInFlight: 10, commandTimeoutMs: 20_000 });
  t.teardown(async () => {
    redis.resume();
    await opened.close();
  });
  const { store } = opened;
  const inspect = await inspector(redis.url);
  t.teardown(() => inspect.close());
  const pings = async () => Number(/cmdstat_ping:calls=(\d+)/.exec(await inspect.info('commandstats'))?.[1] ?? 0);
  const pingsBefore = await pings();

  redis.pause();
  t.teardown(() => redis.resume());
  const calls = Array.from({ length: 10 }, () => store.get('a', 60_000));
  t.is(store.inFlight, 10, 'the bound is reached');
  await t.throwsAsync(store.get('b', 60_000), { instanceOf: StoreUnavailableError }, 'a call past it is refused');
  const checks = [store.health(), store.health(), store.health()];
  await sleep(200);
  redis.resume();
  t.deepEqual(await Promise.all(checks), Array(3).fill({ ok: true, reachable: true }));
  await Promise.all(calls);
  t.is((await pings()) - pingsBefore, 1, 'the three concurrent checks sent one PING');
  t.deepEqual(await store.health(), { ok: true, reachable: true }, 'a later check sends a PING of its own');
  t.is((await pings()) - pingsBefore, 2);
});

/**
 * What a Redis outage writes to a log kept at LOG_LEVEL=warn: one line when Redis goes, one when it
 * is back, and the requests answered 503 meanwhile as a count, in lines bounded by the time the
 * outage lasted (one per SUMMARY_INTERVAL_MS), not by the number of requests; nothing counted is lost
 * when the app closes or the process exits.
 */

import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { SUMMARY_INTERVAL_MS, summarizedWarning } from '../app/log-summary.ts';
import { createLogger } from '../app/logger.ts';
import { startApp } from './helpers/app.ts';
import { Browser } from './helpers/browser.ts';
import { logLines, startServerProcess } from './helpers/process.ts';
import { ownRedisServer, uniquePrefix } from './helpers/redis.ts';

const DOWN = 'redis unreachable; session requests answer 503 until it is back';
const BACK = 'redis reachable again';
const SUMMARY = /^(\d+) requests? answered 503: session store unavailable$/;

type LogLine = Record<string, unknown>;

/** Checks the outage's lines; returns the 503s the summaries count. */
function checkOutageLines(t: ExecutionContext, lines: readonly LogLine[], maxSummaries: number): number {
  const messages = lines.map((line) => String(line.msg));
  const down = lines.filter((line) => line.msg === DOWN);
  const back = lines.filter((line) => line.msg === BACK);
  const summaries = lines.filter((line) => SUMMARY.test(String(line.msg)));
  const others = messages.filter((message) => message !== DOWN && message !== BACK && !SUMMARY.test(message));
  t.deepEqual(others.slice(0, 5), [], `${others.length} other lines`);
  t.is(down.length, 1, 'one line when Redis goes');
  t.is(back.length, 1, 'one line when it is back');
  t.deepEqual(
    lines.map((line) => line.level),
    lines.map(() => 'warn'),
    'all at warn',
  );
  t.true(messages.indexOf(DOWN) < messages.indexOf(BACK));
  t.true(summaries.length >= 1 && summaries.length <= maxSummaries, `${summaries.length} summary lines`);
  for (const summary of summaries) {
    const count = Number(SUMMARY.exec(String(summary.msg))![1]);
    t.is(summary.count, count);
    t.like(summary.first, { method: 'GET', path: '/read' }, 'the first request of the interval');
    t.regex(String((summary.first as LogLine).err), /redis/, 'with its reason');
  }
  return summaries.reduce((sum, line) => sum + Number(line.count), 0);
}

test('a Redis outage under load at LOG_LEVEL=warn: one line down, one line back, the 503s as a count per interval', async (t) => {
  const redis = await ownRedisServer(t);
  const app = await startApp({
    SESSION_STORE: 'redis',
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: uniquePrefix(),
    REDIS_CONNECT_TIMEOUT: '1s',
    REDIS_COMMAND_TIMEOUT: '2s',
    LOG_LEVEL: 'warn',
  });
  let closed = false;
  t.teardown(async () => {
    if (!closed) await app.close();
  });
  const browser = new Browser(app.url);
  t.is((await browser.request('/write')).status, 200);
  const cookie = browser.cookieHeader!;

  const statuses = new Map<number, number>();
  let sending = true;
  const client = async () => {
    while (sending) {
      const answer = await fetch(new URL('/read', app.url), { headers: { cookie } });
      await answer.arrayBuffer();
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
    }
  };
  const clients = [client(), client()];
  await sleep(200);
  // Longer than one summary interval: the count comes out while the outage lasts, not only at its end.
  const outageMs = SUMMARY_INTERVAL_MS + 1_000;
  const stoppedAt = performance.now();
  await redis.stop();
  await sleep(outageMs);
  const summariesDuringOutage = app.logs.filter((line) => SUMMARY.test(String(line.msg))).length;
  await redis.start();
  for (let waited = 0; !app.logs.some((line) => line.msg === BACK) && waited < 20_000; waited += 50) await sleep(50);
  await sleep(200);
  sending = false;
  await Promise.all(clients);
  const elapsedMs = performance.now() - stoppedAt;
  await app.close();
  closed = true;

  const refused = statuses.get(503) ?? 0;
  const lines = app.logs;
  t.log(
    `outage of ${Math.round(elapsedMs)} ms under 2 clients: ${refused} requests answered 503, ` +
      `${statuses.get(200) ?? 0} answered 200; ${lines.length} log lines at warn`,
  );
  t.deepEqual([...statuses.keys()].sort(), [200, 503], 'every answer was 200 or 503');
  t.true(refused >= 100, 'the clients met the outage many times over');
  t.is(summariesDuringOutage, 1, 'one summary line came out during the outage, at the end of the interval');
  // One per interval elapsed, the one flushed when Redis came back, and one at close (a request whose
  // 503 was being answered as Redis came back).
  const maxSummaries = Math.floor(elapsedMs / SUMMARY_INTERVAL_MS) + 2;
  t.is(checkOutageLines(t, lines, maxSummaries), refused, 'the summaries count every 503, none twice');
  const back = lines.findIndex((line) => line.msg === BACK);
  t.true(
    lines.slice(0, back).filter((line) => SUMMARY.test(String(line.msg))).length >= 2 &&
      SUMMARY.test(String(lines[back - 1].msg)),
    'the count since the last summary line comes out when Redis is back, just before the line that says so',
  );
});

test('the 503s counted when the server shuts down are written before it exits', async (t) => {
  const redis = await ownRedisServer(t);
  const server = await startServerProcess({
    SESSION_KEYS: 'outage-logs-test-key-0123456789abcdefghijkl',
    SESSION_STORE: 'redis',
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: uniquePrefix(),
    REDIS_CONNECT_TIMEOUT: '1s',
    REDIS_COMMAND_TIMEOUT: '2s',
    LOG_LEVEL: 'warn',
  });
  t.teardown(() => {
    if (server.child.exitCode === null) server.child.kill('SIGKILL');
  });
  const browser = new Browser(server.url);
  t.is((await browser.request('/write')).status, 200);
  await redis.stop();
  let refused = 0;
  for (let sent = 0; refused < 20 && sent < 1_000; sent++) {
    if ((await browser.request('/read')).status === 503) refused++;
  }
  t.is(refused, 20);
  server.child.kill('SIGTERM');
  t.is(await server.exited, 0);
  const lines = logLines(server);
  const summaries = lines.filter((line) => SUMMARY.test(String(line.msg)));
  t.deepEqual(
    summaries.map((line) => line.count),
    [20],
    `one summary line, written at the exit: ${server.stdout()}`,
  );
  t.is(lines.filter((line) => line.msg === DOWN).length, 1);
});

test('the summary timer never holds the process open, and a flush writes what was counted at once', (t) => {
  const written: string[] = [];
  const logger = createLogger(
    { level: 'warn', format: 'json', production: false },
    { write: (line: string) => void written.push(line) },
  );
  const summary = summarizedWarning(logger, (count) => `${count} things`);
  const timers = () => process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;
  const before = timers();
  summary.add({ n: 1 });
  summary.add({ n: 2 });
  t.is(timers(), before, 'the pending summary adds no timer that keeps the process alive');
  t.deepEqual(written, [], 'nothing written before the interval ends');
  summary.flush();
  t.deepEqual(
    written.map((line) => JSON.parse(line) as LogLine).map(({ count, first, msg }) => ({ count, first, msg })),
    [{ count: 2, first: { n: 1 }, msg: '2 things' }],
  );
  summary.flush();
  t.is(written.length, 1, 'an empty interval writes nothing');
});

/**
 * `npm run bench`: what sessions cost, per request, against two yardsticks measured in the same rounds.
 * Every server runs in its own process and is loaded in turn by autocannon from this process over
 * loopback, in two scenarios:
 *   - GET /get with a live session (the cookie of an earlier /set), and
 *   - GET /set without a cookie (every request creates a new session).
 * The servers: bare Koa with the same routes (no sessions), koa-session's floor (the cheapest setup
 * koa-session allows: unsafe, it measures koa-session alone; see baseline-server.ts), this template
 * with each store asked for, and for reference koa-session's defaults and the template logging a line
 * per request (LOG_LEVEL=info).
 *
 * The estimator, built for a shared, noisy 2-core machine (see cpu.ts and the README's "Benchmark"):
 * the server's own CPU time per request, from many short rounds whose order rotates, taking the mean
 * of each server's least disturbed quarter of rounds. Ratios are CPU time of the yardstick over CPU
 * time of the row: the throughput one core would give, relative. For the Redis store the Redis
 * server's CPU time counts too (it does part of the work). The spread column gives the ratio from the
 * odd and from the even rounds alone: two halves that agree are an answer that repeats.
 *
 * Run `npm run bench -- --help` for the options.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { type ServerProcess, startServerProcess } from '../helpers/process.ts';
import { processCpuMicros, redisCpuReader } from './cpu.ts';
import { leastDisturbed } from './estimate.ts';

const USAGE = `npm run bench -- [options]

  --stores memory,redis   which stores to measure (default memory; redis uses REDIS_URL, default redis://127.0.0.1:6379)
  --rounds 12             rounds; each loads every server once per scenario, the order rotating between rounds
  --duration 2            seconds per load
  --connections 50        concurrent connections
  --no-reference          leave out koa-session's defaults (the reference row)
  --no-logging            leave out the LOG_LEVEL=info row (the cost of one log line per request)
  --only get|set          measure one scenario only
  --json FILE             also write every round's samples to FILE
  --help                  this text

A default run takes about 2 minutes with --stores memory (5 servers x 2 scenarios x 12 rounds x 2 s,
plus start-up and warm-up), 3 with --stores memory,redis.`;

function readOptions() {
  try {
    return parseArgs({
      options: {
        stores: { type: 'string', default: 'memory' },
        duration: { type: 'string', default: '2' },
        connections: { type: 'string', default: '50' },
        rounds: { type: 'string', default: '12' },
        'no-reference': { type: 'boolean', default: false },
        'no-logging': { type: 'boolean', default: false },
        json: { type: 'string' },
        only: { type: 'string' },
        help: { type: 'boolean', default: false },
      },
    }).values;
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}\n`);
    process.exit(2);
  }
}
const options = readOptions();
if (options.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const stores = options.stores.split(',').map((store) => store.trim());
const duration = Number(options.duration);
const connections = Number(options.connections);
const rounds = Number(options.rounds);
const SESSION_KEYS = 'bench-signing-key-0123456789abcdefghijklmnop';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const BASELINE_SERVER = fileURLToPath(new URL('./baseline-server.ts', import.meta.url));
const HEAP_SCRIPT = fileURLToPath(new URL('./heap.ts', import.meta.url));

/** One load of one server in one scenario. */
interface Sample {
  readonly round: number;
  readonly requests: number;
  readonly requestsPerSecond: number;
  readonly p99Ms: number;
  readonly errors: number;
  /** CPU time per request of the server process (plus Redis's, for the Redis store), in µs. */
  readonly cpuMicrosPerRequest: number;
}

interface Target {
  readonly name: string;
  readonly server: ServerProcess & { url: string };
  readonly cookie: string;
  /** Whether Redis's CPU time counts as this server's (the Redis store). */
  readonly usesRedis: boolean;
}

const FLOOR = 'koa-session floor (unsafe, measures koa-session alone)';
const BARE = 'bare Koa';

async function liveSessionCookie(baseUrl: string): Promise<string> {
  const response = await fetch(`${baseUrl}/set`);
  const cookies = response.headers.getSetCookie().map((cookie) => cookie.split(';')[0]);
  if (cookies.length === 0) throw new Error(`${baseUrl}/set sent no cookie`);
  return cookies.join('; ');
}

/** The baseline servers announce their URL like app/server.ts does. */
function startBaseline(kind: 'bare' | 'floor' | 'koa-session'): Promise<ServerProcess & { url: string }> {
  return startServerProcess({}, { script: BASELINE_SERVER, args: [kind] });
}

async function startTargets(): Promise<Target[]> {
  const targets: Target[] = [];
  const add = async (name: string, server: ServerProcess & { url: string }, usesRedis = false) =>
    targets.push({ name, server, cookie: name === BARE ? '' : await liveSessionCookie(server.url), usesRedis });
  await add(BARE, await startBaseline('bare'));
  await add(FLOOR, await startBaseline('floor'));
  if (!options['no-reference']) await add('koa-session defaults + Map (reference)', await startBaseline('koa-session'));
  for (const store of stores) {
    const env: Record<string, string> = { SESSION_KEYS, LOG_LEVEL: 'warn', SESSION_STORE: store };
    if (store === 'redis') Object.assign(env, { REDIS_URL, REDIS_KEY_PREFIX: `bench:${process.pid}:` });
    await add(`this template, ${store} store`, await startServerProcess(env), store === 'redis');
  }
  if (!options['no-logging'] && stores.includes('memory')) {
    // The same server logging one line per request (the default level), to a pipe this process drains.
    const server = await startServerProcess({ SESSION_KEYS, LOG_LEVEL: 'info', LOG_FORMAT: 'json' });
    server.child.stdout?.removeAllListeners('data').resume(); // drained, not kept: millions of lines
    await add('this template, memory store, LOG_LEVEL=info', server);
  }
  return targets;
}

const scenarios = [
  { name: 'GET /get, live session', path: '/get', withCookie: true },
  { name: 'GET /set, new session each request', path: '/set', withCookie: false },
].filter((scenario) => options.only === undefined || scenario.path === `/${options.only}`);

async function main(): Promise<void> {
  const startedAt = Date.now();
  const redisCpu = stores.includes('redis') ? await redisCpuReader(REDIS_URL) : undefined;
  const targets = await startTargets();
  const samples = new Map<string, Sample[]>();
  const key = (scenario: string, target: string) => `${scenario}|${target}`;
  try {
    for (let round = 0; round < rounds; round++) {
      // Rotate the order every round (and flip the scenarios), so no server always follows the same one.
      const ordered = targets.map((_, i) => targets[(i + round) % targets.length]);
      for (const scenario of round % 2 ? [...scenarios].reverse() : scenarios) {
        for (const target of ordered) {
          const url = target.server.url + scenario.path;
          const headers: Record<string, string> = scenario.withCookie && target.cookie ? { cookie: target.cookie } : {};
          if (round === 0) await autocannon({ url, connections, duration: 2, headers }); // JIT warm-up
          const pid = target.server.child.pid!;
          const redisBefore = target.usesRedis ? await redisCpu!.read() : 0;
          const cpuBefore = processCpuMicros(pid);
          const result = await autocannon({ url, connections, duration, headers });
          const cpu = processCpuMicros(pid) - cpuBefore + (target.usesRedis ? (await redisCpu!.read()) - redisBefore : 0);
          const requests = result.requests.total;
          const sample: Sample = {
            round,
            requests,
            requestsPerSecond: requests / duration,
            p99Ms: result.latency.p99,
            errors: result.errors + result.timeouts + result.non2xx,
            cpuMicrosPerRequest: cpu / Math.max(1, requests),
          };
          samples.set(key(scenario.name, target.name), [...(samples.get(key(scenario.name, target.name)) ?? []), sample]);
          process.stderr.write(
            `round ${round + 1}/${rounds} ${scenario.name} ${target.name}: ${Math.round(sample.requestsPerSecond)} req/s, ${sample.cpuMicrosPerRequest.toFixed(1)} µs CPU/request\n`,
          );
        }
      }
    }
  } finally {
    for (const target of targets) target.server.child.kill('SIGTERM');
    await Promise.all(targets.map((target) => target.server.exited));
    await redisCpu?.close();
  }

  const heap = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', HEAP_SCRIPT, '100000'], { encoding: 'utf8' })) as {
    heapBytesPerSession: number;
  };

  const cpu = cpus();
  const tookSeconds = Math.round((Date.now() - startedAt) / 1000);
  const lines = [
    `Machine: ${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`,
    `autocannon: ${connections} connections over loopback; ${rounds} rounds of ${duration} s per server and scenario; run took ${tookSeconds} s; servers log at warn unless the row says otherwise`,
    "CPU µs/req: mean of the least disturbed quarter of rounds; ratios: CPU time of bare Koa (or the floor) over the row's (higher is better); spread: the same ratio from odd rounds / even rounds alone",
    '',
    '| scenario | server | CPU µs/req | req/s (best round) | p99 ms (that round) | vs bare Koa | vs floor | spread (odd / even) | errors |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |',
  ];
  for (const scenario of scenarios) {
    const of = (target: string) => samples.get(key(scenario.name, target))!;
    const half = (list: Sample[], parity: number) => list.filter((sample) => sample.round % 2 === parity);
    const cost = (list: Sample[]) => leastDisturbed(list.map((sample) => sample.cpuMicrosPerRequest));
    for (const target of targets) {
      const own = of(target.name);
      const best = own.reduce((a, b) => (b.requestsPerSecond > a.requestsPerSecond ? b : a));
      const ratio = (yardstick: string) => (target.name === yardstick ? '1' : (cost(of(yardstick)) / cost(own)).toFixed(2));
      const spread =
        target.name === FLOOR || rounds < 2 ? '' : [1, 0].map((parity) => (cost(half(of(FLOOR), parity)) / cost(half(own, parity))).toFixed(2)).join(' / ');
      const errors = own.reduce((sum, sample) => sum + sample.errors, 0);
      lines.push(
        `| ${scenario.name} | ${target.name} | ${cost(own).toFixed(1)} | ${Math.round(best.requestsPerSecond)} | ${best.p99Ms} | ${ratio(BARE)} | ${ratio(FLOOR)} | ${spread} | ${errors} |`,
      );
    }
  }
  lines.push('', `Memory store: ${heap.heapBytesPerSession} heap bytes per stored {time} session at 100k sessions`);
  process.stdout.write(`${lines.join('\n')}\n`);
  if (options.json) writeFileSync(options.json, `${JSON.stringify({ rounds, duration, connections, samples: Object.fromEntries(samples) }, null, 1)}\n`);
}

await main();

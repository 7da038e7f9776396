/**
 * `npm run bench`: the real server (app/server.ts) and a bare Koa app with the same routes
 * (baseline-server.ts), each in its own process, loaded in turn by autocannon from this process over
 * loopback. Reports req/s and p99 latency for
 *   - GET /get with a live session (the cookie of an earlier /set), and
 *   - GET /set without a cookie (every request creates a new session),
 * as a ratio to bare Koa measured in the same run, plus heap bytes per stored session (memory store).
 * For reference it also measures koa-session's defaults (Keygrip cookies, a plain Map store), and
 * the template once more at LOG_LEVEL=info (one log line per request) to show what logging costs.
 *
 * Run `npm run bench -- --help` for the options. A default run takes about 4 minutes.
 */
import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { type ServerProcess, startServerProcess } from '../helpers/process.ts';

const USAGE = `npm run bench -- [options]

  --stores memory,redis   which stores to measure (default memory; redis uses REDIS_URL, default redis://127.0.0.1:6379)
  --duration 10           seconds per measurement
  --connections 50        concurrent connections
  --rounds 3              rounds; each figure is the median over them, the order alternating between rounds
  --no-reference          leave out koa-session's defaults (the reference row)
  --no-logging            leave out the LOG_LEVEL=info row (the cost of one log line per request)
  --help                  this text

A default run takes about 4 minutes (6 servers x 2 scenarios x 3 rounds x 10 s, plus warm-up).`;

function readOptions() {
  try {
    return parseArgs({
      options: {
        stores: { type: 'string', default: 'memory' },
        duration: { type: 'string', default: '10' },
        connections: { type: 'string', default: '50' },
        rounds: { type: 'string', default: '3' },
        'no-reference': { type: 'boolean', default: false },
        'no-logging': { type: 'boolean', default: false },
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
const BASELINE_SERVER = fileURLToPath(new URL('./baseline-server.ts', import.meta.url));
const HEAP_SCRIPT = fileURLToPath(new URL('./heap.ts', import.meta.url));

interface Measurement {
  readonly requestsPerSecond: number;
  readonly p99Ms: number;
  readonly errors: number;
}

async function load(url: string, headers: Record<string, string>, seconds: number): Promise<Measurement> {
  const result = await autocannon({ url, connections, duration: seconds, headers });
  const errors = result.errors + result.timeouts + result.non2xx;
  return { requestsPerSecond: result.requests.average, p99Ms: result.latency.p99, errors };
}

async function liveSessionCookie(baseUrl: string): Promise<string> {
  const response = await fetch(`${baseUrl}/set`);
  const cookies = response.headers.getSetCookie().map((cookie) => cookie.split(';')[0]);
  if (cookies.length === 0) throw new Error(`${baseUrl}/set sent no cookie`);
  return cookies.join('; ');
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

interface Target {
  readonly name: string;
  readonly server: ServerProcess & { url: string };
  readonly cookie: string;
}

/** The baseline servers announce their URL like app/server.ts does. */
function startBaseline(kind: 'bare' | 'koa-session'): Promise<ServerProcess & { url: string }> {
  return startServerProcess({}, { script: BASELINE_SERVER, args: [kind] });
}

async function main(): Promise<void> {
  const targets: Target[] = [];
  targets.push({ name: 'bare Koa', server: await startBaseline('bare'), cookie: '' });
  if (!options['no-reference']) {
    const reference = await startBaseline('koa-session');
    targets.push({ name: 'koa-session defaults + Map (reference)', server: reference, cookie: await liveSessionCookie(reference.url) });
  }
  for (const store of stores) {
    const env: Record<string, string> = { SESSION_KEYS, LOG_LEVEL: 'warn', SESSION_STORE: store };
    if (store === 'redis') {
      env.REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
      env.REDIS_KEY_PREFIX = `bench:${process.pid}:`;
    }
    const server = await startServerProcess(env);
    targets.push({ name: `this template, ${store} store`, server, cookie: await liveSessionCookie(server.url) });
  }
  if (!options['no-logging'] && stores.includes('memory')) {
    // The same server logging one line per request (the default level), to a pipe this process drains.
    const server = await startServerProcess({ SESSION_KEYS, LOG_LEVEL: 'info', LOG_FORMAT: 'json' });
    server.child.stdout?.removeAllListeners('data').resume(); // drained, not kept: millions of lines
    targets.push({ name: 'this template, memory store, LOG_LEVEL=info', server, cookie: await liveSessionCookie(server.url) });
  }

  const scenarios = [
    { name: 'GET /get, live session', path: '/get', withCookie: true },
    { name: 'GET /set, new session each request', path: '/set', withCookie: false },
  ];
  const samples = new Map<string, Measurement[]>();
  const key = (scenario: string, target: string) => `${scenario}|${target}`;
  for (let round = 0; round < rounds; round++) {
    // Alternate the order each round so drift in machine load does not favour one target.
    const ordered = round % 2 ? [...targets].reverse() : targets;
    for (const scenario of scenarios) {
      for (const target of ordered) {
        const headers: Record<string, string> = scenario.withCookie && target.cookie ? { cookie: target.cookie } : {};
        if (round === 0) await load(target.server.url + scenario.path, headers, 2); // JIT warm-up
        const measurement = await load(target.server.url + scenario.path, headers, duration);
        samples.set(key(scenario.name, target.name), [...(samples.get(key(scenario.name, target.name)) ?? []), measurement]);
        process.stderr.write(
          `round ${round + 1}/${rounds} ${scenario.name} ${target.name}: ${Math.round(measurement.requestsPerSecond)} req/s, p99 ${measurement.p99Ms} ms\n`,
        );
      }
    }
  }
  for (const target of targets) target.server.child.kill('SIGTERM');

  const heap = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', HEAP_SCRIPT, '100000'], { encoding: 'utf8' })) as {
    heapBytesPerSession: number;
  };

  const cpu = cpus();
  const lines = [
    `Machine: ${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`,
    `autocannon: ${connections} connections, ${duration} s per measurement, median of ${rounds} round${rounds === 1 ? '' : 's'}, loopback; servers log at warn unless the row says otherwise`,
    '',
    '| scenario | server | req/s | p99 (ms) | vs bare Koa | errors |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
  ];
  for (const scenario of scenarios) {
    const bareRps = median(samples.get(key(scenario.name, 'bare Koa'))!.map((m) => m.requestsPerSecond));
    for (const target of targets) {
      const runs = samples.get(key(scenario.name, target.name))!;
      const rps = median(runs.map((m) => m.requestsPerSecond));
      const p99 = median(runs.map((m) => m.p99Ms));
      const errors = runs.reduce((sum, m) => sum + m.errors, 0);
      lines.push(`| ${scenario.name} | ${target.name} | ${Math.round(rps)} | ${p99} | ${(rps / bareRps).toFixed(2)} | ${errors} |`);
    }
  }
  lines.push('', `Memory store: ${heap.heapBytesPerSession} heap bytes per stored {time} session at 100k sessions`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();

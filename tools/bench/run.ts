/**
 * `npm run bench`: what sessions cost, per request, against two yardsticks measured in the same rounds.
 * Every server runs in its own process (one per scenario) and is loaded by autocannon from this
 * process over loopback, in three scenarios:
 *   - GET /get with a live session (the cookie of an earlier /set),
 *   - GET /set without a cookie (every request creates a new session), and
 *   - GET /get with a signed-in session (the template's rows; beside them the same template reading a
 *     session that is not signed in, so the gap is what the check of the user's epoch and list costs).
 * The servers: bare Koa with the same routes (no sessions), koa-session's floor (the cheapest setup
 * koa-session allows: unsafe, it measures koa-session alone; see baseline-server.ts), this template
 * (its own start-up with the benchmark's routes: server.ts, routes.ts) with each store asked for, and for reference koa-session's defaults and the template logging a line
 * per request (LOG_LEVEL=info). With --costs, also the template with each guarantee taken out
 * (variants.ts), and what each one costs; the variants are checked first (check.ts, also on its own:
 * --check, `npm run bench:check`).
 *
 * The estimator, built for a shared, noisy 2-core machine (see the README's "Benchmark"): each row is
 * loaded at the same moment as bare Koa and the floor, in many short rounds, and each round compares
 * their CPU time per request (read from /proc, see cpu.ts). Whatever disturbs a round (a neighbour,
 * the other vCPU busy, the clock) disturbs all three alike, so the ratio within a round holds where req/s, or CPU
 * time across rounds, swings by half. Ratios are the median over rounds of the yardstick's CPU time
 * over the row's: the throughput a core would give, relative. For the Redis store the Redis server's
 * CPU time counts too (it does part of the work). The spread column repeats the ratio from the odd and
 * from the even rounds alone: two halves that agree make an answer that repeats.
 *
 * Run `npm run bench -- --help` for the options.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { type ServerProcess, startServerProcess } from '../../test/helpers/process.ts';
import { checkVariants } from './check.ts';
import { pinToCpus, processCpuMicros, redisCpuReader } from './cpu.ts';
import { type BuiltVariant, buildVariant, VARIANTS } from './variants.ts';

const USAGE = `npm run bench -- [options]

  --stores memory,redis   which stores to measure (default memory; redis uses REDIS_URL, default redis://127.0.0.1:6379)
  --rounds 16             rounds; in each, every row is loaded once per scenario, with both yardsticks
  --duration 2            seconds per round and scenario
  --connections 16        concurrent connections per server
  --no-reference          leave out koa-session's defaults (the reference row)
  --no-logging            leave out the LOG_LEVEL=info row (the cost of one log line per request)
  --only get|set|signed   measure one scenario only (signed: GET /get with a signed-in session)
  --no-pin                let the scheduler place the servers (by default they share the last CPU, the load the others)
  --costs                 also measure the template (memory store) with each guarantee taken out, and what each costs
                          (see variants.ts; each such row is a copy of app/ with a few edits, unsafe by design);
                          runs --check first
  --check                 only check that the variants of --costs still fit app/ (exact edits) and take effect;
                          exits 1 if not (npm run bench:check; about 10 s)
  --json FILE             also write every round's samples to FILE
  --help                  this text

Each row other than the yardsticks is measured in turn, at the same moment as both yardsticks, after
1 s of load of its own. A run takes rows x 3 scenarios x (rounds + 1 warm-up) x (duration + 1 s): with
the defaults about 8 minutes (memory store, reference and logging rows, and in the signed-in scenario the
row not signed in), 12 with --stores memory,redis; --costs adds 10 rows (about 15 minutes with --rounds 8
--no-reference --no-logging). --only shortens it to one scenario.`;

function readOptions() {
  try {
    return parseArgs({
      options: {
        stores: { type: 'string', default: 'memory' },
        duration: { type: 'string', default: '2' },
        connections: { type: 'string', default: '16' },
        rounds: { type: 'string', default: '16' },
        'no-reference': { type: 'boolean', default: false },
        'no-logging': { type: 'boolean', default: false },
        json: { type: 'string' },
        'no-pin': { type: 'boolean', default: false },
        costs: { type: 'boolean', default: false },
        check: { type: 'boolean', default: false },
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
if (options.costs && !stores.includes('memory')) {
  process.stderr.write('--costs compares with the memory store: include it in --stores\n');
  process.exit(2);
}
if (options.check || options.costs) {
  try {
    await checkVariants((line) => process.stdout.write(`${line}\n`));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(1);
  }
  if (options.check) process.exit(0);
}
const duration = Number(options.duration);
const connections = Number(options.connections);
const rounds = Number(options.rounds);
const SESSION_KEYS = 'bench-signing-key-0123456789abcdefghijklmnop';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const BASELINE_SERVER = fileURLToPath(new URL('./baseline-server.ts', import.meta.url));
/** The template: its own start-up (app/server.ts) with the benchmark's routes. */
const BENCH_SERVER = fileURLToPath(new URL('./server.ts', import.meta.url));
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
  /** Of that, Redis's share (0 for the other servers). */
  readonly redisMicrosPerRequest: number;
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
const TEMPLATE_MEMORY = 'this template, memory store';
const withoutRow = (name: string) => `template without ${name}`;
const notSignedInRow = (store: string) => `this template, ${store} store, session not signed in`;
/** The variants' copies of app/ (--costs), built before any server starts and removed at the end. */
const builtVariants: BuiltVariant[] = [];
process.once('exit', () => {
  for (const built of builtVariants) built.remove();
});
// Ctrl-C or a kill: exit through the 'exit' handler above (a signal alone would skip it).
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

/** A live session's cookie, from /set; from /sign-in for a signed-in one (the template's rows only have it). */
async function liveSessionCookie(baseUrl: string, signedIn = false): Promise<string> {
  const response = await fetch(`${baseUrl}${signedIn ? '/sign-in' : '/set'}`, { method: signedIn ? 'POST' : 'GET' });
  const cookies = response.headers.getSetCookie().map((cookie) => cookie.split(';')[0]);
  if (cookies.length === 0) throw new Error(`${baseUrl}/set sent no cookie`);
  return cookies.join('; ');
}

/** A baseline server, started like the template's (it reports its address the same way). */
function startBaseline(kind: 'bare' | 'floor' | 'koa-session'): Promise<ServerProcess & { url: string }> {
  return startServerProcess({}, { script: BASELINE_SERVER, args: [kind] });
}

/** Every server process started, for the clean-up. */
const started: ServerProcess[] = [];

/**
 * One process per server and scenario: a server loaded with /set fills its store with new sessions
 * (and then expires and evicts them), and a /get server that shared it would be billed for that work;
 * the memory store's /get ratio moved between 0.73 and 1.06 with the round when it did.
 */
async function startTargets(scenario: Scenario): Promise<Target[]> {
  // The /get servers' live session must outlive the other rows' turns (about a minute with --costs,
  // SESSION_MAX_AGE's default): it is read only in its own row's turn. checkLiveSession() checks it.
  const sessionEnv: Record<string, string> = scenario.withCookie
    ? { SESSION_KEYS, SESSION_MAX_AGE: '1h' }
    : { SESSION_KEYS };
  const targets: Target[] = [];
  const add = async (
    name: string,
    serverStarting: Promise<ServerProcess & { url: string }>,
    usesRedis = false,
    template = true,
  ) => {
    const server = await serverStarting;
    started.push(server);
    const cookie = name === BARE ? '' : await liveSessionCookie(server.url, template && scenario.signedIn === true);
    targets.push({ name, server, cookie, usesRedis });
  };
  await add(BARE, startBaseline('bare'), false, false);
  await add(FLOOR, startBaseline('floor'), false, false);
  if (!options['no-reference'])
    await add('koa-session defaults + Map (reference)', startBaseline('koa-session'), false, false);
  for (const store of stores) {
    const env: Record<string, string> = { ...sessionEnv, LOG_LEVEL: 'warn', SESSION_STORE: store };
    if (store === 'redis') Object.assign(env, { REDIS_URL, REDIS_KEY_PREFIX: `bench:${process.pid}:` });
    await add(`this template, ${store} store`, startServerProcess(env, { script: BENCH_SERVER }), store === 'redis');
    if (scenario.signedIn) {
      // The same template reading a session that is not signed in, in the same rounds: the gap is the check.
      const server = startServerProcess(env, { script: BENCH_SERVER });
      await add(notSignedInRow(store), server, store === 'redis', false);
    }
  }
  if (!options['no-logging'] && stores.includes('memory')) {
    // The same server logging one line per request (the default level), to a pipe this process drains.
    const loggingEnv = { ...sessionEnv, LOG_LEVEL: 'info', LOG_FORMAT: 'json' };
    const server = startServerProcess(loggingEnv, { script: BENCH_SERVER }).then((logging) => {
      logging.child.stdout?.removeAllListeners('data').resume(); // drained, not kept: millions of lines
      return logging;
    });
    await add('this template, memory store, LOG_LEVEL=info', server);
  }
  if (options.costs) {
    for (const [index, variant] of VARIANTS.entries()) {
      await add(
        withoutRow(variant.name),
        startServerProcess({ ...sessionEnv, LOG_LEVEL: 'warn' }, { script: builtVariants[index].serverScript }),
      );
    }
  }
  return targets;
}

interface Scenario {
  /** What --only names it. */
  readonly id: string;
  readonly name: string;
  readonly path: string;
  readonly withCookie: boolean;
  /**
   * The template's rows read a signed-in session (its cookie from /sign-in): what checking the user's
   * epoch and list on every request costs. The yardsticks and the reference row read their /set session.
   */
  readonly signedIn?: boolean;
}

const scenarios: Scenario[] = [
  { id: 'get', name: 'GET /get, live session', path: '/get', withCookie: true },
  { id: 'set', name: 'GET /set, new session each request', path: '/set', withCookie: false },
  { id: 'signed', name: 'GET /get, signed-in session', path: '/get', withCookie: true, signedIn: true },
].filter((scenario) => options.only === undefined || scenario.id === options.only);

/** A /get row must measure a live session, not a miss (an expired one answers {} without an error). */
async function checkLiveSession(target: Target, scenario: Scenario): Promise<void> {
  if (!scenario.withCookie || target.name === BARE) return;
  const { url, headers } = requestFor(target, scenario);
  const body = (await (await fetch(url, { headers })).json()) as Record<string, unknown>;
  if (typeof body.time !== 'number')
    throw new Error(`${target.name}: the live session is gone (${JSON.stringify(body)}); its row would measure a miss`);
}

/** The median; for an even count, the mean of the middle two. */
function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** The URL and headers of a scenario's request to a target (its live session's cookie for /get). */
function requestFor(target: Target, scenario: Scenario): { url: string; headers: Record<string, string> } {
  return {
    url: target.server.url + scenario.path,
    headers: scenario.withCookie && target.cookie ? { cookie: target.cookie } : {},
  };
}

/** Loads one target for one round and reads what it cost. */
async function measure(target: Target, scenario: Scenario, round: number): Promise<Sample> {
  const { url, headers } = requestFor(target, scenario);
  const pid = target.server.child.pid!;
  const cpuBefore = processCpuMicros(pid);
  const result = await autocannon({ url, connections, duration, headers });
  const cpu = processCpuMicros(pid) - cpuBefore;
  const requests = result.requests.total;
  return {
    round,
    requests,
    requestsPerSecond: requests / duration,
    p99Ms: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
    cpuMicrosPerRequest: cpu / Math.max(1, requests),
    redisMicrosPerRequest: 0,
  };
}

/** One load of the two yardsticks and one candidate, at the same moment. */
interface Trio {
  readonly bare: Sample;
  readonly floor: Sample;
  readonly own: Sample;
}

async function main(): Promise<void> {
  const startedAt = Date.now();
  const redisCpu = stores.includes('redis') ? await redisCpuReader(REDIS_URL) : undefined;
  // trios[scenario][candidate]: one per round
  const trios = new Map<string, Map<string, Trio[]>>();
  let pinned = false;
  try {
    const targetsOf = new Map<string, Target[]>();
    if (options.costs) for (const variant of VARIANTS) builtVariants.push(buildVariant(variant)); // a stale edit fails here, before any server starts
    for (const scenario of scenarios) targetsOf.set(scenario.name, await startTargets(scenario));
    // With two CPUs or more: the servers on the last one, this process (the load) on the others.
    const cpuCount = cpus().length;
    pinned =
      !options['no-pin'] &&
      cpuCount >= 2 &&
      pinToCpus(process.pid, `0-${cpuCount - 2}`) &&
      started.every((server) => pinToCpus(server.child.pid!, String(cpuCount - 1)));
    for (const [scenario, [, , ...candidates]] of targetsOf)
      trios.set(scenario, new Map(candidates.map((c) => [c.name, []])));
    for (let round = -1; round < rounds; round++) {
      for (const scenario of round % 2 ? [...scenarios].reverse() : scenarios) {
        const [bare, floor, ...candidates] = targetsOf.get(scenario.name)!;
        // The candidates take turns, each loaded together with bare Koa and the floor: whatever the
        // machine does meanwhile (a neighbour, the other vCPU, the clock) it does to all three alike.
        for (let turn = 0; turn < candidates.length; turn++) {
          const candidate = candidates[(turn + Math.max(0, round)) % candidates.length];
          // The candidate sat idle while the others had their turns, and V8 shrinks an idle process's
          // heap: one unmeasured second of load first, as the yardsticks (loaded every turn) had.
          // Without it the memory-store rows drifted down by 0.2 once their heap held many sessions.
          await autocannon({ ...requestFor(candidate, scenario), connections, duration: 1 });
          const redisBefore = candidate.usesRedis ? await redisCpu!.read() : 0;
          const [bareSample, floorSample, ownSample] = await Promise.all(
            [bare, floor, candidate].map((target) => measure(target, scenario, round)),
          );
          await Promise.all([floor, candidate].map((target) => checkLiveSession(target, scenario)));
          if (round < 0) continue; // warm-up: the JIT compiles the hot paths
          // Only the Redis store's server talks to Redis: the work Redis did meanwhile is its own.
          const redisMicrosPerRequest = candidate.usesRedis
            ? ((await redisCpu!.read()) - redisBefore) / Math.max(1, ownSample.requests)
            : 0;
          const own = {
            ...ownSample,
            cpuMicrosPerRequest: ownSample.cpuMicrosPerRequest + redisMicrosPerRequest,
            redisMicrosPerRequest,
          };
          trios.get(scenario.name)!.get(candidate.name)!.push({ bare: bareSample, floor: floorSample, own });
          process.stderr.write(
            `round ${round + 1}/${rounds} ${scenario.name}: bare ${bareSample.cpuMicrosPerRequest.toFixed(1)}, floor ${floorSample.cpuMicrosPerRequest.toFixed(1)}, ${candidate.name} ${own.cpuMicrosPerRequest.toFixed(1)} µs CPU/request\n`,
          );
        }
      }
    }
  } finally {
    for (const server of started) server.child.kill('SIGTERM');
    await Promise.all(started.map((server) => server.exited));
    await redisCpu?.close();
  }

  const heap = JSON.parse(
    execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', HEAP_SCRIPT, '100000'], { encoding: 'utf8' }),
  ) as {
    heapBytesPerSession: number;
  };

  const cpu = cpus();
  const tookSeconds = Math.round((Date.now() - startedAt) / 1000);
  const lines = [
    `Machine: ${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`,
    `Each row loaded at the same moment as bare Koa and the floor, ${connections} connections each, over loopback; ${pinned ? `servers pinned to CPU ${cpu.length - 1}, load to the others` : 'not pinned'}; ${rounds} rounds of ${duration} s per scenario; run took ${tookSeconds} s; servers log at warn unless the row says otherwise`,
    "CPU µs/req: the server process's CPU time per request (Redis's included for the Redis store), median over rounds. vs bare Koa, vs floor: in each round, their CPU time per request over the row's (higher is better), median over rounds. spread: that median from the odd and from the even rounds alone",
    '',
    '| scenario | server | CPU µs/req | req/s | p99 ms | vs bare Koa | vs floor | spread vs floor (odd / even) | errors |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |',
  ];
  const redisLines: string[] = [];
  const signedInLines: string[] = [];
  const costLines: string[] = [];
  const row = (
    scenario: string,
    name: string,
    loads: readonly Sample[],
    versusBare: string,
    versusFloor: string,
    spread: string,
  ) => {
    const errors = loads.reduce((sum, sample) => sum + sample.errors, 0);
    const cell = (pick: (sample: Sample) => number) => median(loads.map(pick));
    lines.push(
      `| ${scenario} | ${name} | ${cell((m) => m.cpuMicrosPerRequest).toFixed(1)} | ${Math.round(cell((m) => m.requestsPerSecond))} | ${cell((m) => m.p99Ms)} | ${versusBare} | ${versusFloor} | ${spread} | ${errors} |`,
    );
  };
  for (const scenario of scenarios) {
    const all = [...trios.get(scenario.name)!.values()].flat();
    /** The median over rounds of yardstick CPU / candidate CPU, from the rounds `keep` selects. */
    const ratio = (
      trioList: readonly Trio[],
      yardstick: 'bare' | 'floor',
      keep: (index: number) => boolean = () => true,
    ) =>
      median(
        trioList
          .filter((_, i) => keep(i))
          .map((trio) => trio[yardstick].cpuMicrosPerRequest / trio.own.cpuMicrosPerRequest),
      );
    const floorVersusBare = median(
      all.map((trio) => trio.bare.cpuMicrosPerRequest / trio.floor.cpuMicrosPerRequest),
    ).toFixed(2);
    row(
      scenario.name,
      BARE,
      all.map((trio) => trio.bare),
      '1',
      '',
      '',
    );
    row(
      scenario.name,
      FLOOR,
      all.map((trio) => trio.floor),
      floorVersusBare,
      '1',
      '',
    );
    for (const [name, list] of trios.get(scenario.name)!) {
      // Round 1 (index 0) is odd.
      const spread =
        rounds < 2 ? '' : [0, 1].map((parity) => ratio(list, 'floor', (i) => i % 2 === parity).toFixed(2)).join(' / ');
      row(
        scenario.name,
        name,
        list.map((trio) => trio.own),
        ratio(list, 'bare').toFixed(2),
        ratio(list, 'floor').toFixed(2),
        spread,
      );
    }
    if (stores.includes('memory') && stores.includes('redis')) {
      // Each was measured against the floor in its own rounds: the ratio of those ratios.
      const memory = trios.get(scenario.name)!.get(TEMPLATE_MEMORY)!;
      const redis = trios.get(scenario.name)!.get('this template, redis store')!;
      const appOnly = redis.map((trio) => ({
        ...trio,
        own: { ...trio.own, cpuMicrosPerRequest: trio.own.cpuMicrosPerRequest - trio.own.redisMicrosPerRequest },
      }));
      const redisShare = median(redis.map((trio) => trio.own.redisMicrosPerRequest));
      redisLines.push(
        `${scenario.name}: Redis store / memory store ${(ratio(redis, 'floor') / ratio(memory, 'floor')).toFixed(2)} counting Redis's own CPU time (${redisShare.toFixed(1)} µs/req), ${(ratio(appOnly, 'floor') / ratio(memory, 'floor')).toFixed(2)} counting the app process alone`,
      );
    }
    if (scenario.signedIn) {
      // Both rows were measured against the floor in rounds of their own: the check's cost is the gap.
      const floorMicros = median(all.map((trio) => trio.floor.cpuMicrosPerRequest));
      for (const store of stores) {
        const signed = ratio(trios.get(scenario.name)!.get(`this template, ${store} store`)!, 'floor');
        const plain = ratio(trios.get(scenario.name)!.get(notSignedInRow(store))!, 'floor');
        signedInLines.push(
          `${store} store: a signed-in session's check costs ${(plain - signed).toFixed(3)} of the floor's throughput (${plain.toFixed(2)} not signed in, ${signed.toFixed(2)} signed in), ${(floorMicros / signed - floorMicros / plain).toFixed(1)} µs of CPU per request`,
        );
      }
    }
    if (options.costs) {
      // Each variant and the template were measured against the floor in rounds of their own: a
      // guarantee's cost is the gap between their ratios, in the floor's terms (share of its
      // throughput), and in µs at one figure for the floor (its median over the scenario's rounds).
      const templateRatio = ratio(trios.get(scenario.name)!.get(TEMPLATE_MEMORY)!, 'floor');
      const floorMicros = median(all.map((trio) => trio.floor.cpuMicrosPerRequest));
      for (const variant of VARIANTS) {
        const list = trios.get(scenario.name)!.get(withoutRow(variant.name))!;
        const variantRatio = ratio(list, 'floor');
        costLines.push(
          `| ${scenario.name} | ${variant.name} | ${templateRatio.toFixed(2)} | ${variantRatio.toFixed(2)} | ${(variantRatio - templateRatio).toFixed(2)} | ${(floorMicros / templateRatio - floorMicros / variantRatio).toFixed(1)} |`,
        );
      }
    }
  }
  if (redisLines.length > 0) lines.push('', ...redisLines);
  if (signedInLines.length > 0) lines.push('', ...signedInLines);
  if (costLines.length > 0) {
    lines.push(
      '',
      "What each guarantee costs (memory store): the template against the floor, with it and without it. Cost = the difference of the two ratios (before rounding), as a share of the floor's throughput, and in µs of CPU per request: the floor's median CPU time per request divided by each ratio, the difference of the two",
      '',
      '| scenario | guarantee taken out | template vs floor | without it vs floor | cost (share of the floor) | cost µs/req |',
      '| --- | --- | ---: | ---: | ---: | ---: |',
      ...costLines,
    );
  }
  lines.push('', `Memory store: ${heap.heapBytesPerSession} heap bytes per stored {time} session at 100k sessions`);
  process.stdout.write(`${lines.join('\n')}\n`);
  if (options.json) {
    const raw = Object.fromEntries(
      [...trios].map(([scenario, byCandidate]) => [scenario, Object.fromEntries(byCandidate)]),
    );
    writeFileSync(options.json, `${JSON.stringify({ rounds, duration, connections, trios: raw }, null, 1)}\n`);
  }
}

await main();

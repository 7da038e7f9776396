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
 * per request (LOG_LEVEL=info; the others log at warn), whose cost is printed as the ratio of the two in the same
 * rounds (--logging measures only that, the two loaded at the same moment). With --costs, also the template with
 * each guarantee taken out
 * (variants.ts), and what each one costs; the variants are checked first (check.ts, also on its own:
 * --check, `npm run bench:check`).
 *
 * The estimator, built for a shared, noisy 2-core machine (see docs/benchmark.md): each row is
 * loaded at the same moment as bare Koa and the floor, in many short rounds, and each round compares
 * their CPU time per request (read from /proc, see cpu.ts). Whatever disturbs a round (a neighbour,
 * the other vCPU busy, the clock) disturbs all three alike, so the ratio within a round holds where req/s, or CPU
 * time across rounds, swings by half. Ratios are the median over rounds of the yardstick's CPU time
 * over the row's: the throughput a core would give, relative. For the Redis stores Redis's CPU time
 * counts too (it does part of the work): the Redis at REDIS_URL's for the redis store, for the cluster
 * store that of every node of the Redis Cluster the benchmark starts for it (stores.ts). The spread
 * column repeats the ratio from the odd and from the even rounds alone: two halves that agree make an
 * answer that repeats. With --sessions, the get scenario's memory and redis rows become one row per store size, each
 * filled before the first round (growth.ts), to show how a /get's cost grows with the live sessions.
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
import { checkStores, checkVariants } from './check.ts';
import { pinToCpus, processCpuSplitMicros, type RedisCpu, redisCpuReader } from './cpu.ts';
import { type Fill, fillMemoryRow, fillRedisRow, OwnRedis } from './growth.ts';
import {
  HAS_NODE_SQLITE,
  isStoreName,
  NO_SQLITE_LINE,
  STORE_LABELS,
  STORES,
  type StoreName,
  type StoreSetup,
  setUpStore,
} from './stores.ts';
import { type BuiltVariant, buildVariant, VARIANTS } from './variants.ts';

const USAGE = `npm run bench -- [options]

  --stores memory,redis,cluster,sqlite
                          which stores to measure (default memory): redis uses the Redis at REDIS_URL (default
                          redis://127.0.0.1:6379); cluster starts a Redis Cluster of its own on spare ports (3
                          masters; redis-server and redis-cli from the PATH) and stops it after; for both, Redis's
                          CPU time counts as the row's (all three nodes' for the Cluster); sqlite keeps its files in
                          a temp folder, removed after (node:sqlite: Node 22.13 or later; on an older Node the row is
                          left out, with a line that says so)
  --rounds 16             rounds; in each, every row is loaded once per scenario, with both yardsticks
  --duration 2            seconds per round and scenario
  --connections 16        concurrent connections per server
  --no-reference          leave out koa-session's defaults (the reference row)
  --no-logging            leave out the LOG_LEVEL=info row and its ratio to the same server at warn (the cost of
                          one log line per request)
  --logging               only what one log line per request costs: the template at LOG_LEVEL=info and at warn,
                          loaded at the same moment (with the floor), and their ratio; memory store, no other rows;
                          the get and set scenarios (--only signed for the signed-in one)
  --only get|set|signed   measure one scenario only (signed: GET /get with a signed-in session)
  --sessions 0,10000,100000,1000000
                          how GET /get's cost grows with the live sessions in the store: in the get scenario, the
                          memory and redis stores' row becomes one row per size, its store filled to that many
                          sessions (the row's live session included) before the first round, and each size is
                          compared with the small case (0, one live session; added if not listed). Memory store:
                          SESSION_MAX_ENTRIES above the largest size; Redis: a redis-server of its own per row
                          (from the PATH), not REDIS_URL's. The cluster and sqlite stores keep their one row
  --no-pin                let the scheduler place the servers (by default they share the last CPU, the load the others)
  --costs                 also measure the template (memory store) with each guarantee taken out, and what each costs
                          (see variants.ts; each such row is a copy of app/ with a few edits, unsafe by design);
                          checks the variants first, as --check does
  --variants TEXT,TEXT    with --costs, only the variants whose name contains one of these texts (e.g. all,Cache)
  --calibrate 15          also measure the floor with that many µs of busy work per request: what a known amount of
                          added work costs a server in these rounds (a row, and a line below the table)
  --check                 only check that the variants of --costs still fit app/ (exact edits) and take effect,
                          that the cluster and sqlite rows start and keep their sessions in their store, and that
                          the --sessions rows fill their stores and still serve their live session;
                          exits 1 if not (npm run bench:check; 10 to 20 s)
  --json FILE             also write every round's samples to FILE
  --help                  this text

Each row other than the yardsticks is measured in turn, at the same moment as both yardsticks, after
1 s of load of its own. A run takes rows x 3 scenarios x (rounds + 1 warm-up) x (duration + 1 s): with
the defaults about 8 minutes (memory store, reference and logging rows, and in the signed-in scenario the
row not signed in), 12 with --stores memory,redis, 19 with --stores memory,redis,cluster,sqlite (each store
adds 4 rows: one per scenario and its row not signed in; about 3.5 minutes); --costs adds 12 rows (about 6
minutes a scenario with --only and --rounds 8 --no-reference --no-logging; --variants measures fewer). --only shortens it to one scenario; --logging takes 2 minutes.
--sessions adds a row per size other than 0 and store (memory, redis), in the get scenario only, plus the fills
(a few seconds per million sessions):

  npm run bench -- --only get --stores memory,redis --no-reference --no-logging --sessions 0,10000,100000,1000000`;

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
        logging: { type: 'boolean', default: false },
        json: { type: 'string' },
        'no-pin': { type: 'boolean', default: false },
        costs: { type: 'boolean', default: false },
        variants: { type: 'string' },
        calibrate: { type: 'string' },
        check: { type: 'boolean', default: false },
        only: { type: 'string' },
        sessions: { type: 'string' },
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
const unknownStores = options.stores
  .split(',')
  .map((store) => store.trim())
  .filter((store) => !isStoreName(store));
if (unknownStores.length > 0) {
  process.stderr.write(`--stores: no store ${unknownStores.join(', ')}; the stores are ${STORES.join(', ')}\n`);
  process.exit(2);
}
const stores = [...new Set(options.stores.split(',').map((store) => store.trim() as StoreName))].filter((store) => {
  if (store !== 'sqlite' || HAS_NODE_SQLITE) return true;
  process.stderr.write(`${NO_SQLITE_LINE}\n`);
  return false;
});
if (stores.length === 0) {
  process.stderr.write('--stores: no store left to measure\n');
  process.exit(2);
}
if (options.logging && (options.costs || options['no-logging'] || options.stores !== 'memory')) {
  process.stderr.write(
    '--logging measures the template with the memory store alone: no --costs, --stores or --no-logging\n',
  );
  process.exit(2);
}
/** --sessions: the store sizes of the get scenario's growth rows, smallest first; none without it. */
const sessionSizes = readSessionSizes(options.sessions);
function readSessionSizes(list: string | undefined): number[] {
  if (list === undefined) return [];
  const sizes = list.split(',').map((size) => Number(size.trim().replaceAll('_', '')));
  if (sizes.some((size) => !(Number.isSafeInteger(size) && size >= 0)) || list.trim() === '') {
    process.stderr.write(`--sessions: a list of whole numbers of sessions (0,10000,100000), not ${list}\n`);
    process.exit(2);
  }
  return [...new Set([0, ...sizes])].sort((a, b) => a - b);
}
if (sessionSizes.length > 0) {
  const problem = options.logging
    ? '--sessions measures the store rows, which --logging leaves out'
    : options.only !== undefined && options.only !== 'get'
      ? '--sessions measures GET /get with a live session: --only get, or no --only'
      : !stores.some(isGrowing)
        ? '--sessions: the memory and redis stores only; include one of them in --stores'
        : undefined;
  if (problem !== undefined) {
    process.stderr.write(`${problem}\n`);
    process.exit(2);
  }
}
/** Whether --sessions gives a store rows per size (in the get scenario). */
function isGrowing(store: StoreName): boolean {
  return store === 'memory' || store === 'redis';
}
/** The variants --costs measures: every one, or those --variants names (a part of the name each). */
const variantNames = options.variants
  ?.split(',')
  .map((text) => text.trim())
  .filter((text) => text !== '');
const chosenVariants = VARIANTS.filter(
  (variant) => variantNames === undefined || variantNames.some((text) => variant.name.includes(text)),
);
if (variantNames !== undefined && (!options.costs || chosenVariants.length === 0)) {
  process.stderr.write(
    `--variants picks among --costs's variants (${VARIANTS.map((variant) => variant.name).join('; ')}): none matched, or no --costs\n`,
  );
  process.exit(2);
}
/** --calibrate: µs of busy work per request in the calibration row (0: no such row). */
const calibrateMicros = options.calibrate === undefined ? 0 : Number(options.calibrate);
if (!(Number.isFinite(calibrateMicros) && calibrateMicros >= 0) || (options.logging && calibrateMicros > 0)) {
  process.stderr.write('--calibrate takes a number of µs (not with --logging)\n');
  process.exit(2);
}
const CALIBRATION = `koa-session floor + ${calibrateMicros} µs of busy work per request (calibration)`;
if (options.costs && !stores.includes('memory')) {
  process.stderr.write('--costs compares with the memory store: include it in --stores\n');
  process.exit(2);
}
if (options.check || options.costs) {
  try {
    const log = (line: string) => process.stdout.write(`${line}\n`);
    // At the same moment: a Cluster's start is mostly waiting for its nodes to agree.
    await Promise.all([checkVariants(log), options.check ? checkStores(log) : undefined]);
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
/** About what heap.ts measures per stored session: the --sessions fills are checked against it. */
const HEAP_BYTES_PER_SESSION_EXPECTED = 240;
/** The template with POST /bench-fill, for the --sessions rows (growth-server.ts). */
const GROWTH_SERVER = fileURLToPath(new URL('./growth-server.ts', import.meta.url));

/** One load of one server in one scenario. */
interface Sample {
  readonly round: number;
  readonly requests: number;
  readonly requestsPerSecond: number;
  readonly p99Ms: number;
  readonly errors: number;
  /** CPU time per request of the server process (plus Redis's, for the Redis stores), in µs. */
  readonly cpuMicrosPerRequest: number;
  /** Of that, Redis's share (the Cluster's nodes' together for the cluster store; 0 for the other servers). */
  readonly redisMicrosPerRequest: number;
  /**
   * Of the server process's own, the kernel's share (system time): its socket reads and writes, and on
   * loopback the load generator's side of them too (waking it, delivering to its socket).
   */
  readonly systemMicrosPerRequest: number;
}

interface Target {
  readonly name: string;
  readonly server: ServerProcess & { url: string };
  readonly cookie: string;
  /** The Redis servers whose CPU time counts as this server's (the Redis stores' rows). */
  readonly redisCpu?: RedisCpu;
}

const FLOOR = 'koa-session floor (unsafe, measures koa-session alone)';
const BARE = 'bare Koa';
const TEMPLATE_MEMORY = 'this template, memory store';
const TEMPLATE_INFO = 'this template, memory store, LOG_LEVEL=info';
const withoutRow = (name: string) => `template without ${name}`;
const storeRow = (store: StoreName) => `this template, ${STORE_LABELS[store]} store`;
/** A --sessions row: the small case (size 0: the row's live session alone) keeps the store's row name. */
const sizeRow = (store: StoreName, size: number) =>
  size === 0 ? storeRow(store) : `${storeRow(store)}, ${size.toLocaleString('en-US')} live sessions`;
const notSignedInRow = (store: StoreName) => `${storeRow(store)}, session not signed in`;
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
function startBaseline(
  kind: 'bare' | 'floor' | 'koa-session',
  env: Record<string, string> = {},
): Promise<ServerProcess & { url: string }> {
  return startServerProcess(env, { script: BASELINE_SERVER, args: [kind] });
}

/** Every server process started, for the clean-up. */
const started: ServerProcess[] = [];
/** The --sessions Redis rows' own redis-servers and the readers of their CPU time, stopped after the template's servers. */
const ownRedises: Array<{ redis: OwnRedis; cpu?: RedisCpu }> = [];
/** How each --sessions row's store was filled, by row name. */
const fills = new Map<string, Fill>();

/**
 * One process per server and scenario: a server loaded with /set fills its store with new sessions
 * (and then expires and evicts them), and a /get server that shared it would be billed for that work;
 * the memory store's /get ratio moved between 0.73 and 1.06 with the round when it did.
 */
async function startTargets(scenario: Scenario, setups: ReadonlyMap<StoreName, StoreSetup>): Promise<Target[]> {
  // The /get servers' live session must outlive the other rows' turns (about a minute with --costs,
  // SESSION_MAX_AGE's default): it is read only in its own row's turn. checkLiveSession() checks it.
  const sessionEnv: Record<string, string> = scenario.withCookie
    ? { SESSION_KEYS, SESSION_MAX_AGE: '1h' }
    : { SESSION_KEYS };
  const targets: Target[] = [];
  const add = async (
    name: string,
    serverStarting: Promise<ServerProcess & { url: string }>,
    redisCpu: RedisCpu | undefined = undefined,
    template = true,
  ) => {
    const server = await serverStarting;
    started.push(server);
    const cookie = name === BARE ? '' : await liveSessionCookie(server.url, template && scenario.signedIn === true);
    const target = { name, server, cookie, redisCpu };
    targets.push(target);
    return target;
  };
  const startTemplate = (env: Record<string, string>) => startServerProcess(env, { script: BENCH_SERVER });
  // The same server logging one line per request (the default level), to a pipe this process drains.
  const startLogging = () =>
    startTemplate({ ...sessionEnv, LOG_LEVEL: 'info', LOG_FORMAT: 'json' }).then((logging) => {
      logging.child.stdout?.removeAllListeners('data').resume(); // drained, not kept: millions of lines
      return logging;
    });
  if (options.logging) {
    // The template at warn takes bare Koa's place: loaded at the same moment as the template at info
    // (and the floor, so that three servers share the CPU as in the other runs), the ratio of the two
    // needs no yardstick in between.
    await add(TEMPLATE_MEMORY, startTemplate({ ...sessionEnv, LOG_LEVEL: 'warn', SESSION_STORE: 'memory' }));
    await add(FLOOR, startBaseline('floor'), undefined, false);
    await add(TEMPLATE_INFO, startLogging());
    return targets;
  }
  await add(BARE, startBaseline('bare'), undefined, false);
  await add(FLOOR, startBaseline('floor'), undefined, false);
  if (!options['no-reference'])
    await add('koa-session defaults + Map (reference)', startBaseline('koa-session'), undefined, false);
  for (const store of stores) {
    const setup = setups.get(store)!;
    const env = () => ({ ...sessionEnv, LOG_LEVEL: 'warn', ...setup.env() });
    if (scenario.id === 'get' && sessionSizes.length > 0 && isGrowing(store)) {
      await addGrowthRows(store, env(), add);
      continue;
    }
    await add(storeRow(store), startTemplate(env()), setup.redisCpu);
    if (scenario.signedIn) {
      // The same template reading a session that is not signed in, in the same rounds: the gap is the check.
      await add(notSignedInRow(store), startTemplate(env()), setup.redisCpu, false);
    }
  }
  if (!options['no-logging'] && stores.includes('memory')) await add(TEMPLATE_INFO, startLogging());
  if (options.costs) {
    for (const [index, variant] of chosenVariants.entries()) {
      await add(
        withoutRow(variant.name),
        startServerProcess({ ...sessionEnv, LOG_LEVEL: 'warn' }, { script: builtVariants[index].serverScript }),
      );
    }
  }
  if (calibrateMicros > 0) {
    await add(CALIBRATION, startBaseline('floor', { BENCH_BUSY_MICROS: String(calibrateMicros) }), undefined, false);
  }
  return targets;
}

/**
 * --sessions: one row per size for `store` (memory or redis), each server started and its store filled to that
 * many sessions, its live session included (growth.ts), before any round.
 */
async function addGrowthRows(
  store: StoreName,
  env: Record<string, string>,
  add: (name: string, starting: Promise<ServerProcess & { url: string }>, redisCpu?: RedisCpu) => Promise<Target>,
): Promise<void> {
  for (const size of sessionSizes) {
    const name = sizeRow(store, size);
    if (store === 'memory') {
      // The same bound for every size (no eviction at the largest), so that the rows differ by their count alone.
      const maxEntries = String(Math.max(100_000, sessionSizes.at(-1)! + 1_000));
      const target = await add(
        name,
        startServerProcess({ ...env, SESSION_MAX_ENTRIES: maxEntries }, { script: GROWTH_SERVER }),
      );
      fills.set(name, await fillMemoryRow(target.server.url, Math.max(1, size)));
    } else {
      const redis = await OwnRedis.start();
      const own: { redis: OwnRedis; cpu?: RedisCpu } = { redis };
      ownRedises.push(own);
      const redisCpu = await redisCpuReader(redis.url);
      own.cpu = redisCpu;
      await add(name, startServerProcess({ ...env, REDIS_URL: redis.url }, { script: GROWTH_SERVER }), redisCpu);
      fills.set(name, await fillRedisRow(redis.url, env.REDIS_KEY_PREFIX, Math.max(1, size)));
    }
    const fill = fills.get(name)!;
    // A memory store entry is a few hundred heap bytes (docs/benchmark.md); far more would mean the fill kept
    // something else alive, and the row would measure a bigger heap than its sessions make.
    if (store === 'memory' && size >= 10_000 && fill.bytesPerSession > 2 * HEAP_BYTES_PER_SESSION_EXPECTED)
      process.stderr.write(`${name}: warning: the heap grew by ${fill.bytesPerSession} bytes per session\n`);
    process.stderr.write(
      `${name}: ${fill.sessions} session${fill.sessions === 1 ? '' : 's'} in the store, filled in ${(fill.fillMs / 1000).toFixed(2)} s, ${fill.bytesPerSession} bytes per session (${store === 'memory' ? 'heap' : "Redis's used_memory"})\n`,
    );
  }
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
].filter((scenario) =>
  // --logging leaves out the signed-in scenario unless asked for: the log line is the same there.
  options.only === undefined ? !(options.logging && scenario.signedIn) : scenario.id === options.only,
);

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
  const before = processCpuSplitMicros(pid);
  const result = await autocannon({ url, connections, duration, headers });
  const after = processCpuSplitMicros(pid);
  const system = after.system - before.system;
  const cpu = after.user - before.user + system;
  const requests = result.requests.total;
  return {
    round,
    requests,
    requestsPerSecond: requests / duration,
    p99Ms: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
    cpuMicrosPerRequest: cpu / Math.max(1, requests),
    redisMicrosPerRequest: 0,
    systemMicrosPerRequest: system / Math.max(1, requests),
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
  // The stores' own servers and files; a Cluster's nodes start here, before the pinning below, so that
  // like the Redis at REDIS_URL they are not pinned.
  const setups = new Map<StoreName, StoreSetup>();
  // trios[scenario][candidate]: one per round
  const trios = new Map<string, Map<string, Trio[]>>();
  let pinned = false;
  try {
    const targetsOf = new Map<string, Target[]>();
    if (options.costs) for (const variant of chosenVariants) builtVariants.push(buildVariant(variant)); // a stale edit fails here, before any server starts
    for (const store of stores)
      setups.set(store, await setUpStore(store, { redisUrl: REDIS_URL, keyPrefix: `bench:${process.pid}:` }));
    for (const scenario of scenarios) targetsOf.set(scenario.name, await startTargets(scenario, setups));
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
        // (With --logging, `bare` is the template at warn.)
        const [bare, floor, ...candidates] = targetsOf.get(scenario.name)!;
        // The candidates take turns, each loaded together with bare Koa and the floor: whatever the
        // machine does meanwhile (a neighbour, the other vCPU, the clock) it does to all three alike.
        for (let turn = 0; turn < candidates.length; turn++) {
          const candidate = candidates[(turn + Math.max(0, round)) % candidates.length];
          // The candidate sat idle while the others had their turns, and V8 shrinks an idle process's
          // heap: one unmeasured second of load first, as the yardsticks (loaded every turn) had.
          // Without it the memory-store rows drifted down by 0.2 once their heap held many sessions.
          await autocannon({ ...requestFor(candidate, scenario), connections, duration: 1 });
          const redisBefore = (await candidate.redisCpu?.read()) ?? 0;
          const [bareSample, floorSample, ownSample] = await Promise.all(
            [bare, floor, candidate].map((target) => measure(target, scenario, round)),
          );
          await Promise.all([floor, candidate].map((target) => checkLiveSession(target, scenario)));
          if (round < 0) continue; // warm-up: the JIT compiles the hot paths
          // Only the Redis stores' servers talk to Redis (to the Cluster, the cluster store's alone), and one
          // at a time: the work Redis did meanwhile is the candidate's.
          const redisMicrosPerRequest = candidate.redisCpu
            ? ((await candidate.redisCpu.read()) - redisBefore) / Math.max(1, ownSample.requests)
            : 0;
          const own = {
            ...ownSample,
            cpuMicrosPerRequest: ownSample.cpuMicrosPerRequest + redisMicrosPerRequest,
            redisMicrosPerRequest,
          };
          trios.get(scenario.name)!.get(candidate.name)!.push({ bare: bareSample, floor: floorSample, own });
          process.stderr.write(
            `round ${round + 1}/${rounds} ${scenario.name}: ${bare.name} ${bareSample.cpuMicrosPerRequest.toFixed(1)}, floor ${floorSample.cpuMicrosPerRequest.toFixed(1)}, ${candidate.name} ${own.cpuMicrosPerRequest.toFixed(1)} µs CPU/request\n`,
          );
        }
      }
    }
  } finally {
    for (const server of started) server.child.kill('SIGTERM');
    await Promise.all(started.map((server) => server.exited));
    for (const setup of setups.values()) await setup.stop();
    for (const { redis, cpu } of ownRedises) {
      await cpu?.close();
      await redis.stop();
    }
  }
  if (options.logging) {
    printLogging(trios, pinned, Math.round((Date.now() - startedAt) / 1000));
    return;
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
    "CPU µs/req: the server process's CPU time per request (Redis's included for the Redis stores, all the Cluster's nodes' for the Redis Cluster), median over rounds. vs bare Koa, vs floor: in each round, their CPU time per request over the row's (higher is better), median over rounds. spread: that median from the odd and from the even rounds alone",
    '',
    '| scenario | server | CPU µs/req | req/s | p99 ms | vs bare Koa | vs floor | spread vs floor (odd / even) | errors |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |',
  ];
  const storeLines: string[] = [];
  const cpuShareLines: string[] = [];
  const growthLines: string[] = [];
  const signedInLines: string[] = [];
  const loggingLines: string[] = [];
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
    const calibration = trios.get(scenario.name)!.get(CALIBRATION);
    if (calibration !== undefined) {
      // The floor with known work added, against the floor itself in the same rounds.
      const added = median(calibration.map((trio) => trio.own.cpuMicrosPerRequest - trio.floor.cpuMicrosPerRequest));
      cpuShareLines.push(
        `${scenario.name}: ${calibrateMicros} µs of busy work per request cost the floor ${added.toFixed(1)} µs of CPU per request more, in the same rounds (median of per-round differences): added work shows here as ${(added / calibrateMicros).toFixed(1)} × itself`,
      );
    }
    const memoryRow = trios.get(scenario.name)!.get(TEMPLATE_MEMORY);
    if (memoryRow !== undefined) {
      // The kernel's share apart: on loopback a server's socket write also pays for delivering the answer
      // to the load generator and waking it, work the server would not do for a client on the network.
      const micros = (list: readonly Sample[], pick: (sample: Sample) => number) => median(list.map(pick)).toFixed(1);
      const userOf = (sample: Sample) => sample.cpuMicrosPerRequest - sample.systemMicrosPerRequest;
      const own = memoryRow.map((trio) => trio.own);
      const floor = memoryRow.map((trio) => trio.floor);
      const userRatio = median(memoryRow.map((trio) => userOf(trio.floor) / userOf(trio.own))).toFixed(2);
      cpuShareLines.push(
        `${scenario.name}: CPU µs/req in user space / in the kernel: ${TEMPLATE_MEMORY} ${micros(own, userOf)} / ${micros(own, (m) => m.systemMicrosPerRequest)}, the floor ${micros(floor, userOf)} / ${micros(floor, (m) => m.systemMicrosPerRequest)}; vs floor counting user-space time alone ${userRatio}`,
      );
    }
    for (const store of stores.includes('memory') ? stores : []) {
      if (store === 'memory') continue;
      // Each was measured against the floor in its own rounds: the ratio of those ratios.
      const memory = trios.get(scenario.name)!.get(TEMPLATE_MEMORY)!;
      const other = trios.get(scenario.name)!.get(storeRow(store))!;
      const versusMemory = (ratio(other, 'floor') / ratio(memory, 'floor')).toFixed(2);
      const name = store === 'redis' ? 'Redis' : STORE_LABELS[store];
      if (store === 'sqlite') {
        // In the app process: no server of its own to count apart.
        storeLines.push(`${scenario.name}: ${name} store / memory store ${versusMemory}`);
        continue;
      }
      const appOnly = other.map((trio) => ({
        ...trio,
        own: { ...trio.own, cpuMicrosPerRequest: trio.own.cpuMicrosPerRequest - trio.own.redisMicrosPerRequest },
      }));
      const redisShare = median(other.map((trio) => trio.own.redisMicrosPerRequest));
      const whose = store === 'redis' ? "Redis's own CPU time" : "the CPU time of the Cluster's nodes";
      storeLines.push(
        `${scenario.name}: ${name} store / memory store ${versusMemory} counting ${whose} (${redisShare.toFixed(1)} µs/req), ${(ratio(appOnly, 'floor') / ratio(memory, 'floor')).toFixed(2)} counting the app process alone`,
      );
    }
    if (scenario.id === 'get') {
      for (const store of sessionSizes.length > 0 ? stores.filter(isGrowing) : []) {
        // Each size was measured against the floor in its own turns of the same rounds: its cost relative to
        // the small case's is the ratio of the two rows' ratios to the floor (above 1: dearer).
        const small = trios.get(scenario.name)!.get(storeRow(store))!;
        const cell = (list: readonly Trio[], pick: (sample: Sample) => number) => median(list.map((t) => pick(t.own)));
        for (const size of sessionSizes.filter((size) => size > 0)) {
          const name = sizeRow(store, size);
          const list = trios.get(scenario.name)!.get(name)!;
          const relative = (keep: (index: number) => boolean) =>
            (ratio(small, 'floor', keep) / ratio(list, 'floor', keep)).toFixed(2);
          const halves =
            rounds < 2 ? '' : `, odd / even rounds ${relative((i) => i % 2 === 0)} / ${relative((i) => i % 2 === 1)}`;
          const fill = fills.get(name)!;
          const redisPart =
            store === 'redis'
              ? `, of which Redis ${cell(list, (m) => m.redisMicrosPerRequest).toFixed(1)} against ${cell(small, (m) => m.redisMicrosPerRequest).toFixed(1)}`
              : '';
          growthLines.push(
            `${STORE_LABELS[store]} store, ${size.toLocaleString('en-US')} live sessions: ${cell(list, (m) => m.cpuMicrosPerRequest).toFixed(1)} CPU µs/req against ${cell(small, (m) => m.cpuMicrosPerRequest).toFixed(1)} with one${redisPart}; cost ${relative(() => true)} × the small case's${halves}; p99 ${cell(list, (m) => m.p99Ms)} ms against ${cell(small, (m) => m.p99Ms)} ms; filled in ${(fill.fillMs / 1000).toFixed(2)} s, ${fill.bytesPerSession} ${store === 'memory' ? 'heap' : 'Redis used_memory'} bytes per session`,
          );
        }
      }
    }
    if (scenario.signedIn) {
      // Both rows were measured against the floor in rounds of their own: the check's cost is the gap.
      const floorMicros = median(all.map((trio) => trio.floor.cpuMicrosPerRequest));
      for (const store of stores) {
        const signed = ratio(trios.get(scenario.name)!.get(storeRow(store))!, 'floor');
        const plain = ratio(trios.get(scenario.name)!.get(notSignedInRow(store))!, 'floor');
        signedInLines.push(
          `${STORE_LABELS[store]} store: a signed-in session's check costs ${(plain - signed).toFixed(3)} of the floor's throughput (${plain.toFixed(2)} not signed in, ${signed.toFixed(2)} signed in), ${(floorMicros / signed - floorMicros / plain).toFixed(1)} µs of CPU per request`,
        );
      }
    }
    if (stores.includes('memory') && !options['no-logging']) {
      // The same server at info and at warn, each loaded with the floor in its turn of the same round:
      // in each round, the ratio of their ratios to the floor; the median over rounds, and its halves.
      const warn = trios.get(scenario.name)!.get(TEMPLATE_MEMORY)!;
      const info = trios.get(scenario.name)!.get(TEMPLATE_INFO)!;
      const perRound = info.map(
        (trio, i) =>
          (warn[i].own.cpuMicrosPerRequest / trio.own.cpuMicrosPerRequest) *
          (trio.floor.cpuMicrosPerRequest / warn[i].floor.cpuMicrosPerRequest),
      );
      const halves = [0, 1].map((parity) => median(perRound.filter((_, i) => i % 2 === parity)).toFixed(2));
      loggingLines.push(
        `${scenario.name}: LOG_LEVEL=info / warn ${median(perRound).toFixed(2)} (odd / even rounds: ${halves.join(' / ')}); CPU µs/req ${median(info.map((trio) => trio.own.cpuMicrosPerRequest)).toFixed(1)} at info, ${median(warn.map((trio) => trio.own.cpuMicrosPerRequest)).toFixed(1)} at warn`,
      );
    }
    if (options.costs) {
      // Each variant and the template were measured against the floor in rounds of their own: a
      // guarantee's cost is the gap between their ratios, in the floor's terms (share of its
      // throughput), and in µs at one figure for the floor (its median over the scenario's rounds).
      const templateRatio = ratio(trios.get(scenario.name)!.get(TEMPLATE_MEMORY)!, 'floor');
      const floorMicros = median(all.map((trio) => trio.floor.cpuMicrosPerRequest));
      for (const variant of chosenVariants) {
        const list = trios.get(scenario.name)!.get(withoutRow(variant.name))!;
        const variantRatio = ratio(list, 'floor');
        costLines.push(
          `| ${scenario.name} | ${variant.name} | ${templateRatio.toFixed(2)} | ${variantRatio.toFixed(2)} | ${(variantRatio - templateRatio).toFixed(2)} | ${(floorMicros / templateRatio - floorMicros / variantRatio).toFixed(1)} |`,
        );
      }
    }
  }
  if (cpuShareLines.length > 0) lines.push('', ...cpuShareLines);
  if (storeLines.length > 0) lines.push('', ...storeLines);
  if (growthLines.length > 0) {
    lines.push(
      '',
      `GET /get with a live session, against the number of live sessions in the store (--sessions; the small case: the row's live session alone; Redis: a redis-server of its own per row, its CPU time counted). Cost: the small case's ratio to the floor over the row's, each in its own turns of the same rounds (above 1: dearer)`,
      ...growthLines,
    );
  }
  if (signedInLines.length > 0) lines.push('', ...signedInLines);
  if (loggingLines.length > 0) {
    lines.push(
      '',
      'What one log line per request costs: the template at LOG_LEVEL=info against itself at warn, in the same rounds (each against the floor in its turn; higher is better, 1 = free)',
      ...loggingLines,
    );
  }
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

/** --logging's report: the template at info against itself at warn, loaded at the same moment. */
function printLogging(trios: Map<string, Map<string, Trio[]>>, pinned: boolean, tookSeconds: number): void {
  const cpu = cpus();
  const lines = [
    `Machine: ${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`,
    `The template (memory store) at LOG_LEVEL=info and at warn, loaded at the same moment with the floor, ${connections} connections each, over loopback; ${pinned ? `servers pinned to CPU ${cpu.length - 1}, load to the others` : 'not pinned'}; ${rounds} rounds of ${duration} s per scenario; run took ${tookSeconds} s`,
    "CPU µs/req: each server's CPU time per request, median over rounds. info / warn: in each round, the CPU time per request at warn over that at info (the throughput a core would give, relative; 1 = logging is free), median over rounds; in brackets, from the odd and from the even rounds alone",
    '',
    '| scenario | CPU µs/req: floor | at warn | at info | info / warn (odd / even) | errors |',
    '| --- | ---: | ---: | ---: | --- | ---: |',
  ];
  for (const scenario of scenarios) {
    const list = trios.get(scenario.name)!.get(TEMPLATE_INFO)!;
    const perRound = list.map((trio) => trio.bare.cpuMicrosPerRequest / trio.own.cpuMicrosPerRequest);
    const halves = [0, 1].map((parity) => median(perRound.filter((_, i) => i % 2 === parity)).toFixed(2));
    const cpuOf = (pick: (trio: Trio) => Sample) =>
      median(list.map((trio) => pick(trio).cpuMicrosPerRequest)).toFixed(1);
    const errors = list.reduce((sum, trio) => sum + trio.bare.errors + trio.own.errors, 0);
    lines.push(
      `| ${scenario.name} | ${cpuOf((trio) => trio.floor)} | ${cpuOf((trio) => trio.bare)} | ${cpuOf((trio) => trio.own)} | **${median(perRound).toFixed(2)}** (${halves.join(' / ')}) | ${errors} |`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  if (options.json) {
    const raw = Object.fromEntries(
      [...trios].map(([scenario, byCandidate]) => [scenario, { warnInfo: byCandidate.get(TEMPLATE_INFO) }]),
    );
    writeFileSync(options.json, `${JSON.stringify({ rounds, duration, connections, trios: raw }, null, 1)}\n`);
  }
}

await main();

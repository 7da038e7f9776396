/**
 * The variants check (`npm run bench:check`; run.ts also runs it before every --costs run): the
 * benchmark's variants (variants.ts) still build against today's app/, and their edits take effect.
 * A variant that silently measured the full template would report every guarantee as free.
 *
 *   1. Every variant applies each of its edits to exactly one place (building it throws otherwise).
 *   2. The benchmark's server, unedited, has the guarantees the variants take out: it refuses a
 *      cross-site /set (403), answers no-store, and signs the cookie. Without this, the next step
 *      could pass on a template that no longer had them to take out.
 *   3. The variant without every guarantee serves /set and /get, with none of them; the variant that
 *      makes its HMACs from copied hash states signs exactly as createHmac does.
 *
 * It edits copies only, never app/ itself. A failure after an edit to app/ means the variants' edits
 * name text that changed: update them in variants.ts (or delete tools/bench/ if you do not use the
 * benchmark).
 *
 * `npm run bench:check` also starts the rows of the stores with a set-up of their own (checkStores): the
 * template on a Redis Cluster the benchmark starts, and on a SQLite file (where Node has node:sqlite),
 * each serving /set and /get with its session kept in that store; and the --sessions rows (growth.ts), memory
 * and Redis, each filled to a few thousand sessions with its live session still served.
 */
import { createHmac } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { type ServerProcess, startServerProcess } from '../../test/helpers/process.ts';
import { fillMemoryRow, fillRedisRow, OwnRedis } from './growth.ts';
import { HAS_NODE_SQLITE, NO_SQLITE_LINE, STORE_LABELS, type StoreName, setUpStore } from './stores.ts';
import { buildVariant, VARIANTS } from './variants.ts';

const BENCH_SERVER = fileURLToPath(new URL('./server.ts', import.meta.url));
const GROWTH_SERVER = fileURLToPath(new URL('./growth-server.ts', import.meta.url));
const ENV = { SESSION_KEYS: 'bench-check-key-0123456789abcdefghijklmnop', LOG_LEVEL: 'warn' };
/** The fixed tag the variant without the signature puts in a cookie's place (see variants.ts). */
const FIXED_TAG = /\.A{43}$/;

/** What one server did with the requests the guarantees are about. */
interface Observed {
  readonly crossSiteSetStatus: number;
  readonly cacheControl: string | null;
  readonly cookie: string;
  readonly time: unknown;
}

async function observe(script: string, env: Record<string, string> = {}): Promise<Observed> {
  const server: ServerProcess & { url: string } = await startServerProcess({ ...ENV, ...env }, { script });
  try {
    const crossSite = await fetch(`${server.url}/set`, { headers: { 'Sec-Fetch-Site': 'cross-site' } });
    await crossSite.body?.cancel();
    const set = await fetch(`${server.url}/set`);
    const body = await set.text();
    if (set.status !== 200 || body !== 'ok') throw new Error(`/set answered ${set.status} ${JSON.stringify(body)}`);
    const cookie = set.headers
      .getSetCookie()
      .map((line) => line.split(';')[0])
      .find((pair) => pair.startsWith('sid='));
    if (cookie === undefined) throw new Error('/set set no sid cookie');
    const get = await fetch(`${server.url}/get`, { headers: { cookie } });
    if (get.status !== 200) throw new Error(`/get answered ${get.status}`);
    const session = (await get.json()) as { time?: unknown };
    return {
      crossSiteSetStatus: crossSite.status,
      cacheControl: set.headers.get('cache-control'),
      cookie,
      time: session.time,
    };
  } finally {
    server.child.kill('SIGTERM');
    await server.exited;
  }
}

/** `sid=<id>.<issued at>.<signature>`: the signed part and the signature. */
function splitCookie(cookie: string): [string, string] {
  const value = cookie.slice('sid='.length);
  const dot = value.lastIndexOf('.');
  return [value.slice(0, dot), value.slice(dot + 1)];
}

/** Throws, naming what differs, unless every expectation holds. */
function expect(what: string, checks: Record<string, boolean>, observed: Observed): void {
  const failed = Object.entries(checks)
    .filter(([, holds]) => !holds)
    .map(([name]) => name);
  if (failed.length > 0) throw new Error(`${what}: expected ${failed.join('; ')}, but saw ${JSON.stringify(observed)}`);
}

/** Runs the check; resolves when it passes, throws (with what to do) when it fails. */
export async function checkVariants(log: (line: string) => void): Promise<void> {
  try {
    if (VARIANTS.length < 2) throw new Error('variants.ts lists fewer than two variants');
    for (const variant of VARIANTS) buildVariant(variant).remove();
    log(`bench check: the ${VARIANTS.length} variants each apply every edit to exactly one place`);

    const template = await observe(BENCH_SERVER);
    expect(
      'the unedited benchmark server',
      {
        'a cross-site /set refused with 403': template.crossSiteSetStatus === 403,
        'Cache-Control: no-store': template.cacheControl === 'no-store',
        'a signed cookie (not the fixed tag)': !FIXED_TAG.test(template.cookie),
        '/get to show the stored time': Number.isInteger(template.time),
      },
      template,
    );
    log('bench check: the unedited benchmark server has the guarantees the variants take out');

    const everything = VARIANTS.find((variant) => variant.name === 'all of the above');
    if (everything === undefined) throw new Error('no variant takes out everything ("all of the above")');
    const built = buildVariant(everything);
    try {
      const stripped = await observe(built.serverScript);
      expect(
        'the variant without every guarantee',
        {
          'a cross-site /set served (200)': stripped.crossSiteSetStatus === 200,
          'no Cache-Control': stripped.cacheControl === null,
          'the fixed tag in place of the signature': FIXED_TAG.test(stripped.cookie),
          '/get to show the stored time': Number.isInteger(stripped.time),
        },
        stripped,
      );
    } finally {
      built.remove();
    }
    log('bench check: the variant without every guarantee serves /set and /get with none of them');

    const copiedStates = VARIANTS.find((variant) => variant.name.startsWith('createHmac'));
    if (copiedStates === undefined) throw new Error('no variant makes its HMACs from copied hash states');
    const builtCopied = buildVariant(copiedStates);
    try {
      const copied = await observe(builtCopied.serverScript);
      const [payload, signature] = splitCookie(copied.cookie);
      const expected = createHmac('sha256', ENV.SESSION_KEYS).update(`sid=${payload}`).digest('base64url');
      expect(
        'the variant with HMACs from copied hash states',
        {
          "createHmac's signature": signature === expected,
          '/get to show the stored time (its store key works)': Number.isInteger(copied.time),
        },
        copied,
      );
    } finally {
      builtCopied.remove();
    }
    log('bench check: the variant with HMACs from copied hash states signs exactly as createHmac does');
  } catch (error) {
    throw new Error(
      `bench check failed: ${(error as Error).message}\n` +
        'The benchmark (tools/bench/) measures copies of app/ with exact edits (tools/bench/variants.ts), and ' +
        'they no longer fit the app: after an edit to app/, update those edits to the new source (or delete ' +
        'tools/bench/ and its scripts if you do not use the benchmark). npm test covers the app; this checks the benchmark.',
      { cause: error },
    );
  }
}

/**
 * The cluster and sqlite rows start as run.ts starts them (stores.ts), serve /set and /get, and keep the
 * session in their store (not in the memory store, as a missing setting would). Not the redis row: it
 * needs a Redis at REDIS_URL, and starts as the cluster row does but for the settings.
 */
export async function checkStores(log: (line: string) => void): Promise<void> {
  const stores: StoreName[] = ['cluster'];
  if (HAS_NODE_SQLITE) stores.push('sqlite');
  else log(`bench check: ${NO_SQLITE_LINE}`);
  await Promise.all([
    ...stores.map((store) => checkStore(store, log)),
    checkGrowth('memory', log),
    checkGrowth('redis', log),
  ]);
}

/** A --sessions row: its server starts, its store fills to a few thousand sessions, its live session still reads. */
async function checkGrowth(store: 'memory' | 'redis', log: (line: string) => void): Promise<void> {
  const what = `the --sessions ${store} store's row`;
  const total = 5_000;
  try {
    const redis = store === 'redis' ? await OwnRedis.start() : undefined;
    try {
      const env: Record<string, string> =
        redis === undefined
          ? { SESSION_STORE: 'memory', SESSION_MAX_ENTRIES: String(2 * total) }
          : { SESSION_STORE: 'redis', REDIS_URL: redis.url, REDIS_KEY_PREFIX: 'bench-check:' };
      const server = await startServerProcess({ ...ENV, SESSION_MAX_AGE: '1h', ...env }, { script: GROWTH_SERVER });
      try {
        const set = await fetch(`${server.url}/set`);
        const cookie = set.headers.getSetCookie()[0]?.split(';')[0] ?? '';
        const fill =
          redis === undefined
            ? await fillMemoryRow(server.url, total)
            : await fillRedisRow(redis.url, 'bench-check:', total);
        const time = ((await (await fetch(`${server.url}/get`, { headers: { cookie } })).json()) as { time?: unknown })
          .time;
        if (!Number.isInteger(time))
          throw new Error(`after the fill, /get shows ${JSON.stringify(time)}, not the time`);
        if (!(fill.bytesPerSession > 0)) throw new Error(`the fill added ${fill.bytesPerSession} bytes per session`);
      } finally {
        server.child.kill('SIGTERM');
        await server.exited;
      }
    } finally {
      await redis?.stop();
    }
  } catch (error) {
    throw new Error(`bench check failed: ${what} did not fill or serve: ${(error as Error).message}`, { cause: error });
  }
  log(`bench check: ${what} fills its store to ${total} sessions and still serves its live session`);
}

async function checkStore(store: StoreName, log: (line: string) => void): Promise<void> {
  const what = `the ${STORE_LABELS[store]} store's row`;
  try {
    const setup = await setUpStore(store, { redisUrl: 'redis://127.0.0.1:6379', keyPrefix: 'bench-check:' });
    try {
      if (setup.redisCpu && !Number.isFinite(await setup.redisCpu.read()))
        throw new Error("its Redis servers' CPU time could not be read");
      const observed = await observe(BENCH_SERVER, setup.env());
      expect(what, { '/get to show the stored time': Number.isInteger(observed.time) }, observed);
      const count = await setup.countSessions!();
      if (count < 1) throw new Error(`its server answered, but the store holds ${count} sessions`);
    } finally {
      await setup.stop();
    }
  } catch (error) {
    throw new Error(`bench check failed: ${what} did not start or serve: ${(error as Error).message}`, {
      cause: error,
    });
  }
  log(`bench check: ${what} starts and keeps its sessions there`);
}

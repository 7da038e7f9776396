/**
 * `npm run profile`: where a request's CPU time goes, this template against koa-session's floor.
 *
 * Starts each server under V8's sampling profiler (node --cpu-prof), loads it with autocannon over
 * loopback on one path, stops it (the profile is written at exit), and reads the profile: self time per
 * function, summed into buckets (a package, a file of this app, a Node module, the garbage collector),
 * divided by the requests served. Only samples between the first and the last request count, so
 * start-up (loading the TypeScript) is left out. Profiling slows everything down alike: read the
 * figures as shares and differences, the benchmark (`npm run bench`) gives the costs.
 *
 * Run `npm run profile -- --help` for the options; the .cpuprofile files stay in --out for Chrome's
 * DevTools (Performance, "Load profile").
 */
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { startServerProcess } from '../../test/helpers/process.ts';

const USAGE = `npm run profile -- [options]

  --path /get             the route to load: /get (with a live session) or /set (a new session each request)
  --duration 10           seconds of load per server (after 2 s of warm-up)
  --connections 50        concurrent connections
  --store memory          the template's store (redis uses REDIS_URL, default redis://127.0.0.1:6379)
  --log-level warn        the template's LOG_LEVEL (info: one log line per request)
  --top 25                how many functions to list: the template's costliest, and those that differ most from the floor
  --out reports/profile   where the .cpuprofile files go
  --help                  this text`;

const { values: options } = parseArgs({
  options: {
    path: { type: 'string', default: '/get' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    store: { type: 'string', default: 'memory' },
    'log-level': { type: 'string', default: 'warn' },
    top: { type: 'string', default: '25' },
    out: { type: 'string', default: 'reports/profile' },
    help: { type: 'boolean', default: false },
  },
});
if (options.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
if (options.path !== '/get' && options.path !== '/set') throw new Error('--path must be /get or /set');

const BASELINE_SERVER = fileURLToPath(new URL('./baseline-server.ts', import.meta.url));
/** The template: its own start-up (app/server.ts) with the benchmark's routes. */
const BENCH_SERVER = fileURLToPath(new URL('./server.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface CpuProfile {
  nodes: Array<{
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }>;
  samples: number[];
  timeDeltas: number[];
}

/** Which bucket a function's self time goes to. */
function bucketOf(functionName: string, url: string): string {
  // V8's own entries ("(garbage collector)", "(program)") by name; the rest without a file is native
  // code: system calls (writev: the socket write), compiled regular expressions, V8 builtins.
  if (url === '')
    return functionName.startsWith('(')
      ? functionName
      : functionName === 'writev'
        ? 'writev (socket write)'
        : 'native code';
  const dependency = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (dependency) return dependency[1];
  if (url.startsWith('node:'))
    return url.startsWith('node:internal/crypto')
      ? 'node:crypto'
      : url.replace(/^node:(internal\/)?/, 'node:').split('/')[0];
  if (url.startsWith('file://')) return fileURLToPath(url).replace(ROOT, '');
  return url;
}

interface Profiled {
  /** µs of self time per request, by bucket and by function. */
  readonly buckets: Map<string, number>;
  readonly functions: Map<string, number>;
  readonly busyMicrosPerRequest: number;
}

function readProfile(file: string, requests: number): Profiled {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const servesRequest = new Map<number, boolean>();
  const inRequest = (id: number): boolean => {
    let known = servesRequest.get(id);
    if (known === undefined) {
      const node = byId.get(id)!;
      known = node.callFrame.functionName === 'parserOnIncoming' || (parent.has(id) && inRequest(parent.get(id)!));
      servesRequest.set(id, known);
    }
    return known;
  };
  const first = profile.samples.findIndex(inRequest);
  const last = profile.samples.findLastIndex(inRequest);
  const buckets = new Map<string, number>();
  const functions = new Map<string, number>();
  let busy = 0;
  for (let i = Math.max(0, first); i <= last; i++) {
    const { functionName, url, lineNumber } = byId.get(profile.samples[i])!.callFrame;
    const micros = profile.timeDeltas[i + 1] ?? 0; // a sample's delta is the time until the next one
    if (functionName === '(idle)') continue;
    busy += micros;
    const bucket = bucketOf(functionName, url);
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + micros / requests);
    const name = `${functionName || '(anonymous)'} ${bucket}${url ? `:${lineNumber + 1}` : ''}`;
    functions.set(name, (functions.get(name) ?? 0) + micros / requests);
  }
  return { buckets, functions, busyMicrosPerRequest: busy / requests };
}

async function profileServer(kind: 'floor' | 'template'): Promise<Profiled> {
  const dir = resolve(options.out, `${kind}${options.path.replace('/', '-')}`);
  rmSync(dir, { recursive: true, force: true });
  const nodeArgs = ['--cpu-prof', `--cpu-prof-dir=${dir}`];
  const server =
    kind === 'floor'
      ? await startServerProcess({}, { script: BASELINE_SERVER, args: ['floor'], nodeArgs })
      : await startServerProcess(
          {
            SESSION_KEYS: 'bench-signing-key-0123456789abcdefghijklmnop',
            LOG_LEVEL: options['log-level'],
            LOG_FORMAT: 'json',
            SESSION_STORE: options.store,
            ...(options.store === 'redis'
              ? {
                  REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
                  REDIS_KEY_PREFIX: `profile:${process.pid}:`,
                }
              : {}),
          },
          { script: BENCH_SERVER, nodeArgs },
        );
  server.child.stdout?.removeAllListeners('data').resume(); // log lines drained, not kept: millions of them
  let requests = 0;
  try {
    const headers: Record<string, string> = {};
    if (options.path === '/get') {
      const response = await fetch(`${server.url}/set`);
      headers.cookie = response.headers
        .getSetCookie()
        .map((cookie) => cookie.split(';')[0])
        .join('; ');
    }
    const url = server.url + options.path;
    const connections = Number(options.connections);
    for (const duration of [2, Number(options.duration)])
      requests += (await autocannon({ url, connections, duration, headers })).requests.total;
  } finally {
    server.child.kill('SIGTERM');
    await server.exited;
  }
  // The main thread's profile is the largest (tsx's loader thread on Node 20 writes one too).
  const files = readdirSync(dir).map((name) => join(dir, name));
  const main = files.sort((a, b) => statSync(b).size - statSync(a).size)[0];
  if (main === undefined) throw new Error(`no profile in ${dir}`);
  return readProfile(main, requests);
}

const floor = await profileServer('floor');
const template = await profileServer('template');

const µs = (value: number | undefined) => (value ?? 0).toFixed(2);
const lines = [
  `GET ${options.path}, ${options.connections} connections, ${options.duration} s; template with the ${options.store} store. µs of CPU per request under the profiler.`,
  '',
  `| bucket | floor | template | template − floor |`,
  '| --- | ---: | ---: | ---: |',
  `| **everything** | ${µs(floor.busyMicrosPerRequest)} | ${µs(template.busyMicrosPerRequest)} | ${µs(template.busyMicrosPerRequest - floor.busyMicrosPerRequest)} |`,
];
const names = [...new Set([...floor.buckets.keys(), ...template.buckets.keys()])];
names.sort(
  (a, b) =>
    (template.buckets.get(b) ?? 0) -
    (floor.buckets.get(b) ?? 0) -
    ((template.buckets.get(a) ?? 0) - (floor.buckets.get(a) ?? 0)),
);
for (const name of names) {
  const difference = (template.buckets.get(name) ?? 0) - (floor.buckets.get(name) ?? 0);
  if (Math.abs(difference) >= 0.05 || (template.buckets.get(name) ?? 0) >= 0.5) {
    lines.push(
      `| ${name} | ${µs(floor.buckets.get(name))} | ${µs(template.buckets.get(name))} | ${difference >= 0 ? '+' : ''}${µs(difference)} |`,
    );
  }
}
lines.push('', `The template's ${options.top} costliest functions (self time, µs per request):`, '');
for (const [name, micros] of [...template.functions].sort((a, b) => b[1] - a[1]).slice(0, Number(options.top))) {
  lines.push(`  ${µs(micros).padStart(6)}  ${name}`);
}
// Function by function, what the template spends more (or less) than the floor: the same Node and Koa
// code shows up in both, so a difference there is work the template's answer adds (or a native call,
// such as the socket write, that costs more for it).
lines.push('', `The ${options.top} functions whose self time differs most (template − floor, µs per request):`, '');
const functionNames = [...new Set([...floor.functions.keys(), ...template.functions.keys()])];
const differenceOf = (name: string) => (template.functions.get(name) ?? 0) - (floor.functions.get(name) ?? 0);
for (const name of functionNames
  .sort((a, b) => Math.abs(differenceOf(b)) - Math.abs(differenceOf(a)))
  .slice(0, Number(options.top))) {
  const difference = differenceOf(name);
  lines.push(
    `  ${`${difference >= 0 ? '+' : ''}${µs(difference)}`.padStart(7)}  (${µs(floor.functions.get(name))} → ${µs(template.functions.get(name))})  ${name}`,
  );
}
process.stdout.write(`${lines.join('\n')}\n\nProfiles: ${resolve(options.out)}\n`);

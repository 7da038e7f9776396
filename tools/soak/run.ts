/**
 * `npm run soak`: the long soak, with figures. Fills the store to its cap (a million sessions by
 * default), then runs mixed traffic while those sessions expire and the sweep reclaims them, and
 * reports requests, errors, wrong answers, heap and RSS over time, and the event-loop delay while the
 * sweep works.
 *
 * `npm run soak -- --check` (`npm run soak:check`): the short version, correctness only, never speed
 * (see CHECK below). Run `npm run soak -- --help` for the options.
 */
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { runSoak, type Sample, type SoakResult } from './soak.ts';

const USAGE = `npm run soak -- [options]

  --duration 600          seconds in all (the fill, then mixed traffic)
  --store memory          memory or redis (redis uses REDIS_URL, default redis://127.0.0.1:6379)
  --cap 1000000           SESSION_MAX_ENTRIES; the store is filled to it first
  --max-age 300s          SESSION_MAX_AGE: short, so that sessions expire and are swept during the run
  --concurrency 16        simulated users at once
  --check                 the short correctness run instead (memory store, about 20 s; the options above
                          are ignored): no errors, no wrong answers, the cap reached and held, a clean
                          exit; exits 1 otherwise
  --help                  this text`;

function readOptions() {
  try {
    return parseArgs({
      options: {
        duration: { type: 'string', default: '600' },
        store: { type: 'string', default: 'memory' },
        cap: { type: 'string', default: '1000000' },
        'max-age': { type: 'string', default: '300s' },
        concurrency: { type: 'string', default: '16' },
        check: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    }).values;
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}\n`);
    process.exit(2);
  }
}
const values = readOptions();
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

/**
 * The short run. Reaching the cap must not depend on the machine's speed: sessions expire
 * SESSION_MAX_AGE after their last use, so a fill slower than cap / max age would never get there.
 * The cap (1,000) and max age (10 s) ask for 100 requests a second, a fifth of what a loaded 2-core
 * machine does while filling; the fill sessions then expire about 10 s in, during the mixed traffic,
 * and the 5 s sweep reclaims them before the end.
 */
const CHECK = { durationMs: 20_000, store: 'memory', cap: 1_000, maxAgeMs: 10_000, concurrency: 8 } as const;

/** What the short run must show; each entry that does not hold is a failure. */
function checkFailures(result: SoakResult): string[] {
  const expectations: Array<[boolean, string]> = [
    [result.problems.length === 0, `no problems (${result.problems.length}: ${result.problems.join(' | ')})`],
    [result.errors === 0, `no errors (${result.errors})`],
    [result.wrongAnswers === 0, `no wrong answers (${result.wrongAnswers})`],
    [result.fillMs < CHECK.maxAgeMs, `filled in ${result.fillMs} ms, before the first sessions could expire`],
    [result.sessionsAfterFill === CHECK.cap, `the fill took the store to its cap (${result.sessionsAfterFill})`],
    [result.requests > 1_000, `traffic actually ran (${result.requests} requests)`],
    [result.samples.length >= 10, `the server was sampled throughout (${result.samples.length} samples)`],
    [
      result.samples.every((sample) => sample.sessions !== undefined && sample.sessions <= CHECK.cap),
      'never above the cap',
    ],
    [result.serverExitCode === 0, `the server exited cleanly (${result.serverExitCode})`],
  ];
  return expectations.filter(([holds]) => !holds).map(([, what]) => what);
}

if (values.check) {
  const result = await runSoak({
    durationMs: CHECK.durationMs,
    store: CHECK.store,
    cap: CHECK.cap,
    maxAge: `${CHECK.maxAgeMs}ms`,
    concurrency: CHECK.concurrency,
  });
  const failures = checkFailures(result);
  process.stdout.write(
    `soak check: ${result.requests} requests, ${result.samples.length} samples, filled in ${result.fillMs} ms, ` +
      `${result.sessionsAfterFill} sessions then\n`,
  );
  for (const failure of failures) process.stderr.write(`soak check failed: expected ${failure}\n`);
  process.exit(failures.length === 0 ? 0 : 1);
}

const store = values.store === 'redis' ? 'redis' : 'memory';
const env: Record<string, string> =
  store === 'redis'
    ? { REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', REDIS_KEY_PREFIX: `soak:${process.pid}:` }
    : {};

const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
process.stdout.write('  t (s) | phase | requests | sessions | heap MB | RSS MB | loop p99 ms\n');
const result = await runSoak({
  durationMs: Number(values.duration) * 1_000,
  store,
  cap: Number(values.cap),
  maxAge: values['max-age'],
  concurrency: Number(values.concurrency),
  env,
  onSample: (s: Sample) => {
    if (Math.round(s.atMs / 1_000) % 10 === 0) {
      process.stdout.write(
        `${String(Math.round(s.atMs / 1_000)).padStart(7)} | ${s.phase.padEnd(5)} | ${String(s.requests).padStart(8)} | ${String(s.sessions ?? '-').padStart(8)} | ${mb(s.heapUsedBytes).padStart(7)} | ${mb(s.rssBytes).padStart(6)} | ${s.eventLoopDelayP99Ms}\n`,
      );
    }
  },
});

const mixed = result.samples.filter((s) => s.phase === 'mixed');
const sweeping = mixed.filter(
  (s, i) =>
    i > 0 &&
    mixed[i - 1].sessions !== undefined &&
    s.sessions !== undefined &&
    mixed[i - 1].sessions! - s.sessions > 1_000,
);
const reclaimed = (windows: Sample[]) =>
  windows.reduce((sum, s) => {
    const before = mixed[mixed.indexOf(s) - 1];
    return sum + (before.sessions ?? 0) - (s.sessions ?? 0);
  }, 0);
const p99 = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.max(0, Math.ceil(values.length * 0.99) - 1)] ?? 0;
const afterWarmUp = mixed[Math.min(5, mixed.length - 1)];
const last = mixed.at(-1);
const lines = [
  '',
  `machine: ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores, Node ${process.version}; store ${store}, cap ${values.cap}, SESSION_MAX_AGE ${values['max-age']}, ${values.concurrency} concurrent clients`,
  `filled to the cap in ${(result.fillMs / 1_000).toFixed(0)} s; ${(Number(values.duration) - result.fillMs / 1_000).toFixed(0)} s of mixed traffic`,
  `requests: ${result.requests}, errors: ${result.errors}, wrong answers: ${result.wrongAnswers}, server exit: ${result.serverExitCode}`,
  afterWarmUp && last
    ? `heap: ${mb(afterWarmUp.heapUsedBytes)} MB after warm-up, ${mb(last.heapUsedBytes)} MB at the end (max ${mb(Math.max(...mixed.map((s) => s.heapUsedBytes)))}); RSS: ${mb(afterWarmUp.rssBytes)} MB, ${mb(last.rssBytes)} MB (max ${mb(Math.max(...mixed.map((s) => s.rssBytes)))})`
    : 'not enough samples for memory figures',
  `event-loop delay p99 over 1 s windows: ${p99(mixed.map((s) => s.eventLoopDelayP99Ms))} ms overall; ` +
    (sweeping.length
      ? `${p99(sweeping.map((s) => s.eventLoopDelayP99Ms))} ms (worst window ${Math.max(...sweeping.map((s) => s.eventLoopDelayP99Ms))} ms) during the ${sweeping.length} s in which the store shed ${reclaimed(sweeping)} sessions`
      : 'no sweep window observed'),
  ...result.problems.map((problem) => `problem: ${problem}`),
];
process.stdout.write(`${lines.join('\n')}\n`);
process.exitCode = result.errors === 0 && result.wrongAnswers === 0 ? 0 : 1;

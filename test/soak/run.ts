/**
 * `npm run soak`: the long soak, with figures. Fills the store to its cap (a million sessions by
 * default), then runs mixed traffic while those sessions expire and the sweep reclaims them, and
 * reports requests, errors, wrong answers, heap and RSS over time, and the event-loop delay while the
 * sweep works.
 *
 * Options: --duration 600 (s)  --store memory|redis  --cap 1000000  --max-age 300s  --concurrency 16
 */
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { runSoak, type Sample } from './soak.ts';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '600' },
    store: { type: 'string', default: 'memory' },
    cap: { type: 'string', default: '1000000' },
    'max-age': { type: 'string', default: '300s' },
    concurrency: { type: 'string', default: '16' },
  },
});
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

/**
 * The soak's short version (about 20 s): mixed traffic, bad cookies, the store at its cap and
 * sessions expiring meanwhile. Correctness only, never speed: no errors, no wrong answers, the cap
 * holds, and the server exits cleanly. `npm run soak` runs the long version with figures.
 */
import test from 'ava';
import { runSoak } from './soak/soak.ts';

test('soak: 20 s of mixed traffic at the store cap, no errors, no wrong answers', async (t) => {
  const cap = 2_000;
  const result = await runSoak({ durationMs: 20_000, store: 'memory', cap, maxAge: '4s', concurrency: 8 });
  t.log(`${result.requests} requests, ${result.samples.length} samples, filled in ${result.fillMs} ms`);
  t.deepEqual(result.problems, []);
  t.is(result.errors, 0);
  t.is(result.wrongAnswers, 0);
  t.true(result.requests > 1_000, 'traffic actually ran');
  t.true(result.samples.length >= 10, 'the server was sampled throughout');
  t.true(
    result.samples.every((sample) => sample.sessions !== undefined && sample.sessions <= cap),
    'never above the cap',
  );
  t.true(
    result.samples.some((sample) => sample.sessions === cap || sample.sessions! >= cap * 0.9),
    'the store was held at its cap',
  );
  t.is(result.serverExitCode, 0);
});

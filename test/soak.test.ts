/**
 * The soak's short version (about 20 s): mixed traffic, bad cookies, the store at its cap and
 * sessions expiring meanwhile. Correctness only, never speed: no errors, no wrong answers, the cap
 * holds, and the server exits cleanly. `npm run soak` runs the long version with figures.
 *
 * Reaching the cap must not depend on the machine's speed: sessions expire SESSION_MAX_AGE after
 * their last use, so a fill slower than cap / max age would never get there. The cap (1,000) and max
 * age (10 s) ask for 100 requests a second, a fifth of what a loaded 2-core machine does (~500/s
 * filling, measured beside a whole second test suite); the fill sessions then expire about 10 s in,
 * during the mixed traffic, and the 5 s sweep reclaims them before the end.
 */
import test from 'ava';
import { runSoak } from './soak/soak.ts';

test('soak: 20 s of mixed traffic at the store cap, no errors, no wrong answers', async (t) => {
  const cap = 1_000;
  const maxAgeMs = 10_000;
  const result = await runSoak({ durationMs: 20_000, store: 'memory', cap, maxAge: `${maxAgeMs}ms`, concurrency: 8 });
  t.log(
    `${result.requests} requests, ${result.samples.length} samples, filled in ${result.fillMs} ms, ${result.sessionsAfterFill} sessions then`,
  );
  t.deepEqual(result.problems, []);
  t.is(result.errors, 0);
  t.is(result.wrongAnswers, 0);
  t.true(result.fillMs < maxAgeMs, `filled in ${result.fillMs} ms, before the first sessions could expire`);
  t.is(result.sessionsAfterFill, cap, 'the fill took the store to its cap');
  t.true(result.requests > 1_000, 'traffic actually ran');
  t.true(result.samples.length >= 10, `the server was sampled throughout (${result.samples.length} samples)`);
  t.true(
    result.samples.every((sample) => sample.sessions !== undefined && sample.sessions <= cap),
    'never above the cap',
  );
  t.is(result.serverExitCode, 0);
});

/**
 * A Redis call's deadline counts the time Redis was given, not the app's own lateness: when the event
 * loop was busy past the deadline while the answer arrived, the answer wins, and the connection is kept.
 * (Under heavy load, timers that fire late used to fail calls whose answers were already in the socket,
 * recycling the connection and turning a busy but healthy instance's /healthz to 503.) That a Redis that
 * does not answer still fails calls within the bound is the outage suite's (test/helpers/store-outages.ts).
 */
import anyTest, { type TestFn } from 'ava';
import { openTestRedisStore, redisTest } from './helpers/redis.ts';

const test = redisTest(anyTest as TestFn);

/** Keeps the event loop busy for `ms`: nothing else runs meanwhile, as on an overloaded process. */
function busyFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin
  }
}

test('an answer that arrived while the event loop was busy past the deadline is taken, not failed', async (t) => {
  const { store, close } = await openTestRedisStore({ commandTimeoutMs: 100 });
  t.teardown(close);
  t.true(await store.create('deadline-test', 'text', 60_000));
  for (let round = 0; round < 5; round++) {
    const call = store.get('deadline-test', 60_000); // written on the next turn; Redis answers at once
    busyFor(300); // the loop is late: the deadline timer is overdue before the command is even written
    t.is(await call, 'text', `round ${round}: the answer that was there is taken`);
  }
  t.true((await store.health()).ok, 'the connection was never recycled');
});

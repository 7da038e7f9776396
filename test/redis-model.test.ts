/**
 * Property-based check (fast-check) of the Redis store against a small reference model, with real
 * short TTLs in Redis itself: random sequences of get, create, update, destroy and pauses over six
 * ids, with pauses that land on a key's expiry to within a few ms. Every answer must match the model.
 *
 * Staying clear of timing noise: the model never assumes how long a call or a pause took. Each call
 * is timed (before it is sent, after its answer), and Redis ran it somewhere in between; so a key's
 * expiry is known as a window, not an instant. Times are on Redis's clock: its offset from ours is
 * measured once (TIME), as a window too, so a Redis on another machine is fine. When a call's window
 * lies wholly before the expiry the key must be alive, wholly after it must be gone; only when the
 * two overlap (the call ran at the very edge) may the answer go either way, and then the answer
 * itself tells the model which it was. A slow machine makes more calls land in the edge, never a
 * false failure. FC_RUNS=200 npx ava test/redis-model.test.ts for more runs.
 *
 * On every Redis deployment (test/helpers/redis-topologies.ts): the one at REDIS_URL, a Cluster and
 * Sentinels of this file's own. A Cluster's keys live on several masters; the offset is measured on one
 * of them, which is exact here, where every node runs on this machine's clock.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import fc from 'fast-check';
import type { RedisStore } from '../app/stores/redis.ts';
import { openStoreOn, type RedisDeployment, redisDeployments } from './helpers/redis-topologies.ts';

const RUNS = Number(process.env.FC_RUNS ?? 0) || undefined;
/** Redis keeps expiry times and its clock in whole ms and compares `now > expiry`: a ms of rounding either way. */
const CLOCK_SLACK_MS = 2;
/** An exact check this close to an expiry counts as one at the edge, in the summary. */
const NEAR_MS = 10;

const ids = ['a', 'b', 'c', 'd', '__proto__', 'constructor'] as const;
const id = fc.constantFrom(...ids);
/** Opaque text: JSON-like, any Unicode, empty. */
const text = fc.oneof(fc.json({ maxDepth: 2 }), fc.string({ unit: 'binary', maxLength: 20 }), fc.constant(''));
/** Short TTLs, so that sequences keep crossing them. */
const ttl = fc.constantFrom(40, 75, 120, 200);

type Command =
  | { kind: 'get'; id: string; ttl: number }
  | { kind: 'create'; id: string; text: string; ttl: number }
  | { kind: 'update'; id: string; text: string; ttl: number }
  | { kind: 'destroy'; id: string }
  /** Real time passing: any few ms up to past every TTL. */
  | { kind: 'sleep'; ms: number }
  /**
   * Picks a key that has not expired yet (the `pick`th, by expiry; any id if none), sleeps until its
   * expiry plus `offsetMs`, and runs `then` on it: a call right at the edge.
   */
  | { kind: 'atEdge'; pick: number; offsetMs: number; then: Operation };
type Operation = Extract<Command, { kind: 'get' | 'create' | 'update' | 'destroy' }>;

const operationOn = (key: fc.Arbitrary<string>): fc.Arbitrary<Operation> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('get' as const), id: key, ttl }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('create' as const), id: key, text, ttl }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('update' as const), id: key, text, ttl }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('destroy' as const), id: key }) },
  );
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 8, arbitrary: operationOn(id) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('sleep' as const),
      ms: fc.oneof(
        { weight: 3, arbitrary: fc.integer({ min: 0, max: 30 }) },
        { weight: 1, arbitrary: fc.integer({ min: 30, max: 250 }) },
      ),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('atEdge' as const),
      // Mostly the next key to expire, which leaves the others alive for later calls.
      pick: fc.oneof(
        { weight: 3, arbitrary: fc.constant(0) },
        { weight: 1, arbitrary: fc.nat({ max: ids.length - 1 }) },
      ),
      offsetMs: fc.integer({ min: -8, max: 8 }),
      then: operationOn(fc.constant('(picked when run)')),
    }),
  },
);

/** What the model knows of a key: its text, and that it expires somewhere in [earliest, latest] (Redis's clock, ms). */
interface Entry {
  readonly text: string;
  readonly earliest: number;
  readonly latest: number;
}

/** The model: a key is absent, or present with a known text and an expiry window. */
class Model {
  readonly entries = new Map<string, Entry>();
  /** How many answers were checked exactly, and how many fell in an edge window (either answer accepted). */
  readonly counts = { aimed: 0, exact: 0, edge: 0, presentNearEdge: 0, absentNearEdge: 0 };

  /** For a call that ran somewhere in [start, end]: is the key surely there, surely gone, or at its edge? */
  state(key: string, start: number, end: number): 'present' | 'absent' | 'edge' {
    const entry = this.entries.get(key);
    if (!entry) return 'absent';
    if (end + CLOCK_SLACK_MS < entry.earliest) return 'present';
    if (start > entry.latest + CLOCK_SLACK_MS) return 'absent';
    return 'edge';
  }

  note(state: 'present' | 'absent' | 'edge', key: string, start: number, end: number): void {
    if (state === 'edge') {
      this.counts.edge++;
      return;
    }
    this.counts.exact++;
    const entry = this.entries.get(key);
    if (entry && state === 'present' && entry.earliest - end <= NEAR_MS) this.counts.presentNearEdge++;
    if (entry && state === 'absent' && start - entry.latest <= NEAR_MS) this.counts.absentNearEdge++;
  }

  write(key: string, text: string, ttlMs: number, start: number, end: number): void {
    this.entries.set(key, { text, earliest: start + ttlMs, latest: end + ttlMs });
  }
}

/** Redis's clock minus ours lies in [low, high] ms. */
interface ClockOffset {
  readonly low: number;
  readonly high: number;
}
/** Our wall clock, to a fraction of a ms (Date.now() rounds down to whole ms). */
const clock = () => performance.timeOrigin + performance.now();

async function measureClockOffset(deployment: RedisDeployment): Promise<ClockOffset> {
  const redis = await deployment.inspector();
  try {
    let best = { low: -Infinity, high: Infinity };
    for (let i = 0; i < 5; i++) {
      const before = clock();
      const [seconds, micros] = await redis.time();
      const after = clock();
      const redisMs = Number(seconds) * 1_000 + Number(micros) / 1_000;
      // Redis read its clock (to the µs) somewhere between `before` and `after` on ours.
      const window = { low: redisMs - after, high: redisMs - before };
      if (window.high - window.low < best.high - best.low) best = window;
    }
    return best;
  } finally {
    redis.destroy();
  }
}

/** Now, on Redis's clock, as a window. */
function redisNow(offset: ClockOffset): { start: number; end: number } {
  const now = clock();
  return { start: now + offset.low, end: now + offset.high };
}

/** Runs a call; Redis ran it within [start, end] on its clock. */
async function timed<T>(
  offset: ClockOffset,
  call: () => Promise<T>,
): Promise<{ result: T; start: number; end: number }> {
  const { start } = redisNow(offset);
  const result = await call();
  return { result, start, end: redisNow(offset).end };
}

/** Runs one command against the store and the model; throws, with the calls so far, on a mismatch. */
async function step(
  store: RedisStore,
  model: Model,
  command: Command,
  log: string[],
  offset: ClockOffset,
): Promise<void> {
  const fail = (message: string): never => {
    throw new Error(`${message}\n${log.join('\n')}`);
  };
  switch (command.kind) {
    case 'sleep':
      await sleep(command.ms);
      return;
    case 'atEdge': {
      const now = redisNow(offset).end;
      const live = [...model.entries]
        .filter(([, entry]) => entry.latest > now)
        .sort(([, x], [, y]) => x.latest - y.latest);
      const [key, entry] =
        live.length > 0 ? live[command.pick % live.length] : [ids[command.pick % ids.length], undefined];
      if (entry) {
        model.counts.aimed++;
        const target = (command.offsetMs < 0 ? entry.earliest : entry.latest) + command.offsetMs;
        log.push(`sleep to ${key}'s expiry ${command.offsetMs >= 0 ? '+' : ''}${command.offsetMs} ms`);
        const { start, end } = redisNow(offset);
        await sleep(Math.max(0, target - (start + end) / 2));
      }
      return step(store, model, { ...command.then, id: key }, log, offset);
    }
    case 'get': {
      const { result, start, end } = await timed(offset, () => store.get(command.id, command.ttl));
      const state = model.state(command.id, start, end);
      log.push(
        `get ${command.id} ${command.ttl} -> ${JSON.stringify(result)} (${state}, ${(end - start).toFixed(1)} ms)`,
      );
      model.note(state, command.id, start, end);
      const entry = model.entries.get(command.id);
      if (state === 'present' && result !== entry!.text)
        fail(`get ${command.id}: expected ${JSON.stringify(entry!.text)}`);
      if (state === 'absent' && result !== undefined) fail(`get ${command.id}: expected undefined`);
      if (state === 'edge' && result !== undefined && result !== entry!.text)
        fail(`get ${command.id}: expected the stored text or undefined`);
      // A read renews the TTL (sliding expiry); a miss means the key is gone.
      if (result === undefined) model.entries.delete(command.id);
      else model.write(command.id, result, command.ttl, start, end);
      return;
    }
    case 'create': {
      const { result, start, end } = await timed(offset, () => store.create(command.id, command.text, command.ttl));
      const state = model.state(command.id, start, end);
      log.push(`create ${command.id} ${command.ttl} -> ${result} (${state}, ${(end - start).toFixed(1)} ms)`);
      model.note(state, command.id, start, end);
      if (state === 'present' && result) fail(`create ${command.id}: the id is in use, expected false`);
      if (state === 'absent' && !result) fail(`create ${command.id}: the id is unused, expected true`);
      // false leaves the key as it was, TTL included; true wrote it.
      if (result) model.write(command.id, command.text, command.ttl, start, end);
      return;
    }
    case 'update': {
      const { result, start, end } = await timed(offset, () => store.update(command.id, command.text, command.ttl));
      const state = model.state(command.id, start, end);
      log.push(`update ${command.id} ${command.ttl} -> ${result} (${state}, ${(end - start).toFixed(1)} ms)`);
      model.note(state, command.id, start, end);
      if (state === 'present' && !result) fail(`update ${command.id}: the id exists, expected true`);
      if (state === 'absent' && result)
        fail(`update ${command.id}: the id is gone, expected false (and nothing written)`);
      if (result) model.write(command.id, command.text, command.ttl, start, end);
      else model.entries.delete(command.id);
      return;
    }
    case 'destroy': {
      const { result, start, end } = await timed(offset, () => store.destroy(command.id));
      const state = model.state(command.id, start, end);
      log.push(`destroy ${command.id} -> ${result} (${state}, ${(end - start).toFixed(1)} ms)`);
      model.note(state, command.id, start, end);
      if (state === 'present' && !result) fail(`destroy ${command.id}: the id exists, expected true`);
      if (state === 'absent' && result) fail(`destroy ${command.id}: the id is gone, expected false`);
      model.entries.delete(command.id);
      return;
    }
  }
}

for (const deployment of redisDeployments(test)) modelCheck(deployment);

/** The model check, on one Redis deployment. */
function modelCheck(deployment: RedisDeployment): void {
  deployment.test(
    `${deployment.name} store matches the model with real short TTLs: conditional writes, expiry at the edge, sliding refresh`,
    async (t) => {
      const offset = await measureClockOffset(deployment);
      t.log(`Redis's clock minus ours: between ${offset.low.toFixed(1)} and ${offset.high.toFixed(1)} ms`);
      const totals = { aimed: 0, exact: 0, edge: 0, presentNearEdge: 0, absentNearEdge: 0 };
      await fc.assert(
        fc.asyncProperty(fc.array(command, { minLength: 10, maxLength: 60, size: 'medium' }), async (commands) => {
          const { store, close } = await openStoreOn(deployment);
          const model = new Model();
          const log: string[] = [];
          try {
            for (const each of commands) await step(store, model, each, log, offset);
            // Finally every id is read: what the model holds for sure must be there, nothing else.
            for (const each of ids) await step(store, model, { kind: 'get', id: each, ttl: 40 }, log, offset);
          } finally {
            await close();
            for (const name of Object.keys(totals) as Array<keyof typeof totals>) totals[name] += model.counts[name];
          }
        }),
        {
          numRuns: RUNS ?? 20,
          examples: [
            // A read renews the TTL: alive after 1.6 TTL from the write, because of the read at 0.8.
            [
              [
                { kind: 'create', id: 'a', text: '{"n":1}', ttl: 200 },
                { kind: 'sleep', ms: 160 },
                { kind: 'get', id: 'a', ttl: 200 },
                { kind: 'sleep', ms: 160 },
                { kind: 'get', id: 'a', ttl: 200 },
                { kind: 'update', id: 'a', text: '{"n":2}', ttl: 40 },
                { kind: 'atEdge', pick: 0, offsetMs: 8, then: { kind: 'update', id: 'a', text: '{"n":3}', ttl: 200 } },
                { kind: 'create', id: 'a', text: '{"n":4}', ttl: 200 },
                { kind: 'create', id: 'a', text: '{"n":5}', ttl: 200 },
              ],
            ],
          ],
        },
      );
      t.log(
        `calls aimed at an expiry: ${totals.aimed}; answers checked exactly: ${totals.exact}, of which ` +
          `${totals.presentNearEdge} within ${NEAR_MS} ms before an expiry and ${totals.absentNearEdge} within ${NEAR_MS} ms after one; ` +
          `at an edge, either answer accepted: ${totals.edge}`,
      );
      t.true(totals.presentNearEdge > 0 && totals.absentNearEdge > 0, 'exact checks reached both sides of an expiry');
    },
  );
}

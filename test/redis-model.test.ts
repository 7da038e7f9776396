/**
 * Property-based check (fast-check) of the Redis store against a small reference model, with real short
 * TTLs: random sequences of writes, reads, destroys and pauses; every answer must match the model.
 * FC_RUNS=100 npx ava test/redis-model.test.ts for more runs.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import fc from 'fast-check';
import { openTestRedisStore, redisTest } from './helpers/redis.ts';

const RUNS = Number(process.env.FC_RUNS ?? 0) || undefined;
const value = fc.record({ time: fc.integer(), tags: fc.array(fc.string({ maxLength: 3 }), { maxLength: 2 }) });

type Command =
  | { kind: 'set'; id: string; value: { time: number; tags: string[] } }
  | { kind: 'get'; id: string; mutate: boolean }
  | { kind: 'destroy'; id: string }
  | { kind: 'advance'; ms: number };

const TTL_MS = 500;
// Real time, in steps that stay clear of the TTL edge: a short pause is 0.4 TTL (a key idle for one or two
// of them is alive, for three it is gone) and a long one 3 TTL; the few ms each command takes never
// bridge the 0.2 TTL gap.
const SHORT_PAUSE_MS = TTL_MS * 0.4;
const redisId = fc.constantFrom('a', '__proto__'); // two ids: sequences keep returning to them
const redisCommand: fc.Arbitrary<Command> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('set' as const), id: redisId, value }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('get' as const), id: redisId, mutate: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('destroy' as const), id: redisId }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.constantFrom(SHORT_PAUSE_MS, SHORT_PAUSE_MS, TTL_MS * 3) }) },
);

redisTest(test)('redis store matches the model with real short TTLs: expiry, sliding refresh, copies', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(redisCommand, { minLength: 4, maxLength: 16 }), async (commands) => {
      const { store, close } = await openTestRedisStore(TTL_MS);
      // The model's clock moves only with the pauses; a key is alive while now - lastUse < TTL.
      const model = new Map<string, { value: unknown; lastUse: number }>();
      let now = 0;
      const alive = (key: string) => {
        const entry = model.get(key);
        if (entry && now - entry.lastUse >= TTL_MS) model.delete(key);
        return model.get(key);
      };
      try {
        for (const command of commands) {
          switch (command.kind) {
            case 'set':
              await store.set(command.id, command.value, 'session');
              model.set(command.id, { value: structuredClone(command.value), lastUse: now });
              break;
            case 'get': {
              const actual = await store.get(command.id, 'session');
              const expected = alive(command.id);
              t.deepEqual(actual, expected?.value);
              if (expected) expected.lastUse = now; // sliding: a read renews it
              if (command.mutate && actual) (actual.tags as string[]).push('mutated');
              break;
            }
            case 'destroy':
              await store.destroy(command.id);
              model.delete(command.id);
              break;
            case 'advance':
              await sleep(command.ms);
              now += command.ms;
              break;
          }
        }
        return true;
      } finally {
        await close();
      }
    }),
    {
      numRuns: RUNS ?? 15,
      // Always tried first: a read must renew the TTL (idle 0.8 TTL after the read, 1.2 after the write).
      examples: [
        [
          [
            { kind: 'set', id: 'a', value: { time: 1, tags: [] } },
            { kind: 'advance', ms: SHORT_PAUSE_MS },
            { kind: 'get', id: 'a', mutate: true },
            { kind: 'advance', ms: SHORT_PAUSE_MS },
            { kind: 'advance', ms: SHORT_PAUSE_MS },
            { kind: 'get', id: 'a', mutate: false },
          ],
        ],
      ],
    },
  );
  t.pass();
});

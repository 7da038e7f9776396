/**
 * Property-based check (fast-check) of the SQLite store (app/stores/sqlite.ts) against a small reference
 * model, on a clock of the test's own: random sequences of create, update, get, destroy, time passing (by
 * any amount, and to a row's expiry to the millisecond), sweeps, and restarts (the store closed and opened
 * again on the same file, with the cap kept, raised or lowered) over six ids and caps of 1 to 5. Every
 * answer must match the model, and after every call the file (read by a second node:sqlite connection, as
 * an operator's tool would) must hold exactly the rows the model holds, with their texts and expiry times,
 * and size() their number. (The memory store's model is test/store-model.test.ts, the Redis store's
 * test/redis-model.test.ts.) 200 runs by default; FC_RUNS=3000 for more.
 *
 * The model shares no code with the store: one Map of plain records (text, expiry, and the order the row
 * was inserted in, as SQLite's rowid: one more than the largest in the table, 1 when it is empty). Expired
 * rows stay until the sweep, a destroy or a create on their id; the bound evicts the row with the smallest
 * expiry (the earlier inserted on a tie), found by a sort; a lowered cap is trimmed by the sweep only.
 *
 * On a Node without node:sqlite (Node 20) the model cannot run: this file asserts the store's one-line
 * refusal instead. Nothing is skipped.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { SqliteStore } from '../app/stores/sqlite.ts';
import { StartupError } from '../config/index.ts';
import { hasNodeSqlite, sqliteTempFolder } from './helpers/sqlite.ts';

const RUNS = Number(process.env.FC_RUNS ?? 0) || undefined;

const id = fc.constantFrom('a', 'b', 'c', 'd', '__proto__', "x'); DROP TABLE sessions; --");
/** Opaque text: JSON-like, any code point (U+0000 too), empty. */
const text = fc.oneof(fc.json({ maxDepth: 2 }), fc.string({ unit: 'binary', maxLength: 8 }), fc.constant(''));
// Lifetimes that differ, so that the most recently used row is not always the last to expire.
const ttl = fc.constantFrom(300, 1_000, 2_500);

type Command =
  | { kind: 'create'; id: string; text: string; ttl: number }
  | { kind: 'update'; id: string; text: string; ttl: number }
  | { kind: 'get'; id: string; ttl: number }
  | { kind: 'destroy'; id: string }
  | { kind: 'advance'; ms: number }
  /** Time moves to a row's expiry (the `pick`th row by expiry) plus `offsetMs`, unless that is in the past. */
  | { kind: 'toExpiry'; pick: number; offsetMs: number }
  | { kind: 'sweep' }
  /** The store closed and opened again on its file, with the cap changed by `capChange`. */
  | { kind: 'restart'; capChange: number };

const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('create' as const), id, text, ttl }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('update' as const), id, text, ttl }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('get' as const), id, ttl }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('destroy' as const), id }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      // Mostly less than the lifetimes (so sliding matters), and their exact edges.
      ms: fc.oneof(
        fc.integer({ min: 0, max: 800 }),
        fc.constantFrom(299, 300, 301, 999, 1_000, 1_001, 2_500),
        fc.integer({ min: 0, max: 3_000 }),
      ),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('toExpiry' as const),
      pick: fc.nat(4),
      offsetMs: fc.constantFrom(-1, 0, 1),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ kind: 'sweep' as const }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('restart' as const), capChange: fc.integer({ min: -3, max: 2 }) }),
  },
);

interface Row {
  text: string;
  expiresAt: number;
  /** As SQLite's rowid: the order rows were inserted in, a replaced expired row keeping its own. */
  readonly rowid: number;
}

/** The store's rules, the slow and obvious way. */
class SqliteModel {
  readonly rows = new Map<string, Row>();
  now = 1_000_000;
  max: number;
  /** Rows the bound took, for the summary. */
  evicted = 0;

  constructor(max: number) {
    this.max = max;
  }

  #alive(id: string): Row | undefined {
    const row = this.rows.get(id);
    return row !== undefined && row.expiresAt > this.now ? row : undefined;
  }

  /** The rows the bound or a trim takes first: smallest expiry, then inserted earliest. */
  #leastRecent(except?: string): string | undefined {
    return [...this.rows]
      .filter(([key]) => key !== except)
      .sort(([, x], [, y]) => x.expiresAt - y.expiresAt || x.rowid - y.rowid)[0]?.[0];
  }

  get(id: string, ttl: number): string | undefined {
    const row = this.#alive(id);
    if (row === undefined) return undefined;
    row.expiresAt = this.now + ttl;
    return row.text;
  }

  create(id: string, text: string, ttl: number): boolean {
    const row = this.rows.get(id);
    if (row !== undefined) {
      if (row.expiresAt > this.now) return false;
      Object.assign(row, { text, expiresAt: this.now + ttl }); // an expired row is replaced in place
      return true;
    }
    const rowid = Math.max(0, ...[...this.rows.values()].map((other) => other.rowid)) + 1;
    this.rows.set(id, { text, expiresAt: this.now + ttl, rowid });
    // One row out per insert past the cap; after a lowered cap the count stays over until the sweep.
    if (this.rows.size > this.max) {
      this.rows.delete(this.#leastRecent(id)!);
      this.evicted++;
    }
    return true;
  }

  update(id: string, text: string, ttl: number): boolean {
    const row = this.#alive(id);
    if (row === undefined) return false;
    Object.assign(row, { text, expiresAt: this.now + ttl });
    return true;
  }

  destroy(id: string): boolean {
    const alive = this.#alive(id) !== undefined;
    this.rows.delete(id); // an expired one too
    return alive;
  }

  /** A whole pass: every expired row, then the rows past the cap. */
  sweep(): void {
    for (const [key, row] of this.rows) if (row.expiresAt <= this.now) this.rows.delete(key);
    while (this.rows.size > this.max) this.rows.delete(this.#leastRecent()!);
  }
}

if (hasNodeSqlite) {
  const { DatabaseSync } = await import('node:sqlite');

  test('sqlite store matches the model: conditional writes, sliding expiry, the bound, sweeps, restarts, the file', async (t) => {
    const temp = sqliteTempFolder();
    t.teardown(() => temp.cleanUp());
    let run = 0;
    const counts = { runs: 0, calls: 0, evictions: 0, restarts: 0 };
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }),
        fc.array(command, { minLength: 5, maxLength: 80, size: 'medium' }),
        // The checkpoint worker on a few runs only: a thread per store opened is the slow part.
        fc.boolean().map((worker) => worker && Math.random() < 0.2),
        async (max, commands, checkpointInWorker) => {
          const model = new SqliteModel(max);
          const file = join(temp.folder, `run-${++run}.db`);
          const open = () =>
            SqliteStore.open({
              file,
              maxEntries: model.max,
              sweepIntervalMs: 3_600_000,
              sweepBatchSize: 2,
              checkpointInWorker,
              now: () => model.now,
            });
          let store = await open();
          const reader = new DatabaseSync(file, { readOnly: true });
          const fileRows = reader.prepare('SELECT id, text, expires_at FROM sessions');
          counts.runs++;
          try {
            for (const [step, c] of commands.entries()) {
              const at = `step ${step}: ${JSON.stringify(c)}`;
              counts.calls++;
              switch (c.kind) {
                case 'create':
                  assert.equal(await store.create(c.id, c.text, c.ttl), model.create(c.id, c.text, c.ttl), at);
                  break;
                case 'update':
                  assert.equal(await store.update(c.id, c.text, c.ttl), model.update(c.id, c.text, c.ttl), at);
                  break;
                case 'get':
                  assert.equal(await store.get(c.id, c.ttl), model.get(c.id, c.ttl), at);
                  break;
                case 'destroy':
                  assert.equal(await store.destroy(c.id), model.destroy(c.id), at);
                  break;
                case 'advance':
                  model.now += c.ms;
                  break;
                case 'toExpiry': {
                  const expiries = [...model.rows.values()].map((row) => row.expiresAt).sort((x, y) => x - y);
                  const to = expiries.length > 0 ? expiries[c.pick % expiries.length] + c.offsetMs : model.now;
                  model.now = Math.max(model.now, to);
                  break;
                }
                case 'sweep':
                  await store.sweep();
                  model.sweep();
                  break;
                case 'restart':
                  await store.close();
                  model.max = Math.max(1, model.max + c.capChange);
                  store = await open();
                  counts.restarts++;
                  break;
              }
              const held = Object.fromEntries(
                fileRows.all().map((row) => [String(row.id), { text: row.text, expiresAt: row.expires_at }]),
              );
              const expected = Object.fromEntries(
                [...model.rows].map(([key, row]) => [key, { text: row.text, expiresAt: row.expiresAt }]),
              );
              assert.deepEqual(held, expected, `${at}: the rows in the file`);
              assert.equal(await store.size(), model.rows.size, `${at}: size()`);
            }
          } finally {
            reader.close();
            await store.close();
            counts.evictions += model.evicted;
          }
        },
      ),
      { numRuns: RUNS ?? 200 },
    );
    t.log(`${counts.runs} runs, ${counts.calls} commands, ${counts.evictions} evictions, ${counts.restarts} restarts`);
    t.pass();
  });
} else {
  test(`on ${process.version}, which has no node:sqlite (instead of the SQLite model): SqliteStore.open refuses in one line`, async (t) => {
    const temp = sqliteTempFolder();
    t.teardown(() => temp.cleanUp());
    const error = await t.throwsAsync(SqliteStore.open({ file: join(temp.folder, 'sessions.db'), maxEntries: 5 }), {
      instanceOf: StartupError,
    });
    t.is(
      error.message,
      `SESSION_STORE=sqlite needs node:sqlite, in Node 22.13 and later; this is Node ${process.version}`,
    );
  });
}

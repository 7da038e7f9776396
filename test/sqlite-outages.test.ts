/**
 * The SQLite store's outages, as test/helpers/store-outages.ts has Redis's: while the file cannot be
 * written, every session call fails with StoreUnavailableError within a bound (the busy timeout, never a
 * blocked event loop), an HTTP request gets a 503 with Retry-After (never a 500), the store logs one line
 * when calls start failing and one when they work again (the 503s counted in between), and the same store
 * serves again, its sessions kept, once the fault ends. Each fault is a real one:
 *
 * - another connection (node:sqlite, as an operator's tool would) holds the write lock, by BEGIN IMMEDIATE
 *   and by BEGIN EXCLUSIVE, until it rolls back;
 * - the disk is full: the file lives on a small tmpfs of the test's own (mounted here, which needs root, as
 *   CI and the project's machines run), filled by another file until the next write-ahead log frame cannot
 *   be written, until that file is removed.
 *
 * Not here, for they are no outage of a running store: a folder or file made read-only (the store writes
 * through files it holds open, which a change of mode does not reach, and a disk with a file open for
 * writing cannot be remounted read-only), and the file removed or replaced (the store goes on writing the
 * removed one, with no error: docs/stores.md says so).
 *
 * On a Node without node:sqlite (Node 20) there is no SQLite store to fail: this file asserts that
 * SESSION_STORE=sqlite refuses to start there instead. Nothing is skipped.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { createLogger } from '../app/logger.ts';
import { SqliteStore } from '../app/stores/sqlite.ts';
import { StoreUnavailableError } from '../app/stores/store.ts';
import { appForTest } from './helpers/app.ts';
import { Browser } from './helpers/browser.ts';
import { runToExit } from './helpers/process.ts';
import { hasNodeSqlite, sqliteTempFolder } from './helpers/sqlite.ts';

const test = anyTest as TestFn;
const TTL_MS = 60_000;
/** Far above the 5 ms busy timeout: a call that takes this long is stuck, not slow (a loaded machine included). */
const HANG_MS = 5_000;
/**
 * Below the start-up busy timeout (1 s), which must not be the one in force while serving: the quickest of
 * a test's refusals must come before it. Not a measurement of speed.
 */
const STARTUP_WAIT_MS = 500;
const FAILING = 'sqlite session store failing; session requests answer 503 until it works again';
const WORKING = 'sqlite session store working again';
const SUMMARY = /^\d+ requests? answered 503: session store unavailable$/;

interface Fault {
  readonly name: string;
  /** What the error says. */
  readonly reason: RegExp;
  /**
   * Whether a call that finds nothing to change fails too: it does under a lock held elsewhere (a write
   * statement takes the lock before it looks), not on a full disk (it writes nothing).
   */
  readonly emptyCallsFail: boolean;
  /** A folder for the file, gone when the test ends. */
  folder(t: ExecutionContext): string;
  /** Starts the fault on the file the store has open; returns its end. */
  start(t: ExecutionContext, file: string, tool: DatabaseSync): () => void;
}

/** A tmpfs of its own, of `bytes`, unmounted (and its mount point removed) when the test ends. */
function smallDisk(t: ExecutionContext, bytes: number): string {
  const temp = sqliteTempFolder();
  const mountPoint = join(temp.folder, 'disk');
  mkdirSync(mountPoint);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', mountPoint]);
  t.teardown(() => {
    execFileSync('umount', ['--lazy', mountPoint]);
    temp.cleanUp();
  });
  return mountPoint;
}

/** Writes `file` until the disk has no room left (ENOSPC). */
function fillDisk(file: string): void {
  try {
    writeFileSync(file, Buffer.alloc(64 * 1024 * 1024));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
    return;
  }
  throw new Error(`${file}: the disk did not fill`);
}

const holdLock = (begin: string): Fault => ({
  name: `another connection holds the write lock (${begin})`,
  reason: /sqlite: database is locked/,
  emptyCallsFail: true,
  folder: (t) => {
    const temp = sqliteTempFolder();
    t.teardown(() => temp.cleanUp());
    return temp.folder;
  },
  start(_t, _file, tool) {
    tool.exec(begin);
    return () => tool.exec('ROLLBACK');
  },
});

const FAULTS: Fault[] = [
  holdLock('BEGIN IMMEDIATE'),
  holdLock('BEGIN EXCLUSIVE'),
  {
    name: 'the disk is full',
    reason: /sqlite: database or disk is full/,
    emptyCallsFail: false,
    folder: (t) => smallDisk(t, 2 * 1024 * 1024),
    start(_t, file, tool) {
      // The log emptied first (no store call runs meanwhile; the checkpoint worker may be mid-pass, so
      // until it answers not busy), so that the next write must grow it, not reuse room it already has.
      for (let attempt = 0; ; attempt++) {
        const result = tool.prepare('PRAGMA wal_checkpoint(TRUNCATE)').get() as { busy: number };
        if (result.busy === 0 && statSync(`${file}-wal`).size === 0) break;
        if (attempt === 100) throw new Error('the log could not be emptied');
      }
      const filler = join(file, '..', 'filler');
      fillDisk(filler);
      return () => rmSync(filler);
    },
  },
];

/** A second connection to the file, closed when the test ends. */
async function toolOn(t: ExecutionContext, file: string): Promise<DatabaseSync> {
  const { DatabaseSync: Database } = await import('node:sqlite');
  const tool = new Database(file);
  t.teardown(() => tool.isOpen && tool.close());
  return tool;
}

/** How long `call` took to fail with StoreUnavailableError giving `reason`. */
async function timeRefusal(t: ExecutionContext, what: string, reason: RegExp, call: () => Promise<unknown>) {
  const started = performance.now();
  await t.throwsAsync(call(), { instanceOf: StoreUnavailableError, message: reason }, what);
  const elapsed = performance.now() - started;
  t.true(elapsed < HANG_MS, `${what} failed after ${Math.round(elapsed)} ms`);
  return elapsed;
}

if (hasNodeSqlite) {
  for (const fault of FAULTS) {
    test.serial(
      `sqlite store: while ${fault.name}, every session call fails as unavailable within the bound, with one line; then the same store serves again`,
      async (t) => {
        const lines: Array<Record<string, unknown>> = [];
        const logger = createLogger(
          { level: 'debug', format: 'json', production: false },
          { write: (line: string) => void lines.push(JSON.parse(line)) },
        );
        const file = join(fault.folder(t), 'sessions.db');
        const store = await SqliteStore.open({ file, maxEntries: 1_000, logger });
        t.teardown(() => store.close());
        t.true(await store.create('kept', '{"n":1}', TTL_MS));
        t.true(await store.create('gone', '{}', TTL_MS));
        const tool = await toolOn(t, file);

        const end = fault.start(t, file, tool);
        const calls: Array<[string, () => Promise<unknown>]> = [
          ['get', () => store.get('kept', TTL_MS)],
          ['create', () => store.create('new', '{}', TTL_MS)],
          ['update', () => store.update('kept', '{"n":2}', TTL_MS)],
          ['destroy', () => store.destroy('gone')],
        ];
        const timings: string[] = [];
        for (const [what, call] of calls)
          timings.push(`${what} ${(await timeRefusal(t, what, fault.reason, call)).toFixed(1)} ms`);
        t.log(`StoreUnavailableError after: ${timings.join(', ')}`);
        const empty: Array<[string, () => Promise<unknown>]> = [
          ['get of an unknown id', () => store.get('unknown', TTL_MS)],
          ['update of an unknown id', () => store.update('unknown', '{}', TTL_MS)],
          ['destroy of an unknown id', () => store.destroy('unknown')],
        ];
        for (const [what, call] of empty) {
          if (fault.emptyCallsFail) await timeRefusal(t, what, fault.reason, call);
          else t.falsy(await call(), `${what}: nothing to write, so nothing fails`);
        }
        t.deepEqual(
          lines.map((line) => line.msg),
          [FAILING],
          'calls that wrote nothing did not end the outage',
        );

        // A burst: every call blocks the event loop for the busy timeout at most, one after the other.
        const started = performance.now();
        const outcomes = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => calls[i % calls.length][1]()));
        const burst = performance.now() - started;
        t.true(
          outcomes.every((outcome) => outcome.status === 'rejected' && outcome.reason instanceof StoreUnavailableError),
          'every call of the burst failed as unavailable',
        );
        t.true(burst < HANG_MS, `the burst settled after ${Math.round(burst)} ms`);
        t.log(`a burst of 50 calls settled after ${Math.round(burst)} ms`);

        end();
        const recovered = performance.now();
        t.is(await store.get('kept', TTL_MS), '{"n":1}', 'the same store reads what it had');
        t.log(`serving again ${(performance.now() - recovered).toFixed(1)} ms after the fault ended`);
        t.true(await store.update('kept', '{"n":2}', TTL_MS));
        t.true(await store.destroy('gone'));
        t.true(await store.create('new', '{}', TTL_MS));
        t.is(await store.get('new', TTL_MS), '{}');
        t.deepEqual(
          lines.map((line) => line.msg),
          [FAILING, WORKING],
          'one line when the outage starts, one when it ends',
        );
        t.regex(String(lines[0].err), new RegExp(fault.reason.source.replace('sqlite: ', '')));
        t.notRegex(JSON.stringify(lines), /kept|gone/, 'no session id in the logs');
      },
    );

    test.serial(
      `through HTTP: while ${fault.name}, session requests get 503 with Retry-After, never a 500; the same app serves again`,
      async (t) => {
        const file = join(fault.folder(t), 'sessions.db');
        const app = await appForTest(t, { SESSION_STORE: 'sqlite', SESSION_SQLITE_FILE: file, LOG_LEVEL: 'warn' });
        const browser = new Browser(app.url);
        t.is((await browser.request('/write?value=mine')).status, 200);
        const tool = await toolOn(t, file);

        const end = fault.start(t, file, tool);
        const waits: number[] = [];
        for (const path of ['/read', '/write?value=other', '/end', '/read']) {
          const started = performance.now();
          const refused = await browser.request(path);
          waits.push(performance.now() - started);
          t.is(refused.status, 503, `${path}: ${refused.body}`);
          t.is(refused.headers.get('retry-after'), '1');
          t.deepEqual(refused.setCookies, [], 'no cookie set or cleared');
        }
        t.true(Math.max(...waits) < HANG_MS, `each 503 came within ${Math.round(Math.max(...waits))} ms`);
        t.true(Math.min(...waits) < STARTUP_WAIT_MS, 'not the start-up wait');
        t.log(`503 after ${waits.map((ms) => `${ms.toFixed(1)} ms`).join(', ')}`);
        // Not asserted: what /healthz says is its own contract (docs/operations.md); a read works here.
        t.log(`/healthz meanwhile: ${(await browser.request('/healthz')).status}`);
        const duringOutage = app.logs.map((line) => line.msg);
        t.deepEqual(duringOutage, [FAILING], 'one line while it lasts (the 503s are counted)');

        end();
        t.deepEqual(await browser.json('/read'), { value: 'mine' }, 'the session written before is there');
        t.is((await browser.request('/write?value=after')).status, 200);
        t.deepEqual(await browser.json('/read'), { value: 'after' });
        const logs = app.logs;
        t.deepEqual(
          logs.map((line) => (SUMMARY.test(String(line.msg)) ? 'summary' : line.msg)),
          [FAILING, 'summary', WORKING],
          'the line that starts it, the 503s counted, the line that ends it',
        );
        t.like(logs[1], { count: 4, first: { method: 'GET', path: '/read' } });
        t.regex(String((logs[1].first as { err: string }).err), fault.reason);
        t.false(
          logs.some((line) => line.level === 'error' || line.level === 50),
          'nothing was an error',
        );
      },
    );
  }
} else {
  test(`on ${process.version}, which has no node:sqlite (instead of the SQLite outages): the server refuses SESSION_STORE=sqlite in one line`, async (t) => {
    const server = await runToExit({ SESSION_STORE: 'sqlite' });
    t.is(server.code, 1);
    t.is(
      server.stderr(),
      `Cannot start: SESSION_STORE=sqlite needs node:sqlite, in Node 22.13 and later; this is Node ${process.version}\n`,
    );
  });
}

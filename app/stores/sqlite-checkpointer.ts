/**
 * Checkpoints of the SQLite store's write-ahead log, on a thread of their own. A checkpoint copies the
 * pages written since the last one from the log into the database file and syncs both: milliseconds of
 * work (docs/stores.md). node:sqlite is synchronous, so a checkpoint run by the store's own connection
 * (SQLite's automatic one, after a commit) stops the event loop that long, every few hundred writes
 * and every few sweep steps. A worker thread with a connection of its own runs them instead, in PASSIVE
 * mode (it never waits for the store's writes, and they never wait for it): every
 * CHECKPOINT_INTERVAL_MS, again at once while the store writes faster than a pass copies (not while a
 * reader's snapshot holds the pages back), and when the store asks (the sweep does after each step, so
 * that it goes at the pace of the checkpoints). The store's connection keeps SQLite's automatic
 * checkpoint at a higher threshold, as a backstop should the worker fall behind or fail.
 */
import { Worker } from 'node:worker_threads';

const CHECKPOINT_INTERVAL_MS = 100;
/** A pass asked for that has not ended by then (a worker that failed) is not waited for any longer. */
const PASS_TIMEOUT_MS = 1_000;

/** The worker: plain CommonJS, evaluated, so that it needs no loader for TypeScript. */
const WORKER_SOURCE = `
const { DatabaseSync } = require('node:sqlite');
const { parentPort, workerData } = require('node:worker_threads');
const db = new DatabaseSync(workerData.path);
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
const passes = new Int32Array(workerData.passes);
/** The log's pages copied as of the last pass. */
let copied = 0;
/**
 * One checkpoint; true when it copied pages and the log holds more it could not copy yet (written
 * meanwhile). A pass that copied nothing new was held back by a reader's snapshot (a backup, a shell's
 * open transaction): going again at once would only spin until that reader ends.
 */
const pass = () => {
  Atomics.add(passes, 0, 1);
  try {
    const { log, checkpointed } = checkpoint.get();
    const headway = checkpointed !== copied;
    copied = checkpointed;
    return headway && checkpointed < log;
  } catch {
    // Busy or failing: the next pass tries again, and the store's own checkpoints are the backstop.
    return false;
  }
};
let timer;
const tick = () => {
  timer = setTimeout(tick, pass() ? 0 : workerData.intervalMs);
};
timer = setTimeout(tick, workerData.intervalMs);
parentPort.on('message', (message) => {
  if (message === 'pass') {
    pass();
    parentPort.postMessage('passed');
    return;
  }
  clearTimeout(timer);
  db.close();
  parentPort.close();
});
`;

export interface Checkpointer {
  /**
   * Asks for a checkpoint now; resolves when it has run (or after PASS_TIMEOUT_MS). `keepAlive`: the
   * wait holds the process open, for a caller that must see the promise settle.
   */
  pass(keepAlive: boolean): Promise<void>;
  /** Stops the worker and closes its connection; resolves once the thread has exited. */
  stop(): Promise<void>;
  /** How many checkpoints the worker has run (for tests and diagnostics). */
  passes(): number;
  /** Whether the worker is still there: once it has exited, pass() resolves at once and paces nothing. */
  running(): boolean;
}

export function startCheckpointer(path: string): Checkpointer {
  const passes = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { path, intervalMs: CHECKPOINT_INTERVAL_MS, passes: passes.buffer },
  });
  // A worker that fails (it cannot open the file) leaves the checkpoints to the store's connection.
  worker.on('error', () => {});
  // It never keeps the process alive by itself.
  worker.unref();
  let stopped = false;
  const exited = new Promise<void>((resolve) =>
    worker.once('exit', () => {
      stopped = true;
      resolve();
    }),
  );
  let waiting: Array<() => void> = [];
  const wake = () => {
    const woken = waiting;
    waiting = [];
    for (const resolve of woken) resolve();
  };
  worker.on('message', wake);
  void exited.then(wake);
  return {
    pass(keepAlive) {
      if (stopped) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(wake, PASS_TIMEOUT_MS);
        if (!keepAlive) timer.unref();
        waiting.push(() => {
          clearTimeout(timer);
          resolve();
        });
        worker.postMessage('pass');
      });
    },
    passes: () => Atomics.load(passes, 0),
    running: () => !stopped,
    async stop() {
      worker.ref(); // held until it has exited, so that the promise settles
      worker.postMessage('stop');
      await exited;
    },
  };
}

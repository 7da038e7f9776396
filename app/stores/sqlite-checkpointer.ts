/**
 * Checkpoints of the SQLite store's write-ahead log, on a thread of their own. A checkpoint copies the
 * pages written since the last one from the log into the database file and syncs it: about 10 ms for
 * 1,000 pages at 1M sessions (docs/stores.md). node:sqlite is synchronous, so a checkpoint run by the
 * store's own connection (SQLite's automatic one, after a commit) stops the event loop that long, every
 * few hundred writes and every few sweep steps. A worker thread with a connection of its own runs them
 * instead, every CHECKPOINT_INTERVAL_MS, in PASSIVE mode: it never waits for the store's writes and they
 * never wait for it. The store's connection keeps SQLite's automatic checkpoint with a larger threshold,
 * as a backstop should the worker fall behind (or fail): the log stays bounded either way.
 */
import { Worker } from 'node:worker_threads';

const CHECKPOINT_INTERVAL_MS = 100;

/** The worker: plain CommonJS, evaluated, so that it needs no loader for TypeScript. */
const WORKER_SOURCE = `
const { DatabaseSync } = require('node:sqlite');
const { parentPort, workerData } = require('node:worker_threads');
const db = new DatabaseSync(workerData.path);
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
let timer;
// Again at once while the store writes faster than a pass copies (a sweep), else every intervalMs.
const tick = () => {
  let behind = false;
  try {
    const { log, checkpointed } = checkpoint.get();
    behind = checkpointed < log;
  } catch {
    // Busy or failing: the next tick tries again, and the store's own checkpoints are the backstop.
  }
  timer = setTimeout(tick, behind ? 0 : workerData.intervalMs);
};
timer = setTimeout(tick, workerData.intervalMs);
parentPort.once('message', () => {
  clearTimeout(timer);
  db.close();
  parentPort.close();
});
`;

export interface Checkpointer {
  /** Stops the worker and closes its connection; resolves once the thread has exited. */
  stop(): Promise<void>;
}

export function startCheckpointer(path: string): Checkpointer {
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { path, intervalMs: CHECKPOINT_INTERVAL_MS },
  });
  // A worker that fails (it cannot open the file) leaves the checkpoints to the store's connection.
  worker.on('error', () => {});
  // It never keeps the process alive by itself.
  worker.unref();
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  return {
    async stop() {
      worker.ref(); // held until it has exited, so that the promise settles
      worker.postMessage('stop');
      await exited;
    },
  };
}

/**
 * Measures the SQLite store (app/stores/sqlite.ts) on the event loop: the time one call takes at 10k
 * and 1M stored sessions, and the event-loop delay while the sweep deletes 1M expired sessions.
 * Figures go to docs/stores.md. Node 22.13 or later:
 *   node --import tsx tools/bench/sqlite-store.ts [calls|sweep] [--batch 500] [--file /tmp/bench.db]
 */
import { randomBytes } from 'node:crypto';
import { rmSync, statSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { DatabaseSync } from 'node:sqlite';
import { parseArgs } from 'node:util';
import { SqliteStore } from '../../app/stores/sqlite.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    batch: { type: 'string', default: '100' },
    file: { type: 'string', default: '/tmp/sqlite-bench.db' },
    'no-worker': { type: 'boolean', default: false },
  },
});
const file = values.file;
const TEXT = '{"time":1795712607}';
const HOUR = 3_600_000;
const checkpointInWorker = !values['no-worker'];
/** A random 21-character id, as the session layer's nanoid makes. */
const newId = () => randomBytes(16).toString('base64url').slice(0, 21);

function removeFile(): void {
  for (const path of [file, `${file}-wal`, `${file}-shm`]) rmSync(path, { force: true });
}

/** A new session database with `rows` sessions, expiring in insertion order from `firstExpiry`. */
async function fill(rows: number, firstExpiry: number): Promise<string[]> {
  removeFile();
  await (await SqliteStore.open({ file, maxEntries: 100_000_000 })).close();
  const db = new DatabaseSync(file);
  const insert = db.prepare('INSERT INTO sessions (id, text, expires_at) VALUES (?, ?, ?)');
  const ids: string[] = [];
  db.exec('BEGIN');
  for (let i = 0; i < rows; i++) {
    const id = newId();
    ids.push(id);
    insert.run(id, TEXT, firstExpiry + i);
  }
  db.exec('COMMIT');
  db.close();
  return ids;
}

function summary(samplesMs: number[]): string {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] * 1000;
  const mean = (sorted.reduce((sum, x) => sum + x, 0) / sorted.length) * 1000;
  const over5ms = sorted.filter((ms) => ms > 5).length;
  return (
    `mean ${mean.toFixed(1)} µs, p50 ${at(0.5).toFixed(1)}, p99 ${at(0.99).toFixed(1)}, ` +
    `p99.9 ${at(0.999).toFixed(0)}, max ${at(1).toFixed(0)}; ${over5ms} over 5 ms`
  );
}

/**
 * Each call's wall time on the event loop, and the process's CPU time per call: on a machine shared with
 * other work the wall times grow (the process waits for a core), the CPU time does not.
 */
async function timeCalls(count: number, call: (i: number) => Promise<unknown>): Promise<string> {
  const samples: number[] = [];
  const cpu = process.cpuUsage();
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await call(i);
    samples.push(performance.now() - started);
  }
  const used = process.cpuUsage(cpu);
  return `CPU ${((used.user + used.system) / count).toFixed(1)} µs/call; wall ${summary(samples)}`;
}

async function calls(rows: number): Promise<void> {
  const ids = await fill(rows, Date.now() + HOUR);
  const opening = performance.now();
  const store = await SqliteStore.open({ file, maxEntries: 100_000_000, checkpointInWorker });
  console.log(`${rows} sessions: open ${(performance.now() - opening).toFixed(0)} ms`);
  const n = 20_000;
  const any = () => ids[Math.floor(Math.random() * ids.length)];
  console.log(`  get (hit)        ${await timeCalls(n, () => store.get(any(), HOUR))}`);
  console.log(`  get (miss)       ${await timeCalls(n, () => store.get(newId(), HOUR))}`);
  console.log(`  update           ${await timeCalls(n, () => store.update(any(), TEXT, HOUR))}`);
  console.log(`  create           ${await timeCalls(n, () => store.create(newId(), TEXT, HOUR))}`);
  console.log(`  destroy          ${await timeCalls(n, (i) => store.destroy(ids[i % ids.length]))}`);
  await store.close();
  // At the cap: every create evicts one.
  const full = await SqliteStore.open({ file, maxEntries: await rowCount(), checkpointInWorker });
  console.log(`  create at cap    ${await timeCalls(n, () => full.create(newId(), TEXT, HOUR))}`);
  await full.close();
}

async function rowCount(): Promise<number> {
  const db = new DatabaseSync(file);
  const n = Number(db.prepare('SELECT count(*) AS n FROM sessions').get()?.n);
  db.close();
  return n;
}

async function sweep(rows: number, batch: number): Promise<void> {
  await fill(rows, Date.now() - 2 * rows);
  const store = await SqliteStore.open({
    file,
    maxEntries: 100_000_000,
    sweepBatchSize: batch,
    sweepIntervalMs: 2 ** 31 - 1,
    checkpointInWorker,
  });
  const resolutionMs = 1;
  const delay = monitorEventLoopDelay({ resolution: resolutionMs });
  // A request every millisecond meanwhile: how long a call waits for its answer, sweep steps included.
  const waits: number[] = [];
  let sweeping = true;
  const requests = (async () => {
    while (sweeping) {
      const started = performance.now();
      await new Promise((resolve) => setTimeout(resolve, 1));
      await store.get('missing', HOUR);
      waits.push(performance.now() - started - 1);
    }
  })();
  delay.enable();
  const started = performance.now();
  const cpu = process.cpuUsage();
  await store.sweep();
  const used = process.cpuUsage(cpu);
  const totalMs = performance.now() - started;
  delay.disable();
  sweeping = false;
  await requests;
  const late = (ns: number) => Math.max(0, ns / 1e6 - resolutionMs).toFixed(2);
  console.log(
    `sweep of ${rows} expired sessions, batches of ${batch}: ${(totalMs / 1000).toFixed(1)} s, ` +
      `CPU ${((used.user + used.system) / 1e6).toFixed(1)} s (${((used.user + used.system) / rows).toFixed(1)} µs/row, ` +
      `${((used.user + used.system) / 1000 / Math.ceil(rows / batch)).toFixed(2)} ms/batch, requests included); ` +
      `event-loop delay p50 ${late(delay.percentile(50))} ms, p99 ${late(delay.percentile(99))} ms, ` +
      `max ${late(delay.max)} ms; a request meanwhile: ${summary(waits)}; ` +
      `${await store.size()} left; WAL ${(statSync(`${file}-wal`).size / 1e6).toFixed(1)} MB`,
  );
  await store.close();
}

const mode = positionals[0] ?? 'calls';
if (mode === 'calls') {
  await calls(10_000);
  await calls(1_000_000);
} else {
  await sweep(1_000_000, Number(values.batch));
}
removeFile();

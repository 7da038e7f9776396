/**
 * Heap bytes per stored session: fills a MemoryStore with 100k sessions shaped as koa-session stores
 * this app's (`{time, _session}` under a nanoid id) and compares heapUsed after full collections.
 * Run with --expose-gc (run.ts does).
 */
import { nanoid } from 'nanoid';
import { MemoryStore } from '../../app/stores/memory.ts';

const COUNT = Number(process.argv[2] ?? 100_000);
const gc = globalThis.gc;
if (!gc) throw new Error('run with --expose-gc');

function settledHeap(): number {
  for (let i = 0; i < 4; i++) gc!();
  return process.memoryUsage().heapUsed;
}

const TTL_MS = 3_600_000;
const store = new MemoryStore({ maxEntries: COUNT });
const before = settledHeap();
const time = Math.floor(Date.now() / 1000);
// Everything the store holds counts: the id string (the Map key), the entry, the stored text. The
// text is made as the session layer makes it (JSON.stringify), so the store's own copy is measured.
for (let i = 0; i < COUNT; i++)
  await store.create(nanoid(), JSON.stringify({ time: time + (i % 1000), _session: true }), TTL_MS);
const after = settledHeap();
const perSession = (after - before) / COUNT;
process.stdout.write(`${JSON.stringify({ sessions: store.size, heapBytesPerSession: Math.round(perSession) })}\n`);
await store.close();

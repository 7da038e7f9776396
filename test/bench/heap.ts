/**
 * Heap bytes per stored session: fills a MemoryStore with 100k sessions shaped as koa-session stores
 * this app's (`{time, _session}` under a nanoid id) and compares heapUsed after full collections.
 * Run with --expose-gc (test/bench/run.ts does).
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

const store = new MemoryStore({ defaultMaxAgeMs: 3_600_000, maxEntries: COUNT });
const before = settledHeap();
const time = Math.floor(Date.now() / 1000);
// Everything the store holds counts: the id string (the Map key), the entry, the serialized value.
for (let i = 0; i < COUNT; i++) await store.set(nanoid(), { time: time + (i % 1000), _session: true });
const after = settledHeap();
const perSession = (after - before) / COUNT;
process.stdout.write(`${JSON.stringify({ sessions: store.size, heapBytesPerSession: Math.round(perSession) })}\n`);
await store.close();

/**
 * Heap bytes per stored session: fills a MemoryStore with 100k sessions shaped as koa-session stores
 * this app's (`{time, _session}` under a store key made by app/session/store-keys.ts from a session id) and compares heapUsed after full collections. Run with --expose-gc (run.ts does).
 */
import { nanoid } from 'nanoid';
import { StoreKeys } from '../../app/session/store-keys.ts';
import { MemoryStore } from '../../app/stores/memory.ts';

const COUNT = Number(process.argv[2] ?? 100_000);
const gc = globalThis.gc;
if (!gc) throw new Error('run with --expose-gc');

function settledHeap(): number {
  for (let i = 0; i < 4; i++) gc!();
  return process.memoryUsage().heapUsed;
}

const TTL_MS = 3_600_000;
const storeKeys = new StoreKeys(['bench-heap-key']);
const store = new MemoryStore({ maxEntries: COUNT });
const before = settledHeap();
const time = Math.floor(Date.now() / 1000);
// Everything the store holds counts: the store key (the Map key), the entry, the stored text. Key and
// text are made as the session layer makes them (a digest, JSON.stringify), so the store's own copies count.
for (let i = 0; i < COUNT; i++) {
  const storeKey = storeKeys.of(nanoid());
  await store.create(storeKey, JSON.stringify({ time: time + (i % 1000), _session: true }), TTL_MS);
}
const after = settledHeap();
const perSession = (after - before) / COUNT;
process.stdout.write(`${JSON.stringify({ sessions: store.size, heapBytesPerSession: Math.round(perSession) })}\n`);
await store.close();

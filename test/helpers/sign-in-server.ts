/**
 * The real server entry (startServer, as app/main.ts calls it) with the sign-in tests' routes, for tests
 * that need a process of its own: its heap holds nothing of the test's. Given a path as its argument, it
 * writes a heap snapshot there on SIGUSR2 (to `<path>.partial` first, renamed once complete).
 */
import { renameSync } from 'node:fs';
import { writeHeapSnapshot } from 'node:v8';
import { startServer } from '../../app/server.ts';
import { addSignInRoutes } from './sign-in-routes.ts';

const snapshotPath = process.argv[2];
if (snapshotPath !== undefined) {
  process.on('SIGUSR2', () => renameSync(writeHeapSnapshot(`${snapshotPath}.partial`), snapshotPath));
}
await startServer(addSignInRoutes);

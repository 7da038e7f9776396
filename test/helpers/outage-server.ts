/**
 * The real server entry with routes of the outage tests' own (test/outage-logs.test.ts), run as a
 * child process by spawnServer({ script }): /write counts in the session, /read reads it.
 */
import { startServer } from '../../app/server.ts';

declare module '../../app/session/types.ts' {
  interface SessionData {
    /** How many times /write ran in this session (the outage tests' own field). */
    outageWrites?: number;
  }
}

await startServer((router, session) => {
  router.get('/write', session.change, (ctx) => {
    ctx.session.outageWrites = (ctx.session.outageWrites ?? 0) + 1;
    ctx.body = String(ctx.session.outageWrites);
  });
  router.get('/read', session.read, (ctx) => {
    ctx.body = String(ctx.session.outageWrites ?? 0);
  });
});

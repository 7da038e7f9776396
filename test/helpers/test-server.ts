/**
 * The server entry of the process-level tests (test/helpers/process.ts runs it by default): exactly
 * what app/main.ts does for `npm start`, with the test routes (test/helpers/routes.ts) in place of
 * yours, so that those tests keep running whatever app/routes.ts mounts. test/server.test.ts also
 * runs app/main.ts itself.
 */
import { startServer } from '../../app/server.ts';
import { addTestRoutes } from './routes.ts';

await startServer(addTestRoutes);

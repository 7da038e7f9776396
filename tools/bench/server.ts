/**
 * The server the benchmark measures: the template's own start-up (startServer, as app/main.ts calls
 * it) with the benchmark's routes. The variants copy this file and routes.ts beside their copy of
 * app/, so that these relative imports reach the edited copy.
 */
import { startServer } from '../../app/server.ts';
import { addBenchRoutes } from './routes.ts';

await startServer(addBenchRoutes);

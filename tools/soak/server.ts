/** The server the soak drives: the template's own start-up (startServer, as app/main.ts calls it) with the soak's routes. */
import { startServer } from '../../app/server.ts';
import { addSoakRoutes } from './routes.ts';

await startServer(addSoakRoutes);

/** The entry point (`npm start`): the server with your routes (app/routes.ts). */
import { addRoutes } from './routes.ts';
import { startServer } from './server.ts';

await startServer(addRoutes);

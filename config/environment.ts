/**
 * Where settings come from: the process environment, plus a `.env` file in the working directory
 * when there is one. Variables already set in the environment win over the file, as with
 * `node --env-file`. This is the only module that touches process.env.
 */
import { existsSync } from 'node:fs';
import type { Environment } from './parsers.ts';

export function readEnvironment(envFile = '.env'): Environment {
  if (existsSync(envFile)) process.loadEnvFile(envFile);
  return process.env;
}

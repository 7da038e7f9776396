/**
 * Where settings come from: the process environment, plus a `.env` file in the working directory
 * when there is one. Variables already set in the environment win over the file, as with
 * `node --env-file`. This is the only module that touches process.env.
 *
 * The file is read here, once, and parsed with Node's own .env parser (util.parseEnv), rather than
 * handed to process.loadEnvFile: that one reads a byte-order mark (which some Windows editors write)
 * as part of the first name, so `NODE_ENV=production` on the first line would be lost without a word,
 * and it throws with a stack trace for a .env it cannot read (a folder, no permission).
 *
 * Node's .env reader skips what it cannot read without a word, so a typo would silently leave a
 * default in place (`SESION_MAX_AGE=5s`, `PORT 8200`). The file is checked too: a line that is not
 * `NAME=value`, and a name that is not a setting but looks like one, each give a start-up warning.
 */
import { readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import type { Environment } from './parsers.ts';
import { StartupError } from './startup-error.ts';

export interface EnvironmentReading {
  readonly env: Environment;
  /** What looks wrong in the .env file (logged at start; nothing stops). */
  readonly warnings: readonly string[];
}

/** Why a file could not be read, in words, for the common cases. */
const READ_ERRORS: Readonly<Record<string, string>> = {
  EISDIR: 'it is a folder, not a file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ELOOP: 'a symbolic link that leads back to itself',
};

/**
 * Loads the .env file (if there is one) into process.env under what is already set there. A .env
 * that exists but cannot be read stops start-up: the settings it holds would be silently missing.
 */
export function readEnvironment(knownNames: readonly string[], envFile = '.env'): EnvironmentReading {
  let text: string;
  try {
    text = readFileSync(envFile, 'utf8');
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    if (code === 'ENOENT') return { env: process.env, warnings: [] };
    const reason = code !== undefined && code in READ_ERRORS ? `${code}: ${READ_ERRORS[code]}` : message;
    throw new StartupError(envFile, `${envFile} cannot be read (${reason})`, { cause: error });
  }
  if (text.startsWith('\uFEFF')) text = text.slice(1);
  for (const [name, value] of Object.entries(parseEnv(text))) {
    if (process.env[name] === undefined) process.env[name] = value;
  }
  return { env: process.env, warnings: checkEnvFile(text, knownNames, envFile) };
}

/** Node's reader strips `export ` with exactly one space; any other spacing makes another name (or none). */
const ASSIGNMENT = /^\s*(?:export )?([A-Za-z_][A-Za-z0-9_]*)\s*=/;
const ODDLY_SPACED_EXPORT = /^\s*export(?! \S)\s+[A-Za-z_]/;
/** Our settings' families: an unknown name with one of these prefixes is most likely a typo. */
const OUR_PREFIXES = ['SESSION_', 'REDIS_', 'HTTP_', 'LOG_', 'SHUTDOWN_'];

/** Warnings for the lines of a .env file that cannot do what their author meant. */
export function checkEnvFile(text: string, knownNames: readonly string[], fileName = '.env'): string[] {
  const warnings: string[] = [];
  let inQuotedValue = false;
  text.split(/\r?\n/).forEach((line, index) => {
    // A value in quotes may span lines (Node's reader allows it): skip its continuation lines.
    // It ends at the first double quote, whatever follows on that line (as Node reads it).
    if (inQuotedValue) {
      if (line.includes('"')) inQuotedValue = false;
      return;
    }
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    if (ODDLY_SPACED_EXPORT.test(line)) {
      warnings.push(
        `${fileName} line ${index + 1}: write "export NAME=value" with a single space, or Node may read another name`,
      );
      return;
    }
    const match = ASSIGNMENT.exec(line);
    if (match === null) {
      warnings.push(
        `${fileName} line ${index + 1} is not NAME=value and is ignored: ${JSON.stringify(line.trim().slice(0, 60))}`,
      );
      return;
    }
    if (/=\s*"[^"]*$/.test(line)) inQuotedValue = true;
    const name = match[1];
    if (knownNames.includes(name)) return;
    const meant = closestName(name, knownNames);
    if (meant !== undefined) {
      warnings.push(`${fileName} line ${index + 1}: ${name} is not a setting of this app; did you mean ${meant}?`);
    } else if (OUR_PREFIXES.some((prefix) => name.startsWith(prefix))) {
      warnings.push(`${fileName} line ${index + 1}: ${name} is not a setting of this app (see .env.example)`);
    }
  });
  return warnings;
}

/** The known name within two edits of `name` (case aside), if there is one. */
function closestName(name: string, knownNames: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const known of knownNames) {
    const distance = editDistance(name.toUpperCase(), known);
    if (distance <= 2 && (best === undefined || distance < best.distance)) best = { name: known, distance };
  }
  return best?.name;
}

/** Levenshtein distance, one row at a time. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}

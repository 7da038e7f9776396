/**
 * Parsers for single environment variables. Each one either returns a typed value or throws a
 * ConfigError that names the variable, the value it got and what would have been accepted, so the
 * server can stop with one readable line instead of a stack trace.
 */
import { StartupError } from './startup-error.ts';

/** A setting with a value that is not allowed: names the variable, the value and what is allowed. */
export class ConfigError extends StartupError {
  constructor(variable: string, value: string, allowed: string) {
    super(variable, `${variable}=${JSON.stringify(value)} is not allowed: ${allowed}`);
    this.name = 'ConfigError';
  }
}

export type Environment = Readonly<Record<string, string | undefined>>;

/** The raw value, or undefined when the variable is unset or blank (a blank line in .env means "default"). */
function raw(env: Environment, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

export function readString(env: Environment, name: string, fallback: string): string {
  return raw(env, name) ?? fallback;
}

export function readOptionalString(env: Environment, name: string): string | undefined {
  return raw(env, name);
}

export function readInteger(env: Environment, name: string, fallback: number, min: number, max: number): number {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  const number = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(number) || number < min || number > max) {
    throw new ConfigError(name, value, `a whole number from ${min} to ${max}`);
  }
  return number;
}

export function readBoolean(env: Environment, name: string, fallback: boolean): boolean {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  if (/^(true|1|yes)$/i.test(value)) return true;
  if (/^(false|0|no)$/i.test(value)) return false;
  throw new ConfigError(name, value, 'true or false (yes/no and 1/0 also work)');
}

export function readChoice<T extends string>(env: Environment, name: string, fallback: T, choices: readonly T[]): T {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  const choice = choices.find((candidate) => candidate === value.toLowerCase());
  if (choice === undefined) throw new ConfigError(name, value, `one of ${choices.join(', ')}`);
  return choice;
}

const DURATION_UNITS_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/**
 * The timeouts end up in Node timers (setTimeout, the HTTP server's own), and Node fires a timer set
 * past 2^31-1 ms (about 24.8 days) after 1 ms instead, with nothing but a process warning: a 30-day
 * SHUTDOWN_TIMEOUT would exit at once, a 25-day REDIS_COMMAND_TIMEOUT would fail calls that are merely
 * slow. The session lifetimes only feed expiry times and TTLs, but one bound for every duration is
 * simpler to state and to remember.
 */
const MAX_DURATION_MS = 2 ** 31 - 1;
const UNITS_HELP = 'milliseconds (60000) or a number with a unit ms, s, m, h or d (90s, 1m, 2h)';

export interface DurationOptions {
  /** Accept 0 (for periods that may be switched off). */
  readonly allowZero?: boolean;
  /** A lower bound than the longest timer, for a setting Node lengthens (with why, for the message). */
  readonly maxMs?: number;
  readonly maxReason?: string;
}

function durationHelp(options: DurationOptions): string {
  const minimum = options.allowZero ? '0' : '1 ms';
  if (options.maxMs === undefined) {
    const longest = `24d (${MAX_DURATION_MS} ms, the longest a Node timer can wait)`;
    return `a duration of at least ${minimum} and at most ${longest}: ${UNITS_HELP}`;
  }
  return `a duration of at least ${minimum} and at most ${options.maxMs} ms (${options.maxReason}): ${UNITS_HELP}`;
}

/** Milliseconds from "60000", "250ms", "90s", "1m", "2h" or "7d". */
export function readDuration(env: Environment, name: string, fallback: number, options?: DurationOptions): number;
export function readDuration(env: Environment, name: string, fallback: null): number | null;
export function readDuration(
  env: Environment,
  name: string,
  fallback: number | null,
  options: DurationOptions = {},
): number | null {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  const minimum = options.allowZero ? 0 : 1;
  const match = /^(\d+)(ms|s|m|h|d)?$/i.exec(value);
  const ms = match ? Number(match[1]) * DURATION_UNITS_MS[(match[2] ?? 'ms').toLowerCase()] : Number.NaN;
  if (!(ms >= minimum && ms <= (options.maxMs ?? MAX_DURATION_MS)))
    throw new ConfigError(name, value, durationHelp(options));
  return ms;
}

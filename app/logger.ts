/**
 * Structured logs: one JSON object per line on standard output, so any log shipper can parse them.
 * Twenty lines do what this app needs; swap in pino if you want transports and redaction rules.
 */
import type { LogLevel } from '../config/index.ts';

export type LogFields = Record<string, unknown>;
type Method = (message: string, fields?: LogFields) => void;
export interface Logger {
  /** Whether lines at this level are written (lets hot paths skip building them). */
  readonly enabled: (level: Exclude<LogLevel, 'silent'>) => boolean;
  readonly debug: Method;
  readonly info: Method;
  readonly warn: Method;
  readonly error: Method;
}

const SEVERITY: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40, silent: Infinity };

/** Errors do not survive JSON.stringify on their own; keep what an operator needs. */
function toLoggable(value: unknown): unknown {
  return value instanceof Error ? { name: value.name, message: value.message, stack: value.stack } : value;
}

export function createLogger(level: LogLevel, write: (line: string) => void = (line) => process.stdout.write(line)): Logger {
  const threshold = SEVERITY[level];
  const method = (name: Exclude<LogLevel, 'silent'>): Method => {
    if (SEVERITY[name] < threshold) return () => {};
    return (message, fields) => {
      const entry: LogFields = { time: new Date().toISOString(), level: name, msg: message };
      for (const key in fields) entry[key] = toLoggable(fields[key]);
      write(`${JSON.stringify(entry)}\n`);
    };
  };
  return {
    enabled: (name) => SEVERITY[name] >= threshold,
    debug: method('debug'),
    info: method('info'),
    warn: method('warn'),
    error: method('error'),
  };
}

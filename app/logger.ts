/**
 * Logs through pino: one JSON object per line on standard output (`level` as a word, `time` as ISO
 * 8601, `msg`), which any log shipper parses. Written asynchronously and buffered (pino.destination
 * with sync: false): a request never waits for the terminal or the pipe; lines collect until 4 KiB or
 * FLUSH_INTERVAL_MS, whichever comes first, and go out in one write. The process exits through
 * exitAfterLogs(), which waits for every write to land, in order.
 *
 * LOG_FORMAT=pretty (or auto in a development terminal) prints human-readable lines through
 * pino-pretty, a development dependency: without it, auto stays JSON.
 */
import { createRequire } from 'node:module';
import pino, { type DestinationStream, type Logger } from 'pino';
import { type LogFormat, type LogLevel, StartupError } from '../config/index.ts';
import { flushLogSummaries } from './log-summary.ts';

export type { Logger };

export interface LoggerSettings {
  readonly level: LogLevel;
  readonly format: LogFormat;
  /** Production rules: `auto` never turns pretty then. */
  readonly production: boolean;
}

const require = createRequire(import.meta.url);

function prettyPrinterInstalled(): boolean {
  try {
    require.resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

/** Lines are written in batches of about this many bytes... */
const BUFFER_BYTES = 4_096;
/** ...or at least this often, so a quiet server's lines still show up at once to a person watching. */
const FLUSH_INTERVAL_MS = 100;

/**
 * Errors as pino shows them, less what a request put in them: Node's HTTP parse errors carry the raw
 * bytes received (`rawPacket`), session cookies and Authorization headers included.
 */
function serializeError(error: unknown): unknown {
  const shown = pino.stdSerializers.err(error as Error) as unknown as Record<string, unknown>;
  if (shown !== null && typeof shown === 'object' && 'rawPacket' in shown) delete shown.rawPacket;
  return shown;
}

const OPTIONS: pino.LoggerOptions = {
  // Only what each line says: no pid or hostname (the platform adds its own).
  base: undefined,
  serializers: { err: serializeError },
  timestamp: pino.stdTimeFunctions.isoTime,
  formatters: { level: (label) => ({ level: label }) },
};

/** Whether LOG_FORMAT asks for human-readable lines here. */
export function wantsPrettyLines(
  { format, production }: LoggerSettings,
  isTerminal = process.stdout.isTTY === true,
): boolean {
  if (format === 'json') return false;
  if (format === 'pretty') {
    if (!prettyPrinterInstalled())
      throw new StartupError(
        'LOG_FORMAT',
        'LOG_FORMAT="pretty" needs pino-pretty, a development dependency (npm install); use json or auto',
      );
    return true;
  }
  return isTerminal && !production && prettyPrinterInstalled();
}

/**
 * The process's logger on standard output. Tests pass a destination of their own (any object with a
 * `write(line)`), which is then written to synchronously.
 */
export function createLogger(settings: LoggerSettings, destination?: DestinationStream): Logger {
  const options = { ...OPTIONS, level: settings.level };
  if (destination) return pino(options, destination);
  if (wantsPrettyLines(settings)) {
    return pino({
      ...options,
      transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'requestId' } },
    });
  }
  const stdout = pino.destination({ dest: 1, sync: false, minLength: BUFFER_BYTES });
  // The destination's own flush, not logger.flush(): that one passes a callback, which makes the
  // destination fsync standard output every time (on a file, a disk sync ten times a second).
  setInterval(() => stdout.flush(), FLUSH_INTERVAL_MS).unref(); // nothing destroys it: the process exits with it
  return pino(options, stdout);
}

/** A logger that writes nothing (tests, tools). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * Exits once every log line is written, in order (the summaries still counting are written first:
 * app/log-summary.ts). The destination writes asynchronously, and on process.exit its last synchronous
 * flush could overtake a write still under way (the lines came out swapped); pino's flush callback
 * waits for both, and a stuck stdout for at most a second.
 */
export function exitAfterLogs(logger: Logger, code: number): void {
  flushLogSummaries(logger);
  setTimeout(() => process.exit(code), 1_000).unref();
  logger.flush(() => process.exit(code));
}

/**
 * Logs through pino: one JSON object per line on standard output (`level` as a word, `time` as ISO
 * 8601, `msg`), which any log shipper parses. Written asynchronously and buffered (pino.destination
 * with sync: false): a request never waits for the terminal or the pipe; lines collect until 64 KiB or
 * FLUSH_INTERVAL_MS, whichever comes first, and go out in one write. The process exits through
 * exitAfterLogs(), which waits for every write to land, in order; after a fatal line, and when the
 * process exits, what is pending is written synchronously.
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

/**
 * Lines are written in batches of about this many bytes... Each write goes to a thread of libuv's pool
 * and its end is reported back: switches between threads that cost a busy server more than the lines
 * themselves unless spread over many lines (docs/benchmark.md).
 */
const BUFFER_BYTES = 65_536;
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

let timeMs = 0;
let timeText = '';

/**
 * The time as ISO 8601 (`2026-12-06T20:56:18.123Z`), made once per millisecond: a busy server writes
 * many lines within one, and formatting a Date was a large part of the cost of pino's own line.
 */
export function isoTime(): string {
  const now = Date.now();
  if (now !== timeMs) {
    timeMs = now;
    timeText = new Date(now).toISOString();
  }
  return timeText;
}

const OPTIONS: pino.LoggerOptions = {
  // Only what each line says: no pid or hostname (the platform adds its own).
  base: undefined,
  serializers: { err: serializeError },
  timestamp: () => `,"time":"${isoTime()}"`,
  formatters: { level: (label) => ({ level: label }) },
};

/** pino's destination (sonic-boom), here in its mode for bytes: it writes what it is given as is. */
interface ByteDestination {
  write(bytes: Buffer): boolean;
  flush(callback?: (error?: Error) => void): void;
  flushSync(): void;
  /** sonic-boom's own flag: a write is under way in libuv's thread pool. */
  readonly _writing: boolean;
}

/**
 * Gathers lines, as UTF-8, and hands them to pino's destination a batch at a time; it writes each
 * batch at once, or right after the write under way. sonic-boom could gather the lines itself, but
 * for text it measures the byte length of all it holds on every line it is given, which copies it
 * (docs/benchmark.md); here each line is encoded once, as it comes. Every line goes through here, in
 * order; flush() and flushSync() hand over what is gathered first, so pino's flushes (exitAfterLogs,
 * a fatal line) lose nothing.
 */
class LineBatch implements DestinationStream {
  readonly #bytes = Buffer.allocUnsafe(2 * BUFFER_BYTES);
  #length = 0;
  readonly #destination: ByteDestination;

  constructor(destination: ByteDestination) {
    this.#destination = destination;
  }

  write(line: string): void {
    // A UTF-16 unit takes at most 3 bytes in UTF-8: a line that might not fit starts a new batch, and
    // one larger than a batch (a long stack) goes on its own.
    if (3 * line.length > this.#bytes.length - this.#length) {
      this.handOver();
      if (3 * line.length > this.#bytes.length) {
        this.#destination.write(Buffer.from(line));
        return;
      }
    }
    this.#length += this.#bytes.write(line, this.#length);
    if (this.#length >= BUFFER_BYTES) this.handOver();
  }

  /** Starts writing what is gathered (asynchronously). */
  handOver(): void {
    if (this.#length === 0) return;
    // A copy: the destination keeps it until it is written, and this buffer takes the next batch.
    const batch = Buffer.from(this.#bytes.subarray(0, this.#length));
    this.#length = 0;
    this.#destination.write(batch);
  }

  /** Writes what is gathered; `callback` once every write has landed (pino's logger.flush). */
  flush(callback?: (error?: Error) => void): void {
    this.handOver();
    this.#destination.flush(callback);
  }

  /**
   * pino calls this after a fatal line. While a write is under way in the thread pool, a synchronous
   * write now would land before it (the fatal line ahead of request lines written earlier): then the
   * lines are only handed over, and go out in order behind it; exitAfterLogs() waits for them.
   */
  flushSync(): void {
    this.handOver();
    if (!this.#destination._writing) this.#destination.flushSync();
  }

  /** The process is exiting: nothing more can wait, so whatever is pending is written now. */
  writeAllSync(): void {
    this.handOver();
    this.#destination.flushSync();
  }
}

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
  // minLength 1: the destination writes whatever it is handed (LineBatch makes the batches), and its
  // flush(callback) still waits for the write under way (with 0 it would call back at once).
  const bytesOut = pino.destination({ dest: 1, sync: false, minLength: 1, contentMode: 'buffer' });
  const stdout = new LineBatch(bytesOut as unknown as ByteDestination);
  // A hand-over, not logger.flush(): that one passes a callback, which makes the destination fsync
  // standard output every time (on a file, a disk sync ten times a second).
  setInterval(() => stdout.handOver(), FLUSH_INTERVAL_MS).unref(); // nothing destroys it: the process exits with it
  // pino writes what its destination holds when the process exits; what is gathered here goes first.
  process.prependListener('exit', () => {
    try {
      stdout.writeAllSync();
    } catch {
      // standard output is closed or gone: nothing more can be written
    }
  });
  return pino(options, stdout);
}

/**
 * Where the logger writes its lines: a line written here by hand (app/request-log.ts) takes its place
 * among pino's own, in order, and is flushed with them.
 */
export function destinationOf(logger: Logger): DestinationStream {
  return (logger as unknown as Record<symbol, DestinationStream>)[pino.symbols.streamSym];
}

/** A logger that writes nothing (tests, tools). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * How long an exit waits for standard output that does not take the last lines. A reader that is only
 * slow (a busy machine, a log shipper catching up) must not lose the fatal line: the wait is generous.
 */
const STUCK_STDOUT_MS = 5_000;

/**
 * Exits once every log line is written, in order (the summaries still counting are written first:
 * app/log-summary.ts). The destination writes asynchronously, and on process.exit its last synchronous
 * flush could overtake a write still under way (the lines came out swapped); pino's flush callback
 * waits for both, and a stuck stdout for at most STUCK_STDOUT_MS.
 */
export function exitAfterLogs(logger: Logger, code: number): void {
  flushLogSummaries(logger);
  setTimeout(() => process.exit(code), STUCK_STDOUT_MS).unref();
  logger.flush(() => process.exit(code));
}

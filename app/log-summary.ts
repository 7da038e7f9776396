/**
 * Warnings that would come once per request (every request answered 503 while the session store is
 * down) are counted, not written one by one: under load, a line each floods the log (and the disk,
 * and the log shipper) for as long as the outage lasts, burying the lines that say what happened. A
 * summary writes one line per SUMMARY_INTERVAL_MS while there were any, with the count and the first
 * one's details; the outage itself is logged once when it starts and once when it ends, by the store.
 *
 * What is counted but not yet written goes out with flushLogSummaries(logger): the Redis store calls
 * it when Redis is back (so an outage's count comes before its recovery line) and when it closes (the
 * last step of the shutdown, and of every test app), and exitAfterLogs() before the process exits.
 * The interval's timer never holds the process open.
 */
import type { Logger } from './logger.ts';

/** At most one summary line per this interval while the warning keeps coming. */
export const SUMMARY_INTERVAL_MS = 10_000;

export interface LogSummary {
  /** Counts one occurrence; the details of the first one in an interval go into its line. */
  add(details: Record<string, unknown>): void;
  /** Writes the line for what was counted since the last one, if anything. */
  flush(): void;
}

/** The summaries writing to each logger, so that one call flushes them all. */
const summariesOf = new WeakMap<Logger, Set<LogSummary>>();

/** A summarized warning on `logger`; `message` words the line for a count. */
export function summarizedWarning(logger: Logger, message: (count: number) => string): LogSummary {
  let count = 0;
  let first: Record<string, unknown> = {};
  let timer: NodeJS.Timeout | undefined;
  const summary: LogSummary = {
    add(details) {
      if (count === 0) first = details;
      count++;
      timer ??= setTimeout(() => summary.flush(), SUMMARY_INTERVAL_MS).unref();
    },
    flush() {
      clearTimeout(timer);
      timer = undefined;
      if (count === 0) return;
      logger.warn({ count, first }, message(count));
      count = 0;
      first = {};
    },
  };
  let summaries = summariesOf.get(logger);
  if (summaries === undefined) {
    summaries = new Set();
    summariesOf.set(logger, summaries);
  }
  summaries.add(summary);
  return summary;
}

/** Writes every summary of `logger` that has something counted, at once. */
export function flushLogSummaries(logger: Logger): void {
  for (const summary of summariesOf.get(logger) ?? []) summary.flush();
}

/**
 * Real time on a shared, loaded machine. A check that something has expired only ever comes later
 * than planned, which keeps it true. A check that something is still alive can come too late: beside
 * a second `npm test` on 2 cores, a request was seen to take more than 2 s. Such a check is only
 * conclusive when the time from just before the call that started (or renewed) the lifetime to the
 * check's answer stayed under that lifetime; LifetimeWatch measures it, and `untilConclusive` runs a
 * case again when a stall made an attempt prove nothing either way. Code that ends a lifetime early
 * fails every attempt that was on time.
 */
import type { ExecutionContext } from 'ava';

export class LifetimeWatch {
  stalled: string | undefined;
  #since = 0;

  /** Just before the call that starts or renews the lifetime the next check relies on. */
  start(at = performance.now()): void {
    this.#since = at;
  }

  /** Just after the check answered: was it within `lifetimeMs` of start()? */
  checked(lifetimeMs: number, what: string): void {
    const elapsed = performance.now() - this.#since;
    if (elapsed >= lifetimeMs)
      this.stalled ??= `${what} answered ${Math.round(elapsed)} ms after its lifetime began (${lifetimeMs} ms)`;
  }
}

/**
 * Runs `attempt` (with an execution context of its own) until no check in it was inconclusive, at
 * most `attempts` times; the last attempt counts whatever happened. An attempt opens and closes what it
 * needs itself (a fresh app, a fresh store), so a discarded one leaves nothing behind.
 */
export async function untilConclusive(
  t: ExecutionContext,
  attempt: (tt: ExecutionContext, watch: LifetimeWatch) => Promise<void>,
  attempts = 3,
): Promise<void> {
  for (let number = 1; ; number++) {
    const watch = new LifetimeWatch();
    const result = await t.try((tt) => attempt(tt, watch));
    if (watch.stalled === undefined || number === attempts) {
      result.commit();
      return;
    }
    t.log(`attempt ${number} inconclusive: ${watch.stalled}; running it again`);
    result.discard();
  }
}

/** How often OwnDelay's timer asks to run. */
const PROBE_MS = 10;

/**
 * How long this process could not run while something was pending: the sum of its timers' lateness
 * (a probe due every PROBE_MS). On a loaded machine a deadline that fired on time by its own clock can
 * still be seen seconds late here; a bound on how long a call may take adds this, so it measures the
 * code, not the machine. A call that never ends still fails any bound.
 */
export class OwnDelay {
  #late = 0;
  #due = performance.now() + PROBE_MS;
  readonly #probe = setInterval(() => {
    const now = performance.now();
    if (now > this.#due) this.#late += now - this.#due;
    this.#due = now + PROBE_MS;
  }, PROBE_MS);

  /** Stops measuring; the delay in ms. */
  stop(): number {
    clearInterval(this.#probe);
    const now = performance.now();
    if (now > this.#due) this.#late += now - this.#due;
    return this.#late;
  }
}

/**
 * The soak: mixed traffic against the real server process (the template's start-up with the soak's
 * routes: server.ts) for a set time, with the store held at its cap, checking every answer. Used by
 * `npm run soak` (long, with figures) and `npm run soak -- --check` (about 20 seconds, correctness only).
 *
 * Traffic mix per request: new sessions, reads, writes, deletes, and bad cookies. Each simulated user
 * remembers what it last stored, so a read is wrong unless it shows exactly that or `{}` (a session
 * may legitimately be gone: evicted at the cap, or expired). /healthz is sampled every second for the
 * session count, heap, RSS and event-loop delay.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type ServerProcess, startServerProcess } from '../../test/helpers/process.ts';

export interface SoakOptions {
  readonly durationMs: number;
  readonly store: 'memory' | 'redis';
  /** SESSION_MAX_ENTRIES; the run first fills the store to it. */
  readonly cap: number;
  /** SESSION_MAX_AGE, short enough that sessions expire and are swept during the run. */
  readonly maxAge: string;
  readonly concurrency: number;
  readonly env?: Record<string, string>;
  readonly onSample?: (sample: Sample) => void;
}

export interface Sample {
  readonly atMs: number;
  readonly phase: 'fill' | 'mixed';
  readonly requests: number;
  readonly sessions: number | undefined;
  readonly heapUsedBytes: number;
  readonly rssBytes: number;
  readonly eventLoopDelayP99Ms: number;
}

export interface SoakResult {
  readonly requests: number;
  readonly errors: number;
  readonly wrongAnswers: number;
  readonly problems: readonly string[];
  readonly samples: readonly Sample[];
  readonly fillMs: number;
  /** The store's session count (from /healthz) as soon as the fill phase ended. */
  readonly sessionsAfterFill: number | undefined;
  readonly serverExitCode: number | string;
}

interface User {
  cookie: string | undefined;
  /** What /get must show: the stored time, or undefined for "no session". */
  time: number | undefined;
}

const SOAK_SERVER = fileURLToPath(new URL('./server.ts', import.meta.url));

const BAD_COOKIES = [
  'sid=garbage',
  'sid=__proto__',
  'sid=constructor.1.x',
  `sid=${'A'.repeat(21)}.tp4dkx.${'B'.repeat(43)}`,
  'sid=',
  `sid=${'x'.repeat(4000)}`,
];

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const server = await startServerProcess(
    {
      SESSION_KEYS: 'soak-signing-key-0123456789abcdefghijklmnop',
      LOG_LEVEL: 'warn',
      SESSION_STORE: options.store,
      SESSION_MAX_ENTRIES: String(options.cap),
      SESSION_MAX_AGE: options.maxAge,
      ...options.env,
    },
    { script: SOAK_SERVER },
  );
  // Whatever happens from here on (a bug in the soak itself included), sampling stops, and the server
  // is stopped and its temp folder removed before this returns or throws: SIGKILL if it is still running.
  const stop = new AbortController();
  try {
    return await soakAgainst(server, options, stop.signal);
  } finally {
    stop.abort();
    if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
    await server.exited;
  }
}

async function soakAgainst(
  server: ServerProcess & { url: string },
  options: SoakOptions,
  aborted: AbortSignal,
): Promise<SoakResult> {
  const base = server.url;
  const started = Date.now();
  const problems: string[] = [];
  const samples: Sample[] = [];
  let requests = 0;
  let errors = 0;
  let wrongAnswers = 0;
  let phase: Sample['phase'] = 'fill';
  const note = (problem: string) => {
    if (problems.length < 20) problems.push(problem);
  };

  async function call(
    path: string,
    cookie?: string,
  ): Promise<{ status: number; body: string; setCookie: string | undefined }> {
    requests++;
    const response = await fetch(base + path, { headers: cookie ? { cookie } : {} });
    const body = await response.text();
    const setCookie = response.headers.getSetCookie()[0];
    if (response.status !== 200) {
      errors++;
      note(`${path} answered ${response.status}: ${body.slice(0, 100)}`);
    }
    return { status: response.status, body, setCookie };
  }

  const samplingDone = new AbortController();
  const stopSampling = AbortSignal.any([aborted, samplingDone.signal]);
  const sampler = (async () => {
    // One sample a second on a fixed cadence: a slow answer does not push the later samples back.
    for (let next = Date.now() + 1_000; !stopSampling.aborted; next += 1_000) {
      try {
        const health = (await (await fetch(`${base}/healthz`)).json()) as {
          store: { sessions?: number };
          process: { heapUsedBytes: number; rssBytes: number; eventLoopDelayP99Ms: number };
        };
        const sample: Sample = {
          atMs: Date.now() - started,
          phase,
          requests,
          sessions: health.store.sessions,
          ...health.process,
        };
        samples.push(sample);
        options.onSample?.(sample);
      } catch (error) {
        note(`healthz failed: ${String(error)}`);
      }
      await sleep(Math.max(0, next - Date.now()), undefined, { signal: stopSampling }).catch(() => {});
    }
  })();

  // Phase 1: fill the store to its cap with sessions nobody will use again.
  let filled = 0;
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (filled < options.cap && Date.now() - started < options.durationMs) {
        filled++;
        const reply = await call('/set').catch((error: unknown) => {
          errors++;
          note(`fill: ${String(error)}`);
          return undefined;
        });
        if (reply && (reply.body !== 'ok' || !reply.setCookie))
          wrong(`fill /set answered ${JSON.stringify(reply.body)} without a cookie`);
      }
    }),
  );
  const fillMs = Date.now() - started;
  // The store's size the moment the fill ends, not at the next sample (by which sessions may have expired).
  const sessionsAfterFill = await fetch(`${base}/healthz`)
    .then(async (response) => ((await response.json()) as { store: { sessions?: number } }).store.sessions)
    .catch((error: unknown) => {
      note(`healthz after the fill failed: ${String(error)}`);
      return undefined;
    });
  phase = 'mixed';

  function wrong(problem: string) {
    wrongAnswers++;
    note(problem);
  }

  const cookieOf = (setCookie: string | undefined) => setCookie?.split(';')[0];
  async function act(user: User): Promise<void> {
    const roll = Math.random();
    if (roll < 0.3 || user.cookie === undefined) {
      // A new session.
      const before = Math.floor(Date.now() / 1000);
      const reply = await call('/set');
      const cookie = cookieOf(reply.setCookie);
      if (reply.body !== 'ok' || !cookie) return wrong(`new /set: ${reply.body} ${reply.setCookie}`);
      user.cookie = cookie;
      user.time = before; // refined by the next read
      const read = await call('/get', cookie);
      const shown = JSON.parse(read.body) as { time?: number };
      if (shown.time === undefined)
        user.time = undefined; // evicted already (store at its cap)
      else if (shown.time < before || shown.time > Math.floor(Date.now() / 1000))
        return wrong(`new session shows ${read.body}`);
      else user.time = shown.time;
    } else if (roll < 0.65) {
      const read = await call('/get', user.cookie);
      const shown = JSON.parse(read.body) as { time?: number };
      if (shown.time === undefined)
        user.time = undefined; // expired or evicted: allowed
      else if (shown.time !== user.time)
        return wrong(`/get showed ${read.body}, expected ${JSON.stringify({ time: user.time })}`);
    } else if (roll < 0.8) {
      const before = Math.floor(Date.now() / 1000);
      const reply = await call('/set', user.cookie);
      const after = Math.floor(Date.now() / 1000);
      if (reply.body !== 'ok') return wrong(`/set answered ${reply.body}`);
      if (reply.setCookie) user.cookie = cookieOf(reply.setCookie); // the old session was gone: a new one
      const shown = JSON.parse((await call('/get', user.cookie)).body) as { time?: number };
      if (shown.time !== undefined && (shown.time < before || shown.time > after))
        return wrong(`after /set, /get showed ${shown.time}`);
      user.time = shown.time;
    } else if (roll < 0.9) {
      const reply = await call('/del', user.cookie);
      if (reply.body !== 'ok') return wrong(`/del answered ${reply.body}`);
      const read = await call('/get', user.cookie);
      if (read.body !== '{}') return wrong(`after /del, /get showed ${read.body}`);
      user.cookie = undefined;
      user.time = undefined;
    } else {
      const bad = BAD_COOKIES[Math.floor(Math.random() * BAD_COOKIES.length)];
      const read = await call('/get', bad);
      if (read.body !== '{}') wrong(`a bad cookie read ${read.body}`);
    }
  }

  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      const user: User = { cookie: undefined, time: undefined };
      while (Date.now() - started < options.durationMs) {
        await act(user).catch((error: unknown) => {
          errors++;
          note(`request failed: ${String(error)}`);
        });
      }
    }),
  );

  samplingDone.abort();
  await sampler;
  server.child.kill('SIGTERM');
  const serverExitCode = await server.exited;
  if (server.stderr()) note(`server stderr: ${server.stderr().slice(0, 300)}`);
  return { requests, errors, wrongAnswers, problems, samples, fillMs, sessionsAfterFill, serverExitCode };
}

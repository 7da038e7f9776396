/**
 * Runs a server entry as a child process, the way `npm start` does, in an empty working directory so
 * that a developer's own .env never leaks in: test/helpers/test-server.ts by default (app/main.ts's
 * start-up with the test routes), app/main.ts itself (APP_ENTRY), or another script.
 * One addition: a preload (report-listening.js) that tells the test, on file descriptor 3, which
 * address the process listens on, so that readiness never depends on log levels or guessed ports.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What `npm start` runs: app/main.ts, with the routes app/routes.ts mounts. */
export const APP_ENTRY = fileURLToPath(new URL('../../app/main.ts', import.meta.url));
/** The same start-up with the test routes (test/helpers/routes.ts): what process-level tests run by default. */
export const TEST_SERVER_ENTRY = fileURLToPath(new URL('./test-server.ts', import.meta.url));
/** What `npm start` passes to --import: tsx on Node 20, nothing on Node 22.18+ (see app/load-typescript.js). */
const LOAD_TYPESCRIPT = new URL('../../app/load-typescript.js', import.meta.url).href;
/** Reports each address the child listens on, on file descriptor 3 (see the file). */
const REPORT_LISTENING = new URL('./report-listening.js', import.meta.url).href;

/** An address the child process reported listening on. */
export interface ListeningAddress {
  readonly address: string;
  readonly port: number;
}

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** The addresses the process has reported listening on so far (by itself, through report-listening.js). */
  readonly listening: () => readonly ListeningAddress[];
  /** Everything report-listening.js has reported so far, parsed. */
  readonly reports: () => ReadonlyArray<Record<string, unknown>>;
  /** Resolves with the exit code (or the signal name) when the process has ended and its output is all read. */
  readonly exited: Promise<number | string>;
}

/**
 * Every child spawned here that has not exited, with its temp folder: killed, and the folder removed,
 * if the test worker exits first (a failed or timed-out test).
 */
const liveChildren = new Map<ChildProcess, string>();
process.once('exit', () => {
  for (const [child, cwd] of liveChildren) {
    child.kill('SIGKILL');
    rmSync(cwd, { recursive: true, force: true });
  }
});

/**
 * Only what a server needs from the parent environment, plus the test's own settings. No shutdown
 * drain unless a test asks for one (test/server.test.ts does): there is no load balancer to wait for.
 * A setting given as undefined is not set at all (NODE_ENV, say, to leave it to a .env file).
 */
function environment(env: Record<string, string | undefined>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'development', SHUTDOWN_DRAIN: '0', ...env };
}

export interface SpawnOptions {
  /** Written as a .env file in the server's working directory. */
  readonly dotEnv?: string;
  /** Make .env in the server's working directory a folder: a .env that cannot be read. */
  readonly dotEnvFolder?: boolean;
  /** Another server script (APP_ENTRY, a benchmark baseline) and its arguments; TEST_SERVER_ENTRY by default. */
  readonly script?: string;
  readonly args?: readonly string[];
  /** Options for Node itself (the profiler's --cpu-prof: not allowed in NODE_OPTIONS). */
  readonly nodeArgs?: readonly string[];
}

/** Runs TEST_SERVER_ENTRY (or options.script) as `npm start` runs app/main.ts: type stripping, or tsx on Node 20. */
export function spawnServer(env: Record<string, string | undefined>, options: SpawnOptions = {}): ServerProcess {
  const cwd = mkdtempSync(join(tmpdir(), 'koa-session-test-'));
  if (options.dotEnv !== undefined) writeFileSync(join(cwd, '.env'), options.dotEnv);
  if (options.dotEnvFolder) mkdirSync(join(cwd, '.env'));
  const child = spawn(
    process.execPath,
    [
      ...(options.nodeArgs ?? []),
      '--disable-warning=ExperimentalWarning',
      '--import',
      LOAD_TYPESCRIPT,
      '--import',
      REPORT_LISTENING,
      options.script ?? TEST_SERVER_ENTRY,
      ...(options.args ?? []),
    ],
    {
      cwd,
      env: environment(env),
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  let reports = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  (child.stdio[3] as NodeJS.ReadableStream).setEncoding('utf8').on('data', (chunk: string) => (reports += chunk));
  const parsedReports = () =>
    reports
      .split('\n')
      .slice(0, -1) // whole lines only
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  const listening = () =>
    parsedReports().filter(
      (report): report is Record<string, unknown> & ListeningAddress => typeof report.port === 'number',
    );
  liveChildren.set(child, cwd);
  // 'close', not 'exit': 'exit' can come before the last output has been read from the pipes.
  const exited = once(child, 'close').then(([code, signal]) => {
    liveChildren.delete(child);
    rmSync(cwd, { recursive: true, force: true });
    return (code ?? signal) as number | string;
  });
  return { child, stdout: () => stdout, stderr: () => stderr, listening, reports: parsedReports, exited };
}

/**
 * At most this many server processes start at once in one test worker. Start-up (loading and
 * compiling the TypeScript) is the CPU-heavy part: a 2-core machine starting 40 at once, as the
 * configuration tests would, misses every deadline of every other test running beside them.
 */
const MAX_STARTING_AT_ONCE = 3;
let starting = 0;
const waitingToStart: Array<() => void> = [];

async function startSlot(): Promise<() => void> {
  if (starting >= MAX_STARTING_AT_ONCE) await new Promise<void>((resolve) => waitingToStart.push(resolve));
  starting++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    starting--;
    waitingToStart.shift()?.();
  };
}

/**
 * Runs a server that is expected to exit by itself (a bad setting), within a start slot, and
 * resolves once it has; one still running after `timeoutMs` is killed and the call fails.
 */
export async function runToExit(
  env: Record<string, string | undefined>,
  options: SpawnOptions = {},
  timeoutMs = 20_000,
): Promise<ServerProcess & { code: number | string }> {
  const release = await startSlot();
  try {
    const server = spawnServer(env, options);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const code = await Promise.race([server.exited, timedOut]);
    clearTimeout(timer);
    if (code === 'timeout') {
      server.child.kill('SIGKILL');
      await server.exited;
      throw new Error(
        `the server was still running after ${timeoutMs} ms: ${server.stderr()}${server.stdout().slice(-2_000)}`,
      );
    }
    return { ...server, code };
  } finally {
    release();
  }
}

/**
 * A port that was free a moment ago: another process may take it before the caller binds it, so a
 * caller must notice when its own server could not listen there (and try another port). Servers
 * started here never need one: they listen on port 0 and report the port the kernel gave them.
 */
export async function freePort(): Promise<number> {
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/**
 * Starts the server and waits until it is ready: until the process itself reports its listener bound
 * (report-listening.js), whatever its LOG_LEVEL; on port 0 unless env.PORT says otherwise, so no port
 * is guessed and no other process's server can be mistaken for this one. Bounded: a server that exits
 * first, or has not listened within 20 s, fails the call (and is killed). Returns its base URL.
 */
export async function startServerProcess(
  env: Record<string, string>,
  options: SpawnOptions = {},
): Promise<ServerProcess & { url: string }> {
  const release = await startSlot();
  try {
    return await startWhenReady(env, options);
  } finally {
    release();
  }
}

async function startWhenReady(
  env: Record<string, string>,
  options: SpawnOptions,
): Promise<ServerProcess & { url: string }> {
  const timeoutMs = 20_000;
  // At info and debug the server also prints its "listening" line: wait for it too, so a test that
  // reads the start-up output finds the line there (logs are written in batches, a moment later).
  const announces = env.LOG_LEVEL === undefined || ['debug', 'info'].includes(env.LOG_LEVEL);
  const server = spawnServer({ ...env, PORT: env.PORT ?? '0' }, options);
  let exit: number | string | undefined;
  void server.exited.then((code) => (exit = code));
  try {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (exit !== undefined)
        throw new Error(`server exited (${exit}) before listening: ${server.stderr()}${server.stdout()}`);
      const [bound] = server.listening();
      if (bound !== undefined) {
        const url = urlOf(bound);
        const announced = /"url":"(http:\/\/[^"]+)"/.exec(server.stdout())?.[1];
        if (announced !== undefined && new URL(announced).port !== String(bound.port)) {
          throw new Error(`server reported listening at ${url} but announced ${announced}`);
        }
        if (!announces || announced !== undefined) return { ...server, url };
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error(`server did not start within ${timeoutMs} ms: ${server.stderr()}${server.stdout()}`);
  } catch (error) {
    // Whatever went wrong, nothing is left running: the process is killed and its temp folder removed.
    if (exit === undefined) server.child.kill('SIGKILL');
    await server.exited;
    throw error;
  }
}

/** The URL to reach a listener at: a wildcard address is reached on loopback. */
function urlOf({ address, port }: ListeningAddress): string {
  const host =
    address === '0.0.0.0' || address === '::' ? '127.0.0.1' : address.includes(':') ? `[${address}]` : address;
  return `http://${host}:${port}`;
}

/** Kills the server with SIGKILL when the test ends, passed or failed (a no-op once it has exited). */
export function killOnTeardown(t: { teardown(fn: () => unknown): void }, server: ServerProcess): void {
  t.teardown(async () => {
    if (server.child.exitCode !== null || server.child.signalCode !== null) return;
    server.child.kill('SIGKILL');
    await server.exited;
  });
}

/** The parsed JSON log lines the server has written to stdout so far (other lines are skipped). */
export function logLines(server: ServerProcess): Array<Record<string, unknown>> {
  const lines: Array<Record<string, unknown>> = [];
  for (const line of server.stdout().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line still being written
    }
  }
  return lines;
}

/** Waits until the server's stdout matches `pattern`; rejects if it exits first or `timeoutMs` passes. */
export async function waitForOutput(server: ServerProcess, pattern: RegExp, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited: number | string | undefined;
  void server.exited.then((code) => (exited = code));
  while (!pattern.test(server.stdout())) {
    if (exited !== undefined)
      throw new Error(
        `server exited (${exited}) before printing ${pattern}: ${server.stderr()}${server.stdout().slice(-2_000)}`,
      );
    if (Date.now() > deadline)
      throw new Error(
        `server did not print ${pattern} within ${timeoutMs} ms: ${server.stderr()}${server.stdout().slice(-2_000)}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

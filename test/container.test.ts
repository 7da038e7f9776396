/**
 * The container without Docker (no image registry is reachable here, so the image cannot be built):
 * what the Dockerfile copies (see .dockerignore) goes into a temp folder, `npm ci --omit=dev` installs
 * production dependencies only, and the Dockerfile's own CMD and HEALTHCHECK run there under Node 24
 * (this machine's Node when it is 22.18 or newer, else Node 24 from the npm registry), with its ENV.
 * The CMD is checked for what holds whatever routes app/routes.ts mounts; sessions are checked with the
 * test routes' entry (test/helpers/test-server.ts) run the same way in the same install.
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { TEST_KEY } from './helpers/app.ts';
import { Browser } from './helpers/browser.ts';

const run = promisify(execFile);
const root = new URL('../', import.meta.url);
const dockerfile = readFileSync(new URL('Dockerfile', root), 'utf8');

/** The JSON array of a Dockerfile instruction in exec form (CMD, or HEALTHCHECK's CMD). */
function execForm(pattern: RegExp): string[] {
  const match = pattern.exec(dockerfile.replace(/\\\n\s*/g, ' '));
  if (match === null) throw new Error(`no ${pattern} in the Dockerfile`);
  return JSON.parse(match[1]) as string[];
}

/** The ENV the Dockerfile sets. */
function dockerfileEnv(): Record<string, string> {
  const block = /^ENV (.+?)$/ms.exec(dockerfile.replace(/\\\n\s*/g, ' '));
  return Object.fromEntries([...(block?.[1] ?? '').matchAll(/([A-Z_]+)=(\S+)/g)].map((match) => [match[1], match[2]]));
}

/** Node 24's binary: this one when it strips types itself, else the npm registry's node@24 package. */
async function node24(): Promise<string> {
  if ((process.features as { typescript?: string }).typescript && process.versions.node.startsWith('24.'))
    return process.execPath;
  const { stdout } = await run('npm', ['exec', '--yes', '--package=node@24', '--', 'node', '-p', 'process.execPath'], {
    timeout: 120_000,
  });
  return stdout.trim();
}

/** A server started in the image's folder with `node <args>`, once it has printed its "listening on" line. */
async function startInImage(t: ExecutionContext, node: string, args: string[], cwd: string, env: NodeJS.ProcessEnv) {
  const server = spawn(node, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => server.kill('SIGKILL'));
  let output = '';
  server.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  server.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = once(server, 'close').then(([code]) => code as number | null);
  const deadline = Date.now() + 20_000;
  while (!output.includes('listening on') && server.exitCode === null && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 50));
  const port = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(output)?.[1];
  return { server, port, output: () => output, exited };
}

test('the Dockerfile: production-only install, its CMD under Node 24 answers /healthz, its HEALTHCHECK passes, SIGTERM exits 0; sessions work in that install', async (t) => {
  const app = mkdtempSync(join(tmpdir(), 'koa-session-test-image-'));
  t.teardown(() => rmSync(app, { recursive: true, force: true }));
  for (const path of ['package.json', 'package-lock.json', 'app', 'config'])
    cpSync(new URL(path, root), join(app, path), { recursive: true });
  await run('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: app, timeout: 180_000 });
  t.false(existsSync(join(app, 'node_modules', 'tsx')), 'no TypeScript loader installed');
  t.false(existsSync(join(app, 'node_modules', 'typescript')), 'no development dependency installed');

  const node = await node24();
  const [command, ...args] = execForm(/^CMD (\[.*\])$/m);
  t.deepEqual([command, ...args], ['node', 'app/main.ts'], 'CMD in exec form, node itself');
  const env = dockerfileEnv();
  t.like(env, { NODE_ENV: 'production', HOST: '0.0.0.0' });
  // Loopback only here (a test never listens beyond this machine), and port 0: the kernel picks a
  // free port, which the server's own "listening on" line names (no port guessed beforehand that
  // another process could take); the rest as the image sets it.
  const childEnv = {
    ...env,
    HOST: '127.0.0.1',
    PORT: '0',
    SESSION_KEYS: TEST_KEY,
    SHUTDOWN_DRAIN: '200ms',
    PATH: process.env.PATH,
  };
  // The CMD itself, with whatever routes app/routes.ts mounts: only what holds for any of them.
  const image = await startInImage(t, node, args, app, childEnv);
  t.truthy(image.port, image.output());
  t.notRegex(image.output(), /ExperimentalWarning|tsx/, 'Node runs the TypeScript itself, without a warning');
  const health = await new Browser(`http://127.0.0.1:${image.port}`).request('/healthz');
  t.is(health.status, 200);
  t.like(JSON.parse(health.body), { status: 'ok', store: { kind: 'memory', ok: true } });

  const [healthCommand, ...healthArgs] = execForm(/HEALTHCHECK .*?CMD (\[.*\])\s*$/m);
  t.is(healthCommand, 'node');
  const healthcheck = await run(node, healthArgs, { env: { ...childEnv, PORT: image.port! } }).then(
    () => 0,
    (error: { code?: number }) => error.code ?? 1,
  );
  t.is(healthcheck, 0, 'HEALTHCHECK passes');

  image.server.kill('SIGTERM');
  t.is(await image.exited, 0, image.output());

  // Sessions in that install (production dependencies only, Node's own type stripping): the CMD with
  // the test routes' entry in place of app/main.ts, copied beside it (it is not in the image).
  cpSync(new URL('test/helpers/routes.ts', root), join(app, 'test/helpers/routes.ts'));
  cpSync(new URL('test/helpers/test-server.ts', root), join(app, 'test/helpers/test-server.ts'));
  const withTestRoutes = await startInImage(
    t,
    node,
    args.map((arg) => (arg === 'app/main.ts' ? 'test/helpers/test-server.ts' : arg)),
    app,
    childEnv,
  );
  t.truthy(withTestRoutes.port, withTestRoutes.output());
  const browser = new Browser(`http://127.0.0.1:${withTestRoutes.port}`);
  t.is((await browser.request('/write?value=in the image')).body, 'ok');
  t.deepEqual(await browser.json('/read'), { value: 'in the image' });
  withTestRoutes.server.kill('SIGTERM');
  t.is(await withTestRoutes.exited, 0, withTestRoutes.output());
});

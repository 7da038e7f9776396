/**
 * The test command of `npm run mutate` (see stryker.config.mjs). Stryker's command runner starts it
 * in its sandbox (a copy of the project whose mutated files hold every mutant, switched on by the id
 * in __STRYKER_ACTIVE_MUTANT__), once with no mutant active (the dry run: every test below must pass)
 * and once per mutant. Exit code 0 means the tests passed: the mutant survived.
 *
 * The command runner knows nothing of which tests reach which code, so this script tells it: it finds
 * the file the active mutant is in (its id appears in that file's instrumented code) and runs only the
 * fast in-process tests for that file (TESTS below), pointed ones first, with --fail-fast. The dry run
 * runs them all.
 * Left out: test files and tests that start server processes or Chromium or wait for seconds (the
 * command would take minutes per mutant). A mutant that only they would kill counts as a survivor
 * here (see survivors.md), never the other way round.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

/**
 * One ava run: test files, optionally only the tests whose titles match (ava --match), and whether
 * the Redis variants run (REDIS_URL; else they are skipped, as without Redis).
 */
const ava = (files, { match = [], redis = false } = {}) => ({ files, match, redis });

/** config.test.ts mostly starts real server processes (a minute in all): only its in-process tests. */
const CONFIG_IN_PROCESS = ava(['test/config.test.ts'], {
  match: ['!start-up stops*', '!a .env file in the working directory*', '!the server prints*'],
});
const CONFIG = [ava(['test/config-edges.test.ts']), CONFIG_IN_PROCESS, ava(['test/docs.test.ts'])];

/**
 * The runs for each mutated file, in order; the first that fails ends the command. The quickest,
 * most pointed tests come first: most mutants are killed there, and only survivors pay for the rest.
 * The session layer is tested over real HTTP with the memory store (the Redis variants of these files
 * test the store, not this layer). Keep in step with `mutate` in stryker.config.mjs.
 */
const TESTS = {
  'app/session/cross-site.ts': [ava(['test/cross-site.test.ts', 'test/session-edges.test.ts'])],
  'app/session/middleware.ts': [
    ava(['test/session-edges.test.ts', 'test/cookies.test.ts']),
    ava(['test/cross-site.test.ts', 'test/logout.test.ts', 'test/sessions.test.ts', 'test/stored-data.test.ts']),
  ],
  'app/session/request-store.ts': [
    ava(['test/session-edges.test.ts', 'test/logout.test.ts']),
    ava(['test/cookies.test.ts', 'test/cross-site.test.ts', 'test/sessions.test.ts', 'test/stored-data.test.ts']),
  ],
  'app/session/signed-cookie.ts': [ava(['test/session-edges.test.ts']), ava(['test/cookies.test.ts'])],
  'app/session/stored-session.ts': [ava(['test/session-edges.test.ts']), ava(['test/stored-data.test.ts'])],
  'app/stores/index.ts': [ava(['test/memory-store-edges.test.ts'], { redis: true }), ava(['test/cross-site.test.ts'])],
  'app/stores/memory.ts': [
    ava(['test/memory-store-edges.test.ts', 'test/memory-store.test.ts']),
    ava(['test/store-model.test.ts', 'test/store-contract.test.ts']),
  ],
  'app/stores/store.ts': [ava(['test/memory-store-edges.test.ts'])],
  'config/environment.ts': CONFIG,
  'config/index.ts': CONFIG,
  'config/parsers.ts': CONFIG,
};

/** Every test above, in as few runs as their options allow: the dry run. */
function everyTest() {
  const runs = new Map();
  for (const run of Object.values(TESTS).flat()) {
    const key = JSON.stringify([run.match, run.redis]);
    const files = runs.get(key)?.files ?? [];
    runs.set(key, { ...run, files: [...new Set([...files, ...run.files])] });
  }
  return [...runs.values()];
}

const mutant = process.env.__STRYKER_ACTIVE_MUTANT__;
let runs = everyTest();
if (mutant !== undefined) {
  const marker = `stryMutAct_9fa48("${mutant}")`;
  const source = Object.keys(TESTS).find((file) => readFileSync(file, 'utf8').includes(marker));
  // A mutant in a file missing from TESTS gets every test (slow, but never a false kill).
  if (source === undefined) console.error(`run-tests.mjs: mutant ${mutant} is in no file of TESTS; running every test`);
  else runs = TESTS[source];
}

for (const { files, match, redis } of runs) {
  const todo = files.filter((file) => existsSync(file));
  if (todo.length === 0) continue;
  const result = spawnSync(
    process.execPath,
    // --timeout: a mutant that loops forever (a list walk that never ends) fails here after 20 s
    // without a finished test, instead of holding a runner until Stryker's own, longer timeout.
    [
      'node_modules/ava/entrypoints/cli.mjs',
      '--fail-fast',
      '--timeout=20s',
      ...match.flatMap((title) => ['--match', title]),
      ...todo,
    ],
    {
      stdio: 'inherit',
      env: { ...process.env, REDIS_URL: redis ? process.env.REDIS_URL || 'redis://127.0.0.1:6379/14' : '' },
    },
  );
  if (result.status !== 0) process.exit(result.status ?? 1);
}

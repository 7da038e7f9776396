// @ts-check
/**
 * Mutation testing (StrykerJS): `npm run mutate`, which passes this file to Stryker (run from the
 * project's root: the paths below are the root's). Not part of `npm test`. See docs/mutation-testing.md;
 * the survivors that cannot matter are listed in survivors.md beside this file.
 */
import { fileURLToPath } from 'node:url';

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  // app/stores/redis.ts is left out: what its mutants change (deadlines, reconnection with backoff,
  // the bound on calls in flight) only shows against a Redis that is killed or paused, which takes the
  // outage tests of test/redis.test.ts (own redis-server, SIGSTOP) 6 s and more per mutant, and a mutant
  // that breaks a deadline hangs until the timeout: about 200 mutants, some 20 minutes more. npm test
  // holds it to those tests. See tools/mutation/survivors.md.
  mutate: ['app/session/**/*.ts', 'app/stores/**/*.ts', '!app/stores/redis.ts', 'config/**/*.ts'],
  // No Stryker runner plugin exists for ava: the command runner runs tools/mutation/run-tests.mjs per
  // mutant, which picks the fast test files for the mutated file.
  testRunner: 'command',
  commandRunner: { command: 'node tools/mutation/run-tests.mjs' },
  // Mutants that do not type-check are dropped before any test runs (TypeScript 7, see typescript-7.mjs).
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.json',
  typescriptChecker: { experimentalNativePreview: true },
  checkerNodeArgs: ['--import', fileURLToPath(new URL('./typescript-7.mjs', import.meta.url))],
  // Two cores: one type-checker process (busy only at the start) and two test commands at once.
  concurrency: 3,
  // A backstop, generous for a shared machine: 1.5 × the dry run (which runs every test, 16-40 s)
  // + 30 s. A mutant that loops forever (a list walk that never ends) is normally stopped sooner by
  // ava's own --timeout=20s in run-tests.mjs (a failed run: Killed); this only catches a command that
  // hangs outside a test.
  timeoutFactor: 1.5,
  timeoutMS: 30_000,
  ignorePatterns: ['coverage', 'reports', 'jar', '.env'],
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  clearTextReporter: { allowColor: false, logTests: false, reportMutants: true, reportScoreTable: true },
  // Not incremental: the command runner names no test files, so Stryker would take a survivor's result
  // as still valid after a test is added ("no test changed"). To work on one file: --mutate <file>.
  incremental: false,
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
};

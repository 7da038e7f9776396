/**
 * Lets @stryker-mutator/typescript-checker type-check mutants with this project's TypeScript 7.
 * Loaded into Stryker's own process (`npm run mutate`: node --import) and its checker processes
 * (checkerNodeArgs in stryker.config.mjs); never into the tests.
 *
 * The checker's TypeScript 7 mode ("experimentalNativePreview") wants TypeScript 7 under the name
 * `@typescript/native` and still imports a few helpers from the classic `typescript` package (v6 or
 * older), whereas this project's `typescript` is 7 (no JS compiler API) and npm cannot give the checker
 * a `typescript` of its own (it is a peer dependency); Stryker's core also reads tsconfig.json through
 * the classic API. So, in those processes only:
 * - `@typescript/native/...` resolves to the project's own `typescript/...` (7, the compiler `npm run
 *   typecheck` uses);
 * - `typescript` imported from a @stryker-mutator package resolves to typescript-7-helpers.mjs, the
 *   few classic helpers they call in this mode (reading tsconfig.json).
 */
import { register } from 'node:module';

register('./typescript-7-hooks.mjs', import.meta.url);

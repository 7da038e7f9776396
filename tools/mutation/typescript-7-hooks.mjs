/** Module resolution hooks for typescript-7.mjs (they run on Node's hooks thread). */
import { pathToFileURL } from 'node:url';

const projectRoot = pathToFileURL(`${process.cwd()}/package.json`).href;
const helpers = new URL('./typescript-7-helpers.mjs', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  if (specifier.startsWith('@typescript/native/')) {
    return nextResolve(specifier.replace('@typescript/native/', 'typescript/'), { ...context, parentURL: projectRoot });
  }
  if (specifier === 'typescript' && context.parentURL?.includes('/node_modules/@stryker-mutator/')) {
    return { url: helpers, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}

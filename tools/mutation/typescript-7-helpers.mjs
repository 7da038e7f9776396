/**
 * The classic `typescript` API calls that @stryker-mutator/typescript-checker makes in its TypeScript 7
 * mode, for a tsconfig.json without project references (see typescript-7.mjs). Anything else it would
 * call belongs to its TypeScript ≤6 mode, which this project cannot use, and fails loudly.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const { version } = createRequire(`${process.cwd()}/package.json`)('typescript/package.json');

/** JSON with comments and trailing commas, as tsconfig.json allows: both removed outside strings. */
function parseJsonc(text) {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === '"') {
      const end = /"(?:[^"\\]|\\.)*"/y;
      end.lastIndex = i;
      const string = end.exec(text)?.[0] ?? text.slice(i);
      out += string;
      i += string.length - 1;
    } else if (char === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else if (char === '/' && text[i + 1] === '*') {
      const close = text.indexOf('*/', i + 2);
      i = close === -1 ? text.length : close + 1;
    } else out += char;
  }
  return JSON.parse(out.replace(/,(\s*[}\]])/g, '$1'));
}

const unsupported = (name) => () => {
  throw new Error(
    `typescript-7-helpers.mjs: ${name} is not provided (only a tsconfig.json without project references is supported)`,
  );
};

export default {
  version,
  sys: {
    readFile(fileName) {
      try {
        return readFileSync(fileName, 'utf8');
      } catch {
        return undefined;
      }
    },
  },
  parseConfigFileTextToJson(fileName, text) {
    try {
      return { config: parseJsonc(text) };
    } catch (error) {
      return { config: {}, error: { messageText: `${fileName}: ${error.message}`, category: 1, code: 5083 } };
    }
  },
  resolveProjectReferencePath: unsupported('resolveProjectReferencePath'),
};

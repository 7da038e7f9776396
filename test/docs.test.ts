/** The docs, .env.example and config/ must tell the same story. */
import { readdirSync, readFileSync } from 'node:fs';
import test from 'ava';
import { checkEnvFile, loadConfig, SETTING_NAMES } from '../config/index.ts';

const root = new URL('../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');
const configSource = readdirSync(new URL('config/', root))
  .map((file) => read(`config/${file}`))
  .join('\n');
const variablesRead = [...new Set([...configSource.matchAll(/'([A-Z][A-Z0-9_]+)'/g)].map((match) => match[1]))].filter(
  (name) => (name.includes('_') && !name.endsWith('_')) || ['HOST', 'PORT'].includes(name),
);
const example = read('.env.example');
const exampleValues = Object.fromEntries(
  [...example.matchAll(/^([A-Z][A-Z0-9_]+)=(.*)$/gm)].map((match) => [match[1], match[2]]),
);
/** The rows of docs/configuration.md's table of settings: variable name → its default column. */
const tableDefaults = new Map(
  [...read('docs/configuration.md').matchAll(/^\| `([A-Z][A-Z0-9_]+)` \|.*\| ([^|]*) \|$/gm)].map((match) => [
    match[1],
    match[2],
  ]),
);

test('every variable config/ reads is in .env.example and in the table of docs/configuration.md', (t) => {
  t.true(variablesRead.length >= 20, `found ${variablesRead.length} variables`);
  for (const name of variablesRead) {
    t.true(name in exampleValues, `${name} in .env.example`);
    t.true(tableDefaults.has(name), `${name} in docs/configuration.md`);
  }
  for (const name of Object.keys(exampleValues))
    t.true(variablesRead.includes(name) || name === 'NODE_ENV', `${name} in .env.example is read by config/`);
});

test('the table of docs/configuration.md names only settings, and gives the defaults of .env.example', (t) => {
  t.deepEqual([...tableDefaults.keys()].sort(), [...SETTING_NAMES].sort());
  for (const [name, value] of Object.entries(exampleValues)) {
    // A blank value in .env.example means "the default", which the table says in words (none, per rules).
    if (value === '') continue;
    t.true(tableDefaults.get(name)?.includes(`\`${value}\``), `${name}: the table's default names \`${value}\``);
  }
});

test('.env.example holds the defaults (the Redis ones too)', (t) => {
  const withoutKeys = (config: ReturnType<typeof loadConfig>) => ({
    ...config,
    session: { ...config.session, keys: [] },
  });
  t.deepEqual(withoutKeys(loadConfig(exampleValues)), withoutKeys(loadConfig({})));
  const redis = { SESSION_STORE: 'redis' };
  t.deepEqual(withoutKeys(loadConfig({ ...exampleValues, ...redis })), withoutKeys(loadConfig(redis)));
});

test('SETTING_NAMES lists exactly the variables config/ reads', (t) => {
  t.deepEqual([...SETTING_NAMES].sort(), [...new Set([...variablesRead, 'NODE_ENV'])].sort());
});

test('.env.example passes its own check: no warning when copied to .env', (t) => {
  t.deepEqual(checkEnvFile(example, SETTING_NAMES), []);
});

const docsPages = readdirSync(new URL('docs/', root)).filter((file) => file.endsWith('.md'));
const readme = read('README.md');

test('the README links every page of docs/', (t) => {
  t.true(docsPages.length >= 10, `found ${docsPages.length} pages`);
  for (const page of docsPages) t.true(readme.includes(`](docs/${page})`), `README links docs/${page}`);
});

test('README and docs/ name no issue numbers, design cards or development machine', (t) => {
  for (const [file, text] of [
    ['README.md', readme],
    ...docsPages.map((page) => [`docs/${page}`, read(`docs/${page}`)]),
  ])
    for (const line of text.split('\n'))
      t.notRegex(line, /\bissues? #?\d|\bgithub issue|\bdesign card|\bdevelopment machine/i, file);
});

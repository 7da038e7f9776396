/** README, .env.example and config/ must tell the same story. */
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
const readme = read('README.md');

test('every variable config/ reads is in .env.example and in the README table', (t) => {
  t.true(variablesRead.length >= 20, `found ${variablesRead.length} variables`);
  for (const name of variablesRead) {
    t.true(name in exampleValues, `${name} in .env.example`);
    t.regex(readme, new RegExp(`^\\| \`${name}\` +\\|`, 'm'), `${name} in the README table`);
  }
  for (const name of Object.keys(exampleValues))
    t.true(variablesRead.includes(name) || name === 'NODE_ENV', `${name} in .env.example is read by config/`);
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

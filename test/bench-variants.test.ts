/**
 * The benchmark's variants (test/bench/variants.ts: the template with a guarantee taken out, for
 * `npm run bench -- --costs`) still build against today's source, and their edits take effect: a
 * variant that silently measured the full template would report every guarantee as free.
 */
import test from 'ava';
import { buildVariant, VARIANTS } from './bench/variants.ts';
import { Browser } from './helpers/browser.ts';
import { killOnTeardown, startServerProcess } from './helpers/process.ts';

test('every variant applies each of its edits to exactly one place', (t) => {
  t.true(VARIANTS.length > 1);
  for (const variant of VARIANTS) {
    // buildVariant throws when an edit finds its text 0 or 2+ times.
    t.notThrows(() => buildVariant(variant).remove(), variant.name);
  }
});

test('the variant without every guarantee serves the routes, with none of them', async (t) => {
  const everything = VARIANTS.find((variant) => variant.name === 'all of the above');
  if (everything === undefined) return t.fail('no variant takes out everything');
  const built = buildVariant(everything);
  t.teardown(built.remove);
  const server = await startServerProcess(
    { SESSION_KEYS: 'variant-test-key-0123456789abcdefghijklmnop', LOG_LEVEL: 'warn' },
    { script: built.serverScript },
  );
  killOnTeardown(t, server);
  const browser = new Browser(server.url);

  // Taken out: the cross-site refusal and Cache-Control (the template answers 403 and no-store).
  const set = await browser.request('/set', { headers: { 'Sec-Fetch-Site': 'cross-site' } });
  t.is(set.status, 200);
  t.is(set.headers.get('cache-control'), null);
  // Taken out: the signature (a fixed tag in its place).
  t.regex(browser.cookies.get('sid') ?? '', /\.A{43}$/);
  const data = (await browser.json('/get')) as { time?: number };
  t.true(Number.isInteger(data.time), 'the session was stored and read back');
});

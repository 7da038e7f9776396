/**
 * The template with one guarantee taken out, for `npm run bench -- --costs`: what each guarantee
 * costs per request, measured instead of guessed. Each variant is a copy of app/ and config/ in a
 * temporary folder with a few exact text edits, served by a copy of the benchmark's server and routes
 * (server.ts, routes.ts) that imports the edited copy; the benchmark runs it like the template, in
 * the same rounds. Never a setup to use: every variant is less safe than the template, by design.
 *
 * An edit names the text it replaces, and that text must occur exactly once: when the source
 * changes, building the variant fails loudly instead of measuring something else. check.ts
 * (`npm run bench:check`, and before every --costs run) builds them all, and runs the one with every
 * edit. So an edit to app/ (reflowing one of these lines, say) can make the check fail: then update
 * the edit here to the new text.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Edit {
  readonly file: string;
  readonly find: string;
  readonly replace: string;
}

export interface Variant {
  /** For --costs and the rows: "without <name>". */
  readonly name: string;
  readonly edits: readonly Edit[];
}

/** A tag of the signature's shape (43 base64url characters) that costs nothing to make. */
const FIXED_TAG = 'A'.repeat(43);

/**
 * A session store that is a bare Map: no bound, no expiry (idle or sliding), no copies, no stats. The
 * users' index is the memory store's (only the signed-in scenario uses it).
 */
const BARE_MAP_STORE = `
import { MemoryUsers } from './memory-users.ts';
function bareMapStore(): SessionStore {
  const texts = new Map<string, string>();
  return {
    kind: 'memory',
    users: new MemoryUsers({ now: Date.now }),
    get: async (id) => texts.get(id),
    create: async (id, text) => !texts.has(id) && texts.set(id, text) !== undefined,
    update: async (id, text) => texts.has(id) && texts.set(id, text) !== undefined,
    destroy: async (id) => texts.delete(id),
    health: async () => ({ ok: true, sessions: texts.size }),
    close: async () => {},
  };
}
`;

const withoutSignature: Edit[] = [
  {
    file: 'app/session/signed-cookie.ts',
    find: '  #mac(keyIndex: number, payload: string): string {\n',
    replace: `  #mac(keyIndex: number, payload: string): string {\n    return '${FIXED_TAG}';\n`,
  },
];
/** The store key is the id itself, and the verified-cookie cache is found by the cookie value itself. */
const withoutStoreKeyHash: Edit[] = [
  {
    file: 'app/session/store-keys.ts',
    find: "    return createHmac('sha256', this.#subkeys[keyIndex]).update(id).digest().toString('base64url', 0, STORE_KEY_BYTES);",
    replace: "    return keyIndex === 0 ? id : String(keyIndex) + ':' + id;",
  },
  {
    file: 'app/session/signed-cookie.ts',
    find: "    const digest = hash('sha256', value, 'base64url');",
    replace: '    const digest = value;',
  },
];
const withoutCopies: Edit[] = [
  { file: 'app/strings.ts', find: 'return JSON.parse(JSON.stringify(text)) as string;', replace: 'return text;' },
];
const withoutStoredValueChecks: Edit[] = [
  {
    file: 'app/session/stored-session.ts',
    find: 'export function decodeStoredSession(text: string): StoredSession {\n',
    replace:
      'export function decodeStoredSession(text: string): StoredSession {\n  return JSON.parse(text) as StoredSession;\n',
  },
  {
    file: 'app/session/stored-session.ts',
    find: '  session[SESSION_MARKER] = true;\n',
    replace: '  session[SESSION_MARKER] = true;\n  return JSON.stringify(session);\n',
  },
];
const withBareMapStore: Edit[] = [
  {
    file: 'app/stores/index.ts',
    find: 'return new MemoryStore({ maxEntries: config.session.maxEntries });',
    replace: 'return bareMapStore();',
  },
  {
    file: 'app/stores/index.ts',
    find: "import type { SessionStore } from './store.ts';\n",
    replace: `import type { SessionStore } from './store.ts';\n${BARE_MAP_STORE}`,
  },
];
const withoutNoStore: Edit[] = [
  { file: 'app/session/middleware.ts', find: "    ctx.set('Cache-Control', 'no-store');\n", replace: '' },
];
const withoutCrossSiteCheck: Edit[] = [
  {
    file: 'app/session/middleware.ts',
    find: 'isCrossSite(ctx) && !header.carried(ctx) ? refuseCrossSite(ctx) : serve(ctx, next, true);',
    replace: 'serve(ctx, next, true);',
  },
];
const withoutGracefulShutdown: Edit[] = [
  {
    file: 'app/shutdown.ts',
    find: 'const connections = trackConnections(server);',
    replace: 'const connections = { count: () => 0, closeAllIdle() {} };',
  },
  { file: 'app/app.ts', find: '  app.use(closeConnectionsOnShutdown(lifecycle));\n', replace: '' },
];
/**
 * Not a guarantee taken out: the same HMAC-SHA256, made from the key's inner and outer hash states,
 * computed once per key and copied per call (hash.copy()) instead of createHmac() each time, whose set-up
 * is most of an HMAC's cost. Kept here to measure, in the loaded server, whether that would win.
 */
const HMAC_STATES = `
import { createHash as createStateHash, type Hash as HashState } from 'node:crypto';
const HMAC_STATES = new WeakMap<KeyObject, [HashState, HashState]>();
function hmacStates(key: KeyObject): [HashState, HashState] {
  let states = HMAC_STATES.get(key);
  if (states === undefined) {
    const raw = key.export();
    const block = Buffer.alloc(64);
    (raw.length > 64 ? createStateHash('sha256').update(raw).digest() : raw).copy(block);
    states = [
      createStateHash('sha256').update(block.map((byte) => byte ^ 0x36)),
      createStateHash('sha256').update(block.map((byte) => byte ^ 0x5c)),
    ];
    HMAC_STATES.set(key, states);
  }
  return states;
}
function copiedHmac(key: KeyObject, message: string): Buffer {
  const [inner, outer] = hmacStates(key);
  return outer.copy().update(inner.copy().update(message).digest()).digest();
}
`;
const withHmacFromCopiedStates: Edit[] = [
  {
    file: 'app/session/signed-cookie.ts',
    find: "import { StoreKeys } from './store-keys.ts';\n",
    replace: `import { StoreKeys } from './store-keys.ts';\n${HMAC_STATES}`,
  },
  {
    file: 'app/session/signed-cookie.ts',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the source text of a template literal
    find: "    return createHmac('sha256', this.#keys[keyIndex]).update(`${this.#name}=${payload}`).digest('base64url');",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the source text of a template literal
    replace: "    return copiedHmac(this.#keys[keyIndex], `${this.#name}=${payload}`).toString('base64url');",
  },
  {
    file: 'app/session/store-keys.ts',
    find: "const PURPOSE = 'session store key';\n",
    replace: `const PURPOSE = 'session store key';\n${HMAC_STATES}`,
  },
  {
    file: 'app/session/store-keys.ts',
    find: "    return createHmac('sha256', this.#subkeys[keyIndex]).update(id).digest().toString('base64url', 0, STORE_KEY_BYTES);",
    replace: "    return copiedHmac(this.#subkeys[keyIndex], id).toString('base64url', 0, STORE_KEY_BYTES);",
  },
];
const withoutErrorBoundary: Edit[] = [{ file: 'app/app.ts', find: '  app.use(errorHandler(logger));\n', replace: '' }];
const withoutPipeliningBound: Edit[] = [
  { file: 'app/http-server.ts', find: '    boundPipelining(app.callback()),', replace: '    app.callback(),' },
];

export const VARIANTS: readonly Variant[] = [
  { name: 'the cookie signature (HMAC-SHA256 of a new cookie)', edits: withoutSignature },
  { name: 'ids useless at rest (the store key HMAC, the cache found by SHA-256)', edits: withoutStoreKeyHash },
  { name: 'the copies (flat strings in the store and the cookie cache)', edits: withoutCopies },
  { name: 'the stored-value checks (read and write)', edits: withoutStoredValueChecks },
  { name: 'the memory store (a bare Map: no bound, no expiry, no copies)', edits: withBareMapStore },
  { name: 'Cache-Control: no-store', edits: withoutNoStore },
  { name: 'the cross-site check', edits: withoutCrossSiteCheck },
  { name: 'graceful shutdown (connection tracking, Connection: close)', edits: withoutGracefulShutdown },
  { name: 'the error boundary', edits: withoutErrorBoundary },
  { name: 'the pipelining bound (16 requests in flight per connection)', edits: withoutPipeliningBound },
  // Left out of "all of the above": an other way to make the same HMAC, not a guarantee.
  { name: 'createHmac (HMACs from hash states copied per call, hash.copy())', edits: withHmacFromCopiedStates },
  {
    name: 'all of the above',
    edits: [
      ...withoutSignature,
      ...withoutStoreKeyHash,
      ...withoutCopies,
      ...withoutStoredValueChecks,
      ...withBareMapStore,
      ...withoutNoStore,
      ...withoutCrossSiteCheck,
      ...withoutGracefulShutdown,
      ...withoutErrorBoundary,
      ...withoutPipeliningBound,
    ],
  },
];

/** What a variant copies, relative to the project: the app, its settings, and the benchmark's server. */
const COPIED = ['app', 'config', 'package.json', 'tools/bench/server.ts', 'tools/bench/routes.ts'];
const SERVER_SCRIPT = 'tools/bench/server.ts';

export interface BuiltVariant {
  /** The variant's copy of the benchmark's server (tools/bench/server.ts), which imports its copy of app/. */
  readonly serverScript: string;
  readonly remove: () => void;
}

/** Copies app/, config/ and the benchmark's server to a temporary folder and applies the variant's edits there. */
export function buildVariant(variant: Variant): BuiltVariant {
  const folder = mkdtempSync(join(tmpdir(), 'koa-session-variant-'));
  const remove = () => rmSync(folder, { recursive: true, force: true });
  try {
    for (const entry of COPIED) {
      mkdirSync(dirname(join(folder, entry)), { recursive: true });
      cpSync(join(ROOT, entry), join(folder, entry), { recursive: true });
    }
    symlinkSync(join(ROOT, 'node_modules'), join(folder, 'node_modules'), 'dir');
    for (const { file, find, replace } of variant.edits) {
      const path = join(folder, file);
      const source = readFileSync(path, 'utf8');
      const occurrences = source.split(find).length - 1;
      if (occurrences !== 1)
        throw new Error(
          `variant "without ${variant.name}": ${file} holds ${occurrences} copies of ${JSON.stringify(find.slice(0, 60))}, not 1`,
        );
      writeFileSync(
        path,
        source.replace(find, () => replace),
      );
    }
  } catch (error) {
    remove();
    throw error;
  }
  return { serverScript: join(folder, SERVER_SCRIPT), remove };
}

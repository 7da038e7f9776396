/**
 * The text a session is stored as, and the check every stored value passes before koa-session sees it.
 *
 * Stored data is input: a value written by an older release, by hand, by another app sharing the Redis
 * database, or by an attacker with access to it must never break a request. koa-session copies every
 * stored key onto its Session object with a plain assignment, so `__proto__` would replace the
 * session's prototype and `toJSON: 1` would shadow its method (both gave 500s on /get and /del). So
 * only what this app writes is accepted: a JSON object whose keys are the app's data plus koa-session's
 * own `_session` / `_expire` / `_maxAge`, with no `__proto__` or `constructor` key at any depth.
 * Anything else is discarded by the session layer (read as no session, deleted, logged once).
 */

/** What koa-session stores: the session's fields plus its own bookkeeping (`_session`, `_expire`, `_maxAge`). */
export type StoredSession = Record<string, unknown>;

/** Names that would collide with koa-session's Session object (its methods and accessors) or with Object itself. */
const RESERVED_KEYS = new Set([
  '__proto__',
  'constructor',
  'prototype',
  'toJSON',
  'save',
  'regenerate',
  'manuallyCommit',
  'commit',
  'isNew',
  'length',
  'populated',
  'maxAge',
  'externalKey',
]);

/** koa-session's bookkeeping keys and the type each must have. */
const INTERNAL_KEYS: Readonly<Record<string, 'boolean' | 'number'>> = { _session: 'boolean', _expire: 'number', _maxAge: 'number' };

/**
 * A text that could hold a __proto__ or constructor key below the top level (prototype pollution in code
 * that merges session data): either name, or any \u escape (JSON.parse turns "\u005f_proto__" into one).
 * Only such a text is walked in full; the walk decides.
 */
const MAY_HIDE_FORBIDDEN_KEY = /__proto__|constructor|\\u/;

export class InvalidStoredSessionError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'InvalidStoredSessionError';
  }
}

/** The reason a top-level key cannot be stored, or undefined when it can. */
function keyProblem(key: string, value: unknown): string | undefined {
  if (RESERVED_KEYS.has(key)) return `reserved key ${JSON.stringify(key)}`;
  if (key.startsWith('_')) {
    const expected = INTERNAL_KEYS[key];
    if (expected === undefined) return `unknown internal key ${JSON.stringify(key.slice(0, 40))}`;
    if (typeof value !== expected) return `${key} is not a ${expected}`;
  }
  return undefined;
}

/** The session in a stored text; throws InvalidStoredSessionError when it is anything but what this app writes. */
export function decodeStoredSession(text: string): StoredSession {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new InvalidStoredSessionError('not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidStoredSessionError(`a JSON ${value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value}, not an object`);
  }
  const session = value as StoredSession;
  for (const key of Object.keys(session)) {
    const problem = keyProblem(key, session[key]);
    if (problem !== undefined) throw new InvalidStoredSessionError(problem);
  }
  if (MAY_HIDE_FORBIDDEN_KEY.test(text) && hasForbiddenKey(session)) throw new InvalidStoredSessionError('a __proto__ or constructor key inside');
  return session;
}

/** Walks every object in the value (with a stack of its own: nesting depth cannot overflow the call stack). */
function hasForbiddenKey(root: unknown): boolean {
  const pending: unknown[] = [root];
  while (pending.length > 0) {
    const value = pending.pop();
    if (typeof value !== 'object' || value === null) continue;
    for (const key of Object.keys(value)) {
      if (key === '__proto__' || key === 'constructor') return true;
      pending.push((value as Record<string, unknown>)[key]);
    }
  }
  return false;
}

/**
 * The text for a session koa-session hands over for saving. Refuses what decodeStoredSession would
 * discard, so a handler that uses a reserved name fails loudly here instead of losing the session later.
 */
export function encodeStoredSession(session: StoredSession): string {
  for (const key of Object.keys(session)) {
    const problem = keyProblem(key, session[key]);
    if (problem !== undefined) throw new Error(`cannot store this session: ${problem} (rename that session field)`);
  }
  return JSON.stringify(session);
}

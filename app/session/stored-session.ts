/**
 * The text a session is stored as, and the check every stored value passes before koa-session sees it.
 *
 * Stored data is input: a value written by an older release, by hand, by another app sharing the Redis
 * database, or by an attacker with access to it must never break a request. koa-session copies every
 * stored key onto its Session object with a plain assignment, so `__proto__` would replace the
 * session's prototype and `toJSON: 1` would shadow its method (both gave 500s on /get and /del), and
 * koa-session hashes the data with a recursive JSON.stringify, which a deeply nested value overflows.
 * So only what this app writes is accepted: a JSON object whose keys are the app's data plus
 * koa-session's `_session: true`, nested at most MAX_DEPTH levels, with no `__proto__` or
 * `constructor` key at any depth. Anything else is discarded by the session layer (read as no
 * session, deleted, logged once).
 *
 * koa-session's own expiry fields (`_expire`, `_maxAge`) are never stored: the store's TTL alone
 * decides expiry (SESSION_MAX_AGE, sliding). koa-session would otherwise write a one-day `_maxAge`
 * when a request saves twice (regenerate() and then a change, the usual login), and read it back.
 *
 * A signed-in session also keeps `_user` (sign-in.ts): the user id, the epoch it was signed in under and
 * its handle in the user's list. The session layer writes it and takes it out before koa-session sees the
 * session, so routes can neither read nor forge it; a `_user` of any other shape is invalid data.
 */

/** A session as koa-session hands it to the store (its fields plus koa-session's bookkeeping keys) and as read back. */
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

/** The one bookkeeping key koa-session keeps in a stored session: `_session: true` ("no lifetime of its own"). */
const SESSION_MARKER = '_session';
/** The session layer's own key: who the session is signed in as (see StoredBinding). */
const USER_KEY = '_user';
/** The longest user id sign-in accepts. */
export const MAX_USER_ID_LENGTH = 256;
/** A handle: 16 random bytes, base64url. */
export const HANDLE = /^[A-Za-z0-9_-]{22}$/;

/** `_user` as stored: the user id, the epoch the session was signed in under, its handle in the user's list. */
export interface StoredBinding {
  readonly id: string;
  readonly e: number;
  readonly h: string;
}
/** koa-session's expiry fields, dropped before storing (see above). */
const EXPIRY_KEYS = ['_expire', '_maxAge'];
/** Deeper than this is not session data (and would overflow koa-session's recursive hash). */
export const MAX_DEPTH = 32;

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

/** Whether a value is a `_user` as the session layer writes it. */
function isStoredBinding(value: unknown): value is StoredBinding {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const { id, e, h, ...rest } = value as Record<string, unknown>;
  return (
    Object.keys(rest).length === 0 &&
    typeof id === 'string' &&
    id.length > 0 &&
    id.length <= MAX_USER_ID_LENGTH &&
    Number.isSafeInteger(e) &&
    (e as number) >= 0 &&
    typeof h === 'string' &&
    HANDLE.test(h)
  );
}

/** The reason a top-level key cannot be stored, or undefined when it can. */
function keyProblem(key: string, value: unknown): string | undefined {
  if (RESERVED_KEYS.has(key)) return `reserved key ${JSON.stringify(key)}`;
  if (key.startsWith('_')) {
    if (key === SESSION_MARKER) return value === true ? undefined : `${SESSION_MARKER} is not true`;
    if (key === USER_KEY) return isStoredBinding(value) ? undefined : `${USER_KEY} is not a user binding`;
    return `internal key ${JSON.stringify(key.slice(0, 40))}`;
  }
  return undefined;
}

/** Takes `_user` out of a decoded session (koa-session must not see it): the binding, or undefined. */
export function takeBinding(session: StoredSession): StoredBinding | undefined {
  const binding = session[USER_KEY] as StoredBinding | undefined;
  delete session[USER_KEY];
  return binding;
}

/** The session in a stored text; throws InvalidStoredSessionError when it is anything but what this app writes. */
export function decodeStoredSession(text: string): StoredSession {
  if (nestedDeeperThan(text, MAX_DEPTH)) throw new InvalidStoredSessionError(`nested deeper than ${MAX_DEPTH} levels`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new InvalidStoredSessionError('not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidStoredSessionError(
      `a JSON ${value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value}, not an object`,
    );
  }
  const session = value as StoredSession;
  for (const key of Object.keys(session)) {
    const problem = keyProblem(key, session[key]);
    if (problem !== undefined) throw new InvalidStoredSessionError(problem);
  }
  if (MAY_HIDE_FORBIDDEN_KEY.test(text) && hasForbiddenKey(session))
    throw new InvalidStoredSessionError('a __proto__ or constructor key inside');
  return session;
}

/** Whether the JSON text opens more than `limit` objects or arrays inside one another (one pass, strings skipped). */
function nestedDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (inString) {
      if (code === 0x5c)
        i++; // backslash: skip the escaped character
      else if (code === 0x22) inString = false;
    } else if (code === 0x22) inString = true;
    else if (code === 0x7b || code === 0x5b) {
      if (++depth > limit) return true;
    } else if (code === 0x7d || code === 0x5d) depth--;
  }
  return false;
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
 * `session` is the fresh copy koa-session's toJSON() made for this save, so its expiry keys are deleted
 * in place rather than copied again.
 */
export function encodeStoredSession(session: StoredSession, binding?: StoredBinding): string {
  for (const key of EXPIRY_KEYS) delete session[key];
  session[SESSION_MARKER] = true;
  for (const key of Object.keys(session)) {
    const problem = keyProblem(key, session[key]);
    if (problem !== undefined) throw new Error(`cannot store this session: ${problem} (rename that session field)`);
  }
  if (binding !== undefined) session[USER_KEY] = binding;
  const text = JSON.stringify(session);
  if (nestedDeeperThan(text, MAX_DEPTH))
    throw new Error(`cannot store this session: nested deeper than ${MAX_DEPTH} levels`);
  return text;
}

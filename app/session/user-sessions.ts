/**
 * The session layer's side of signing in: who a session is signed in as, and the calls on the store's
 * users' index (store.ts) that keep "sign out everywhere" and "revoke one" final. The routes' API is
 * sign-in.ts; request-store.ts calls in here as sessions are read, written and destroyed.
 *
 * A signed-in session stores its binding (`_user`: user id, epoch, handle). It is valid while the user's
 * epoch is still the one it was signed in under and its handle is still in the user's list: every read of
 * such a session checks both, in the one call that also records the use (`touch`). Sign out everywhere
 * bumps the epoch and empties the list in one step, revoke unlists one session; the sessions are also
 * destroyed, but the check is what makes it final: a session whose destroy was missed, or that a request
 * in flight wrote back, is refused (and destroyed) on its next read.
 */
import { hash, randomBytes } from 'node:crypto';
import type { SessionStore } from '../stores/store.ts';
import { MAX_LABEL_LENGTH } from './device-label.ts';
import type { StoredBinding } from './stored-session.ts';

/** Who a session is signed in as, as one request knows it. */
export interface UserBinding {
  readonly userId: string;
  /** The user's key in the store (derived from the user id): see userKeyOf. */
  readonly userKey: string;
  readonly epoch: number;
  readonly handle: string;
  /**
   * Until when (this process's clock) the user's list keeps the session's entry at least: the store's TTL
   * for the session never reaches past it, so a session never outlives its entry.
   */
  readonly listedUntil: number;
}

/** A sign-in under way (signIn() set it; the request store lists the new session). */
export interface PendingSignIn {
  readonly userId: string;
  readonly userKey: string;
  readonly handle: string;
  readonly label: string;
}

/**
 * The store key of a user: `u:` and 22 characters of the SHA-256 of the user id (base64url). A hash, so any
 * user id (an e-mail, one with `{` or `}` in it) makes a short key of safe characters and a Redis hash tag
 * of its own; not keyed, because it must stay the same through SESSION_KEYS rotation (the epoch lives under
 * it). The user id itself is not secret: it is in the session's stored data anyway.
 */
export function userKeyOf(userId: string): string {
  return `u:${hash('sha256', userId, 'base64url').slice(0, 22)}`;
}

/** A new handle: 16 random bytes, base64url (22 characters). Not derived from the id: it reveals nothing. */
export function newHandle(): string {
  return randomBytes(16).toString('base64url');
}

/** A label as given by the app: printable characters only, at most MAX_LABEL_LENGTH. */
export function cleanLabel(label: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it removes
  return label.replace(/[\u0000-\u001f\u007f-\u009f]/g, '').slice(0, MAX_LABEL_LENGTH) || 'unknown device';
}

export class UserSessions {
  readonly #store: SessionStore;
  readonly #maxPerUser: number;
  /** How long an epoch bumped by sign out everywhere is kept: the longest a session can sit unused. */
  readonly #keepEpochMs: number;

  constructor(store: SessionStore, maxPerUser: number, keepEpochMs: number) {
    this.#store = store;
    this.#maxPerUser = maxPerUser;
    this.#keepEpochMs = keepEpochMs;
  }

  /** The binding of a stored session, as of a check that started at `checkedAt` with `ttlMs`. */
  static fromStored(stored: StoredBinding, checkedAt: number, ttlMs: number): UserBinding {
    return {
      userId: stored.id,
      userKey: userKeyOf(stored.id),
      epoch: stored.e,
      handle: stored.h,
      listedUntil: checkedAt + ttlMs,
    };
  }

  static toStored(binding: UserBinding): StoredBinding {
    return { id: binding.userId, e: binding.epoch, h: binding.handle };
  }

  /**
   * A read of a signed-in session (or its move to another store key): whether it is still valid, and if so
   * its entry records the use (and the new key). The binding to keep for the rest of the request, or
   * undefined when it is signed out.
   */
  async check(binding: UserBinding, ttlMs: number, storeKey?: string): Promise<UserBinding | undefined> {
    const checkedAt = Date.now();
    const { userKey, handle, epoch } = binding;
    if (!(await this.#store.users.touch(userKey, handle, epoch, ttlMs, storeKey))) return undefined;
    return { ...binding, listedUntil: checkedAt + ttlMs };
  }

  /** Lists a session being signed in, stored under `storeKey`; the binding to store with it. */
  async add(pending: PendingSignIn, storeKey: string, ttlMs: number): Promise<UserBinding> {
    const addedAt = Date.now();
    const { userKey, handle, label, userId } = pending;
    const { epoch, dropped } = await this.#store.users.add(
      userKey,
      { handle, storeKey, label },
      ttlMs,
      this.#maxPerUser,
    );
    // Past the bound, the least recently used sessions were unlisted (so they are signed out): their data goes.
    await Promise.all(dropped.map((key) => this.#store.destroy(key)));
    return { userId, userKey, epoch, handle, listedUntil: addedAt + ttlMs };
  }

  /** Unlists a session (a logout). */
  async remove(binding: UserBinding): Promise<void> {
    await this.#store.users.remove(binding.userKey, binding.handle);
  }

  /**
   * Unlists another session of the same user and destroys it: false when the handle is not listed (an
   * unknown handle, another user's, or one already gone).
   */
  async revoke(binding: UserBinding, handle: string): Promise<boolean> {
    const storeKey = await this.#store.users.remove(binding.userKey, handle);
    if (storeKey === undefined) return false;
    // '' when the entry held no store key (stored data that is not what this app writes): nothing to destroy.
    if (storeKey !== '') await this.#store.destroy(storeKey);
    return true;
  }

  /** Signs the user out everywhere; destroys every listed session but `keep` (the caller's, which its request ends). */
  async endAll(binding: UserBinding, keep: string | undefined): Promise<number> {
    const storeKeys = await this.#store.users.endAll(binding.userKey, this.#keepEpochMs);
    await Promise.all(storeKeys.filter((key) => key !== keep).map((key) => this.#store.destroy(key)));
    return storeKeys.length;
  }

  list(binding: UserBinding) {
    return this.#store.users.list(binding.userKey);
  }
}

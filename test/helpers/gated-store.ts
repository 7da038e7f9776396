/**
 * A store wrapper that holds chosen calls at their start until the test lets them go: the way to make
 * a bad interleaving happen on purpose (a request paused between its read and its write while another
 * logs out) instead of hoping a race shows up.
 */
import type { SessionStore, StoreHealth, UserSessionIndex } from '../../app/stores/store.ts';

/** The calls of the users' index (sign-in), by their name there. */
type UserMethod = 'users.add' | 'users.touch' | 'users.list' | 'users.remove' | 'users.endAll';
type Method = 'get' | 'create' | 'update' | 'destroy' | UserMethod;

export interface Hold {
  /** Resolves once the held call has arrived and is waiting. */
  readonly reached: Promise<void>;
  /** Lets the held call go on to the real store. */
  release(): void;
}

interface PendingHold {
  readonly method: Method;
  readonly arrived: () => void;
  readonly released: Promise<void>;
}

export class GatedStore implements SessionStore {
  readonly kind: string;
  readonly inner: SessionStore;
  readonly #holds: PendingHold[] = [];
  /** Every call, in the order the calls reached the wrapper. */
  readonly calls: Array<{ method: Method; id: string }> = [];
  /** The inner store's users' index, its calls held the same way (their `id` is the user key). */
  readonly users: UserSessionIndex;

  constructor(inner: SessionStore) {
    this.inner = inner;
    this.kind = inner.kind;
    const users = inner.users;
    this.users = {
      add: async (user, entry, ttlMs, maxEntries) => {
        await this.#gate('users.add', user);
        return users.add(user, entry, ttlMs, maxEntries);
      },
      touch: async (user, handle, epoch, ttlMs, storeKey) => {
        await this.#gate('users.touch', user);
        return users.touch(user, handle, epoch, ttlMs, storeKey);
      },
      list: async (user) => {
        await this.#gate('users.list', user);
        return users.list(user);
      },
      remove: async (user, handle) => {
        await this.#gate('users.remove', user);
        return users.remove(user, handle);
      },
      endAll: async (user, keepEpochMs) => {
        await this.#gate('users.endAll', user);
        return users.endAll(user, keepEpochMs);
      },
    };
  }

  /** The next call of `method` waits at its start until release(). Several holds queue up in order. */
  holdNext(method: Method): Hold {
    let arrived!: () => void;
    let release!: () => void;
    const reached = new Promise<void>((resolve) => (arrived = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    this.#holds.push({ method, arrived, released });
    return { reached, release };
  }

  async #gate(method: Method, id: string): Promise<void> {
    this.calls.push({ method, id });
    const index = this.#holds.findIndex((hold) => hold.method === method);
    if (index === -1) return;
    const [hold] = this.#holds.splice(index, 1);
    hold.arrived();
    await hold.released;
  }

  async get(id: string, ttlMs: number): Promise<string | undefined> {
    await this.#gate('get', id);
    return this.inner.get(id, ttlMs);
  }

  async create(id: string, text: string, ttlMs: number): Promise<boolean> {
    await this.#gate('create', id);
    return this.inner.create(id, text, ttlMs);
  }

  async update(id: string, text: string, ttlMs: number): Promise<boolean> {
    await this.#gate('update', id);
    return this.inner.update(id, text, ttlMs);
  }

  async destroy(id: string): Promise<boolean> {
    await this.#gate('destroy', id);
    return this.inner.destroy(id);
  }

  health(): Promise<StoreHealth> {
    return this.inner.health();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

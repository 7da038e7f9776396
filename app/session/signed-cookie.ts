/**
 * The session cookie's value: `<session id>.<issued at>.<signature>`.
 *
 * The signature is HMAC-SHA256 over the cookie name and the rest of the value, made with the first
 * key; any key verifies, so keys can be rotated (put the new key first, keep the old one until its
 * cookies are gone). Comparison is constant-time (crypto.timingSafeEqual). This replaces Koa's
 * Keygrip-based `name.sig` cookie pair: one cookie instead of two, and one HMAC per request instead
 * of Keygrip's HMAC-SHA1 plus a double-HMAC comparison (the benchmark in the README shows the gap).
 *
 * "Issued at" is when the session id was made (Unix milliseconds, base 36). It is covered by the
 * signature, so it can back an absolute session lifetime, to the millisecond, without storing anything more.
 *
 * A verified cookie also brings the key its session is stored under (store-keys.ts), worked out once with
 * the verification and remembered with it.
 */
import { createHmac, createSecretKey, hash, type KeyObject, timingSafeEqual } from 'node:crypto';
import { StoreKeys } from './store-keys.ts';

export interface SessionCookie {
  readonly id: string;
  /** Unix time in milliseconds when the id was issued. */
  readonly issuedAt: number;
  /** Which key verified it: 0 is the current one; more means the cookie should be re-signed. */
  readonly keyIndex: number;
  /** Where the store keeps its session: the id's hash under the key that verified it. */
  readonly storeKey: string;
}

/** What the cache of verified cookies keeps: everything but the id. */
type Verified = Omit<SessionCookie, 'id'>;

/** nanoid's default: 21 characters of A-Za-z0-9_- (126 random bits). */
const SESSION_ID = /^[A-Za-z0-9_-]{21}$/;
/** Milliseconds in base 36 take 8 digits until 2059; 9 allows for the year 5000. */
const COOKIE_VALUE = /^([A-Za-z0-9_-]{21})\.([0-9a-z]{1,9})\.([A-Za-z0-9_-]{43})$/;
const MAX_COOKIE_VALUE_LENGTH = 21 + 1 + 9 + 1 + 43;

/**
 * How many recently verified cookie values are remembered. An HMAC is the largest single cost of
 * reading a session (two with the store key); a returning client skips both. Only values that passed
 * verification are kept (so garbage cannot fill it), and the oldest is dropped past the limit. An entry
 * is found by the SHA-256 of the whole value, not the value: the cache must not hand a heap snapshot
 * the last 10,000 cookies (a live credential each), and a lookup reveals nothing about a guess that
 * differs from a cookie the server issued. The id is read from the value itself on a hit.
 */
const VERIFIED_CACHE_SIZE = 10_000;
/** The id's length: the first 21 characters of a verified value. */
const ID_LENGTH = 21;

export class CookieSigner {
  readonly #name: string;
  /** KeyObjects, made once: createHmac with a raw Buffer imports the key again on every call (twice the cost). */
  readonly #keys: readonly KeyObject[];
  readonly #storeKeys: StoreKeys;
  readonly #verified = new Map<string, Verified>();

  /** `storeKeys`: the session layer's own, shared with the request store; made from the same keys when left out. */
  constructor(cookieName: string, keys: readonly string[], storeKeys?: StoreKeys) {
    if (keys.length === 0) throw new Error('CookieSigner needs at least one key');
    this.#name = cookieName;
    this.#keys = keys.map((key) => createSecretKey(Buffer.from(key)));
    this.#storeKeys = storeKeys ?? new StoreKeys(keys);
  }

  encode(id: string, issuedAt: number): string {
    if (!SESSION_ID.test(id)) throw new Error('not a session id');
    const payload = `${id}.${issuedAt.toString(36)}`;
    return `${payload}.${this.#mac(0, payload)}`;
  }

  /** The cookie's session id if the value is well-formed and signed by one of the keys; else undefined. */
  decode(value: string | undefined): SessionCookie | undefined {
    if (value === undefined) return undefined;
    if (value.length > MAX_COOKIE_VALUE_LENGTH) return undefined; // nothing longer can be ours
    const digest = hash('sha256', value, 'base64url');
    const known = this.#verified.get(digest);
    if (known !== undefined) return { id: value.slice(0, ID_LENGTH), ...known };
    const cookie = this.#verify(value);
    if (cookie !== undefined) {
      if (this.#verified.size >= VERIFIED_CACHE_SIZE) {
        const oldest = this.#verified.keys().next();
        if (!oldest.done) this.#verified.delete(oldest.value);
      }
      // A digest and a store key are fresh flat strings: nothing cached keeps the request's header alive.
      this.#verified.set(digest, { issuedAt: cookie.issuedAt, keyIndex: cookie.keyIndex, storeKey: cookie.storeKey });
    }
    return cookie;
  }

  #verify(value: string): SessionCookie | undefined {
    const match = COOKIE_VALUE.exec(value);
    if (match === null) return undefined;
    const payload = `${match[1]}.${match[2]}`;
    const signature = Buffer.from(match[3]);
    for (let keyIndex = 0; keyIndex < this.#keys.length; keyIndex++) {
      // Both sides are 43 ASCII characters (the regex guarantees it), as timingSafeEqual requires.
      if (timingSafeEqual(signature, Buffer.from(this.#mac(keyIndex, payload)))) {
        const id = match[1];
        return { id, issuedAt: Number.parseInt(match[2], 36), keyIndex, storeKey: this.#storeKeys.of(id, keyIndex) };
      }
    }
    return undefined;
  }

  #mac(keyIndex: number, payload: string): string {
    return createHmac('sha256', this.#keys[keyIndex]).update(`${this.#name}=${payload}`).digest('base64url');
  }
}

/**
 * What the store keeps a session under: not its id, a keyed hash of it. A Redis dump, MONITOR output or a
 * heap snapshot of the memory store then holds no id a client could send: the id is the credential, and a
 * store key cannot be turned back into one (nor a cookie made from it without the signing key), as Rack
 * does since CVE-2019-16782.
 *
 * The store key is HMAC-SHA256 of the id, cut to its first 128 bits (as many as the id has random bits, so
 * nothing is lost in uniqueness, and each stored session keeps a 22-character key rather than a 43-character
 * one) in base64url, with a subkey derived by HKDF from the signing key
 * that signs the session's cookie, so the cookie's MAC and the store key never share a key. One subkey per
 * SESSION_KEYS entry: a cookie verified by key i names a session stored under key i's hash. When such a
 * cookie is re-signed with the current key, its session moves to the current key's hash (request-store.ts),
 * so a session outlives the rotation and its old key.
 */
import { createHmac, createSecretKey, hkdfSync, type KeyObject } from 'node:crypto';

/** HKDF's "info": what the derived key is for (a different purpose would use a different text). */
const PURPOSE = 'session store key';
/** The HMAC's first 16 bytes: 128 bits. */
const STORE_KEY_BYTES = 16;

export class StoreKeys {
  /** KeyObjects, made once (see signed-cookie.ts). */
  readonly #subkeys: readonly KeyObject[];

  constructor(signingKeys: readonly string[]) {
    if (signingKeys.length === 0) throw new Error('StoreKeys needs at least one key');
    this.#subkeys = signingKeys.map((key) =>
      createSecretKey(Buffer.from(hkdfSync('sha256', Buffer.from(key), Buffer.alloc(0), PURPOSE, 32))),
    );
  }

  /** The store key of a session id under signing key `keyIndex` (0, the current key, by default). */
  of(id: string, keyIndex = 0): string {
    return createHmac('sha256', this.#subkeys[keyIndex]).update(id).digest().toString('base64url', 0, STORE_KEY_BYTES);
  }
}

/**
 * The session id in a header, for API clients that keep no cookies (SESSION_HEADER names it, e.g.
 * X-Session-Id; empty, the default, means off). The header carries exactly the cookie's signed value,
 * so signature, key rotation, lifetimes and logout are the same.
 *
 * A request that sends the header (any value, even empty: that is how a new client asks for a session)
 * is served by it alone: its cookie, if any, is not read, and the answer carries a new or re-signed id in
 * the header, never in a cookie, and an empty header where a cookie would have been cleared. A request
 * without the header gets cookies, and never the header: page scripts can read response headers, so a
 * browser's session id must stay in its HttpOnly cookie.
 */
import type { Context } from 'koa';

export class SessionHeader {
  /** As configured, for responses. */
  readonly #name: string;
  /** Lower case, as Node keys request headers. */
  readonly #key: string;

  constructor(name: string) {
    this.#name = name;
    this.#key = name.toLowerCase();
  }

  /** The header's value when the request sends it (several copies arrive joined by ", ": never valid). */
  read(ctx: Context): string | undefined {
    if (this.#key === '') return undefined;
    const value = ctx.req.headers[this.#key];
    return Array.isArray(value) ? value.join(', ') : value;
  }

  /** Whether the request sends the header. */
  carried(ctx: Context): boolean {
    return this.read(ctx) !== undefined;
  }

  send(ctx: Context, value: string): void {
    ctx.set(this.#name, value);
  }

  sent(ctx: Context): boolean {
    return ctx.res.hasHeader(this.#name);
  }

  remove(ctx: Context): void {
    ctx.remove(this.#name);
  }
}

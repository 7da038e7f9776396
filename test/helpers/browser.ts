/**
 * A minimal cookie-keeping HTTP client over Node's fetch: it sends back what the server set, as a
 * browser would for one site, and exposes the raw Set-Cookie headers for assertions.
 */
export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: string;
  readonly setCookies: readonly string[];
}

export class Browser {
  readonly baseUrl: string;
  readonly cookies = new Map<string, string>();

  constructor(baseUrl: string) {
    this.baseUrl = baseUrl;
  }

  /** The raw `name=value` pairs this browser sends, or undefined when it holds none. */
  get cookieHeader(): string | undefined {
    if (this.cookies.size === 0) return undefined;
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  async request(path: string, init: RequestInit = {}): Promise<Answer> {
    const headers = new Headers(init.headers);
    const cookie = this.cookieHeader;
    if (cookie !== undefined && !headers.has('cookie')) headers.set('cookie', cookie);
    const response = await fetch(new URL(path, this.baseUrl), { ...init, headers, redirect: 'manual' });
    const body = await response.text();
    const setCookies = response.headers.getSetCookie();
    for (const line of setCookies) this.#remember(line);
    return { status: response.status, headers: response.headers, body, setCookies };
  }

  async json(path: string, init?: RequestInit): Promise<Record<string, unknown>> {
    const answer = await this.request(path, init);
    if (answer.status !== 200) throw new Error(`${path} answered ${answer.status}: ${answer.body}`);
    return JSON.parse(answer.body) as Record<string, unknown>;
  }

  #remember(setCookie: string): void {
    const [pair, ...attributes] = setCookie.split(';');
    const separator = pair.indexOf('=');
    const name = pair.slice(0, separator).trim();
    const value = pair.slice(separator + 1).trim();
    const expired = attributes.some((attribute) => /^\s*expires=Thu, 01 Jan 1970/i.test(attribute));
    if (value === '' || expired) this.cookies.delete(name);
    else this.cookies.set(name, value);
  }
}

/** The value of the named cookie in a Set-Cookie header list, or undefined. */
export function cookieValue(setCookies: readonly string[], name: string): string | undefined {
  for (const line of setCookies) {
    const match = new RegExp(`^${name}=([^;]*)`).exec(line);
    if (match) return match[1];
  }
  return undefined;
}

/** The session id part of a cookie value `<id>.<issued>.<signature>`. */
export function sessionIdOf(cookie: string | undefined): string | undefined {
  return cookie?.split('.')[0];
}

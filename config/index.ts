/**
 * The one place where settings are read. Everything the app needs from its environment is parsed,
 * validated and typed here, then frozen; app code receives a Config and never reads process.env.
 * Every variable below is listed, with its default, in .env.example and in docs/configuration.md.
 */
import { randomBytes } from 'node:crypto';
import {
  ConfigError,
  type Environment,
  readBoolean,
  readChoice,
  readDuration,
  readInteger,
  readOptionalString,
  readString,
} from './parsers.ts';

export { checkEnvFile, readEnvironment } from './environment.ts';
export { ConfigError } from './parsers.ts';
export { StartupError } from './startup-error.ts';

/** Every setting this module reads (the .env check warns about names close to these). */
export const SETTING_NAMES = [
  'NODE_ENV',
  'HOST',
  'PORT',
  'TRUST_PROXY',
  'HTTP_HEADERS_TIMEOUT',
  'HTTP_REQUEST_TIMEOUT',
  'HTTP_KEEP_ALIVE_TIMEOUT',
  'SHUTDOWN_DRAIN',
  'SHUTDOWN_TIMEOUT',
  'LOG_LEVEL',
  'LOG_FORMAT',
  'SESSION_STORE',
  'SESSION_MAX_AGE',
  'SESSION_MAX_LIFETIME',
  'SESSION_MAX_ENTRIES',
  'SESSION_KEYS',
  'SESSION_MAX_PER_USER',
  'SESSION_HEADER',
  'SESSION_COOKIE_NAME',
  'SESSION_COOKIE_SECURE',
  'SESSION_COOKIE_SAMESITE',
  'REDIS_URL',
  'REDIS_CLUSTER_NODES',
  'REDIS_SENTINEL_NODES',
  'REDIS_SENTINEL_MASTER',
  'REDIS_KEY_PREFIX',
  'REDIS_CONNECT_TIMEOUT',
  'REDIS_COMMAND_TIMEOUT',
  'SESSION_SQLITE_FILE',
] as const;

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
/** auto: human-readable lines in a development terminal, JSON lines everywhere else. */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export const STORE_KINDS = ['memory', 'redis', 'sqlite'] as const;
export type SessionStoreKind = (typeof STORE_KINDS)[number];
/** auto: Secure exactly when the request came over HTTPS (directly, or through a trusted proxy). */
export const COOKIE_SECURE_MODES = ['auto', 'true', 'false'] as const;
export type CookieSecureMode = (typeof COOKIE_SECURE_MODES)[number];
export const SAME_SITE_VALUES = ['lax', 'strict', 'none'] as const;
export type SameSite = (typeof SAME_SITE_VALUES)[number];

export interface HttpConfig {
  readonly host: string;
  readonly port: number;
  /** Trust X-Forwarded-Proto/-For from a reverse proxy (needed for Secure cookies behind TLS termination). */
  readonly trustProxy: boolean;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  /**
   * After SIGTERM: how long /healthz answers 503 and every answer closes its connection, before the
   * listener closes.
   */
  readonly shutdownDrainMs: number;
  /** From SIGTERM/SIGINT to exit, drain included; past it the process exits 1 with requests still open. */
  readonly shutdownTimeoutMs: number;
}

export interface CookieConfig {
  readonly name: string;
  readonly secure: CookieSecureMode;
  readonly sameSite: SameSite;
}

export interface SessionConfig {
  readonly store: SessionStoreKind;
  /** Idle lifetime: a session lives this long after its last use. */
  readonly maxAgeMs: number;
  /** Absolute lifetime from creation, or null for none. */
  readonly maxLifetimeMs: number | null;
  /**
   * Memory and SQLite stores: the most sessions held; past it one is evicted (segmented LRU in memory,
   * least recently used in SQLite: see app/stores/memory.ts and app/stores/sqlite.ts).
   */
  readonly maxEntries: number;
  /** Cookie-signing keys: the first signs, every one verifies. */
  readonly keys: readonly string[];
  /** True when no SESSION_KEYS were given and a random key was made for this process (development only). */
  readonly keysAreEphemeral: boolean;
  /** The most signed-in sessions one user keeps; signing in past it signs out the least recently used. */
  readonly maxPerUser: number;
  /** The request and response header that carries the signed session id for API clients; '' when off. */
  readonly header: string;
  readonly cookie: CookieConfig;
}

export interface RedisNodeAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * A Redis deployment other than one server, from which setting is given: REDIS_CLUSTER_NODES (a Redis
 * Cluster, found through those seed nodes), or REDIS_SENTINEL_NODES with REDIS_SENTINEL_MASTER (the master
 * those Sentinels name, followed through failovers).
 */
export type RedisTopology =
  | { readonly kind: 'cluster'; readonly nodes: readonly RedisNodeAddress[] }
  | { readonly kind: 'sentinel'; readonly nodes: readonly RedisNodeAddress[]; readonly masterName: string };

export interface RedisConfig {
  /**
   * The server, with a Redis server alone. With a Cluster or Sentinel, only its user, password and scheme
   * (rediss:// for TLS) count, and with Sentinel its database: they apply to every data node.
   */
  readonly url: string;
  /** A Cluster or Sentinels; absent for the one server at `url`. */
  readonly topology?: RedisTopology;
  readonly keyPrefix: string;
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
}

export interface SqliteConfig {
  /** The database file, relative to the working directory unless absolute; its folder is created if missing. */
  readonly file: string;
}

export interface Config {
  /** Production rules (required, long SESSION_KEYS) apply unless NODE_ENV is unset, development or test. */
  readonly production: boolean;
  /** Things worth a warning line at start that do not stop it (the server entry logs them). */
  readonly warnings: readonly string[];
  readonly http: HttpConfig;
  readonly log: { readonly level: LogLevel; readonly format: LogFormat };
  readonly session: SessionConfig;
  /** The Redis settings when SESSION_STORE=redis; null otherwise (they are not even validated then). */
  readonly redis: RedisConfig | null;
  /** The SQLite settings when SESSION_STORE=sqlite; null otherwise. */
  readonly sqlite: SqliteConfig | null;
}

const MIN_PRODUCTION_KEY_LENGTH = 32;
/** NODE_ENV values that mean development rules; any other value (production, staging, Production) means production. */
const DEVELOPMENT_ENVIRONMENTS = ['development', 'test'];
/**
 * Browsers accept cookies with these name prefixes only with Secure (RFC 6265bis), so they need
 * SESSION_COOKIE_SECURE=true.
 */
const SECURE_ONLY_PREFIXES = ['__Host-', '__Secure-'];
/** RFC 6265 cookie-name characters (an HTTP token). */
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** An HTTP header name (RFC 9110 token). */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/**
 * Header names SESSION_HEADER must not take: ones HTTP, browsers, proxies or this app give a meaning of
 * their own (the session id in Cookie or Authorization would be read by code that expects something else).
 */
const RESERVED_HEADERS = new Set([
  'accept',
  'authorization',
  'cache-control',
  'connection',
  'content-length',
  'content-type',
  'cookie',
  'host',
  'keep-alive',
  'origin',
  'proxy-authorization',
  'referer',
  'retry-after',
  'set-cookie',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'user-agent',
  'vary',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
]);

function readSessionHeader(env: Environment): string {
  const name = readString(env, 'SESSION_HEADER', '');
  if (name === '') return '';
  if (!HEADER_NAME.test(name) || RESERVED_HEADERS.has(name.toLowerCase()) || /^sec-/i.test(name)) {
    throw new ConfigError(
      'SESSION_HEADER',
      name,
      "empty (off) or an HTTP header name of letters, digits and !#$%&'*+-.^_`|~ (X-Session-Id, say), " +
        'not one HTTP or browsers already use (Cookie, Authorization, Sec-…)',
    );
  }
  return name;
}

function readSessionKeys(
  env: Environment,
  production: boolean,
  warnings: string[],
): Pick<SessionConfig, 'keys' | 'keysAreEphemeral'> {
  const value = readOptionalString(env, 'SESSION_KEYS');
  if (value === undefined) {
    if (production) {
      throw new ConfigError(
        'SESSION_KEYS',
        '',
        `required when NODE_ENV=production: comma-separated keys of at least ${MIN_PRODUCTION_KEY_LENGTH} characters`,
      );
    }
    return { keys: [randomBytes(32).toString('base64url')], keysAreEphemeral: true };
  }
  const keys = value.split(',').map((key) => key.trim());
  // Keys are secrets: the error names their lengths, never their text.
  const redacted = `<${keys.length} key(s) of ${keys.map((key) => key.length).join(', ')} characters>`;
  if (keys.some((key) => key === '')) {
    throw new ConfigError('SESSION_KEYS', redacted, 'comma-separated keys, none of them empty');
  }
  if (production && keys.some((key) => key.length < MIN_PRODUCTION_KEY_LENGTH)) {
    throw new ConfigError(
      'SESSION_KEYS',
      redacted,
      `every key at least ${MIN_PRODUCTION_KEY_LENGTH} characters in production (NODE_ENV=${env.NODE_ENV})`,
    );
  }
  if (keys.some((key) => key.length < MIN_PRODUCTION_KEY_LENGTH)) {
    warnings.push(
      `SESSION_KEYS has a key shorter than ${MIN_PRODUCTION_KEY_LENGTH} characters: ` +
        'fine for development, refused in production',
    );
  }
  return { keys, keysAreEphemeral: false };
}

function readCookie(env: Environment): CookieConfig {
  const secure = readChoice(env, 'SESSION_COOKIE_SECURE', 'auto', COOKIE_SECURE_MODES);
  // __Host-: the browser takes the cookie only with Secure, Path=/ and no Domain, so no sibling
  // subdomain or plain-HTTP page can plant a cookie of that name to shadow ours.
  const name = readString(env, 'SESSION_COOKIE_NAME', secure === 'true' ? '__Host-sid' : 'sid');
  if (!COOKIE_NAME.test(name)) {
    throw new ConfigError('SESSION_COOKIE_NAME', name, "a cookie name: letters, digits and !#$%&'*+-.^_`|~");
  }
  // Browsers match these prefixes without regard to case (__host-sid is a __Host- cookie too).
  const prefix = SECURE_ONLY_PREFIXES.find((candidate) => name.toLowerCase().startsWith(candidate.toLowerCase()));
  if (prefix !== undefined && secure !== 'true') {
    throw new ConfigError(
      'SESSION_COOKIE_NAME',
      name,
      `a name starting with ${prefix} only together with SESSION_COOKIE_SECURE=true (browsers drop it otherwise)`,
    );
  }
  const sameSite = readChoice(env, 'SESSION_COOKIE_SAMESITE', 'lax', SAME_SITE_VALUES);
  if (sameSite === 'none' && secure !== 'true') {
    // Browsers drop SameSite=None cookies that are not Secure, so this pair could never work.
    throw new ConfigError('SESSION_COOKIE_SAMESITE', 'none', 'none only together with SESSION_COOKIE_SECURE=true');
  }
  return { name, secure, sameSite };
}

/** A URL scheme and its `//`: all that redactUrl shows of text that is not a URL with a host. */
const SCHEME_AND_SLASHES = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;
/** A database number, the one path a Redis URL has. */
const DATABASE_PATH = /^(\/\d*)?$/;

/**
 * The URL as far as it cannot be secret, for messages and logs: its scheme, host, port and database
 * number. Any user and password become `***@`, any other path `/***`, a query `?***`, a fragment `#***`.
 * A password may hold `:`, `@`, `/`, `#` or `?` unescaped, stand where the user goes (redis://pw@host),
 * lack its host (redis://:pw) or have lost its tail (a .env line cut at #), so the URL parser's reading
 * (as node-redis reads it) is trusted only when it finds a host and no `@` after it: an `@` in the path,
 * query or fragment means the "host" may be the start of a password (redis://u:12/x@host parses as host
 * u, port 12). Anything else shows its scheme alone: redis://***. What no reading can tell from a host
 * is shown as one: with the host forgotten, a password of digits alone (redis://default:1234, host
 * default and port 1234) or the part of a password after its last `@`.
 */
export function redactUrl(url: string): string {
  const schemeAlone = `${SCHEME_AND_SLASHES.exec(url)?.[0] ?? ''}***`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return schemeAlone;
  }
  if (parsed.host === '' || `${parsed.pathname}${parsed.search}${parsed.hash}`.includes('@')) return schemeAlone;
  // The parser writes ? and # back whenever the URL has a query or fragment, even an empty one.
  const { href } = parsed;
  const hash = href.indexOf('#');
  const query = href.indexOf('?');
  return (
    `${parsed.protocol}//${url.includes('@') ? '***@' : ''}${parsed.host}` +
    `${DATABASE_PATH.test(parsed.pathname) ? parsed.pathname : '/***'}` +
    `${query !== -1 && (hash === -1 || query < hash) ? '?***' : ''}${hash !== -1 ? '#***' : ''}`
  );
}

function decodes(text: string): boolean {
  try {
    decodeURIComponent(text);
    return true;
  } catch {
    return false;
  }
}

function readRedis(env: Environment): RedisConfig {
  const url = readString(env, 'REDIS_URL', 'redis://127.0.0.1:6379');
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (
    !parsed ||
    !['redis:', 'rediss:'].includes(parsed.protocol) ||
    !parsed.hostname ||
    !DATABASE_PATH.test(parsed.pathname) ||
    // An @ past the host: a password with ? or # unescaped, which made its tail a query or fragment
    // and its head the host and port.
    (parsed.search + parsed.hash).includes('@') ||
    // node-redis decodes both and would fail on a stray % at connect time, with a message about URIs.
    !decodes(parsed.username) ||
    !decodes(parsed.password)
  ) {
    throw new ConfigError(
      'REDIS_URL',
      redactUrl(url),
      'a URL like redis://[user:password@]host[:port][/db] or rediss://… for TLS ' +
        '(in the password, write / ? # % as %2F %3F %23 %25)',
    );
  }
  if (/[?#]/.test(url)) {
    // node-redis reads neither (a ?password=… there would be dropped without a word); in a parsed URL any
    // ? or # starts one, a password's unescaped included.
    throw new ConfigError(
      'REDIS_URL',
      redactUrl(url),
      'a URL with no ?query or #fragment, which node-redis ignores: redis://[user:password@]host[:port][/db] ' +
        '(in the password, write / ? # % as %2F %3F %23 %25)',
    );
  }
  const topology = readTopology(env);
  const keyPrefix = readString(env, 'REDIS_KEY_PREFIX', 'sess:');
  if (topology?.kind === 'cluster') {
    // A Cluster has database 0 only (SELECT is refused there).
    if (!/^(\/0?)?$/.test(parsed.pathname)) {
      throw new ConfigError(
        'REDIS_URL',
        redactUrl(url),
        'no database but 0 with REDIS_CLUSTER_NODES (a Redis Cluster has database 0 only); there REDIS_URL ' +
          'gives only the user, password and rediss:// for TLS, e.g. rediss://user:password@cluster',
      );
    }
    // A {…} in the prefix would be every key's hash tag: all sessions in one slot, on one master.
    if (/[{}]/.test(keyPrefix)) {
      throw new ConfigError(
        'REDIS_KEY_PREFIX',
        keyPrefix,
        'no { or } with REDIS_CLUSTER_NODES: in a Cluster a {…} in every key puts all sessions in one hash slot',
      );
    }
  }
  return {
    url,
    ...(topology ? { topology } : {}),
    keyPrefix,
    connectTimeoutMs: readDuration(env, 'REDIS_CONNECT_TIMEOUT', 5_000),
    commandTimeoutMs: readDuration(env, 'REDIS_COMMAND_TIMEOUT', 1_000),
  };
}

/** host:port (an IPv6 address in brackets: [::1]:7000). */
const NODE_ADDRESS = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+)):(\d{1,5})$/;

/** A comma-separated list of host:port, each once; undefined when the variable is unset or blank. */
function readNodeList(env: Environment, name: string): { text: string; nodes: RedisNodeAddress[] } | undefined {
  const text = readOptionalString(env, name);
  if (text === undefined) return undefined;
  const nodes: RedisNodeAddress[] = [];
  for (const entry of text.split(',').map((part) => part.trim())) {
    const match = NODE_ADDRESS.exec(entry);
    const port = Number(match?.[3]);
    const host = match?.[1] ?? match?.[2];
    if (!match || !host || port < 1 || port > 65_535) {
      throw new ConfigError(
        name,
        text,
        'a comma-separated list of host:port (port 1 to 65535), e.g. 10.0.0.1:7000,10.0.0.2:7000',
      );
    }
    if (nodes.some((node) => node.host === host && node.port === port)) {
      throw new ConfigError(name, text, `each host:port once (${entry} is there twice)`);
    }
    nodes.push({ host, port });
  }
  return { text, nodes };
}

function readTopology(env: Environment): RedisTopology | undefined {
  const cluster = readNodeList(env, 'REDIS_CLUSTER_NODES');
  const sentinel = readNodeList(env, 'REDIS_SENTINEL_NODES');
  const masterName = readOptionalString(env, 'REDIS_SENTINEL_MASTER');
  if (cluster && sentinel) {
    throw new ConfigError(
      'REDIS_SENTINEL_NODES',
      sentinel.text,
      'not together with REDIS_CLUSTER_NODES: set the one for your deployment, a Redis Cluster or Sentinels',
    );
  }
  if (sentinel && masterName === undefined) {
    throw new ConfigError(
      'REDIS_SENTINEL_MASTER',
      '',
      'required with REDIS_SENTINEL_NODES: the name the Sentinels monitor the master under (sentinel monitor <name> ...)',
    );
  }
  if (masterName !== undefined && !sentinel) {
    throw new ConfigError('REDIS_SENTINEL_MASTER', masterName, 'only together with REDIS_SENTINEL_NODES');
  }
  if (masterName !== undefined && /\s/.test(masterName)) {
    throw new ConfigError('REDIS_SENTINEL_MASTER', masterName, 'a master name as Sentinel knows it: no spaces');
  }
  if (cluster) return { kind: 'cluster', nodes: cluster.nodes };
  if (sentinel && masterName !== undefined) return { kind: 'sentinel', nodes: sentinel.nodes, masterName };
  return undefined;
}

/** A setting as the operator wrote it, or its default in milliseconds, for messages that compare two. */
function shown(env: Environment, name: string, valueMs: number): string {
  return env[name]?.trim() || `${valueMs}ms, the default`;
}

function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (child !== null && typeof child === 'object') deepFreeze(child);
  }
  return Object.freeze(value);
}

/**
 * Parses and validates every setting; throws ConfigError on the first bad one. `earlierWarnings`
 * (what readEnvironment found in the .env file) lead the config's own warnings.
 */
export function loadConfig(env: Environment, earlierWarnings: readonly string[] = []): Config {
  const nodeEnv = env.NODE_ENV?.trim() ?? '';
  const production = nodeEnv !== '' && !DEVELOPMENT_ENVIRONMENTS.includes(nodeEnv);
  const warnings: string[] = [...earlierWarnings];
  const store = readChoice(env, 'SESSION_STORE', 'memory', STORE_KINDS);
  const config: Config = {
    production,
    warnings,
    http: {
      host: readString(env, 'HOST', '127.0.0.1'),
      port: readInteger(env, 'PORT', 8199, 0, 65_535),
      trustProxy: readBoolean(env, 'TRUST_PROXY', false),
      headersTimeoutMs: readDuration(env, 'HTTP_HEADERS_TIMEOUT', 10_000),
      requestTimeoutMs: readDuration(env, 'HTTP_REQUEST_TIMEOUT', 30_000),
      // Node waits 1 s past it before closing an idle connection, in one timer that must fit as well.
      keepAliveTimeoutMs: readDuration(env, 'HTTP_KEEP_ALIVE_TIMEOUT', 5_000, {
        maxMs: 2 ** 31 - 1 - 1_000,
        maxReason: 'Node waits 1 s more than this, in a timer that can wait at most 2147483647 ms',
      }),
      // A drain is for a load balancer to move away: production only by default (npm run dev restarts at once).
      shutdownDrainMs: readDuration(env, 'SHUTDOWN_DRAIN', production ? 5_000 : 0, { allowZero: true }),
      shutdownTimeoutMs: readDuration(env, 'SHUTDOWN_TIMEOUT', 9_000),
    },
    log: {
      level: readChoice(env, 'LOG_LEVEL', 'info', LOG_LEVELS),
      format: readChoice(env, 'LOG_FORMAT', 'auto', LOG_FORMATS),
    },
    session: {
      store,
      maxAgeMs: readDuration(env, 'SESSION_MAX_AGE', 60_000),
      maxLifetimeMs: readDuration(env, 'SESSION_MAX_LIFETIME', null),
      maxEntries: readInteger(env, 'SESSION_MAX_ENTRIES', 100_000, 1, 100_000_000),
      ...readSessionKeys(env, production, warnings),
      maxPerUser: readInteger(env, 'SESSION_MAX_PER_USER', 50, 1, 1_000),
      header: readSessionHeader(env),
      cookie: readCookie(env),
    },
    redis: store === 'redis' ? readRedis(env) : null,
    sqlite: store === 'sqlite' ? { file: readString(env, 'SESSION_SQLITE_FILE', 'data/sessions.db') } : null,
  };
  if (config.http.requestTimeoutMs < config.http.headersTimeoutMs) {
    // Node refuses a request timeout shorter than the headers timeout.
    throw new ConfigError(
      'HTTP_REQUEST_TIMEOUT',
      shown(env, 'HTTP_REQUEST_TIMEOUT', config.http.requestTimeoutMs),
      `at least HTTP_HEADERS_TIMEOUT (${shown(env, 'HTTP_HEADERS_TIMEOUT', config.http.headersTimeoutMs)})`,
    );
  }
  if (config.http.shutdownDrainMs >= config.http.shutdownTimeoutMs) {
    // The drain is part of the shutdown deadline; in-flight requests need time after it.
    throw new ConfigError(
      'SHUTDOWN_DRAIN',
      shown(env, 'SHUTDOWN_DRAIN', config.http.shutdownDrainMs),
      `less than SHUTDOWN_TIMEOUT (${shown(env, 'SHUTDOWN_TIMEOUT', config.http.shutdownTimeoutMs)})`,
    );
  }
  return deepFreeze(config);
}

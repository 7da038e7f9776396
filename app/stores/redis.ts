/**
 * Sessions in Redis, shared by every instance of the app and kept across restarts: the way to run
 * more than one process (GoFrame offers the same through its Redis storages).
 *
 * Each call is one round trip: GETEX reads and renews the TTL (sliding expiry), SET … NX creates,
 * SET … XX updates, DEL destroys. Every key carries a TTL in Redis itself, so idle sessions expire
 * even when no instance is running.
 *
 * Deadlines. node-redis times a command out only while it is not yet written to the socket, never
 * after, so a stalled Redis (paused, swapped out, a network black hole) would hold a call forever
 * (that timeout is off, see createRedisClient). Every call races a timer of REDIS_COMMAND_TIMEOUT
 * instead and fails with StoreUnavailableError when it fires. Replies come back in order on a connection, so a
 * command that got no answer in time means everything behind it is stuck too: the connection is
 * recycled (the client is destroyed, which fails everything pending on it at once) and a fresh one
 * is opened in the background, with its own deadline and a backoff between attempts (node-redis's
 * own reconnection is turned off: a fresh client per connection is the one clean way it offers to
 * drop a socket). While there is no ready connection calls fail at once, never queue, and a counter
 * bounds the calls in flight. Outage and recovery are logged once each, both at warn (the requests
 * answered 503 meanwhile are counted, not logged one by one: app/log-summary.ts).
 *
 * health() is not held to that bound: /healthz must report whether Redis answers, not how busy the
 * app is (a load balancer would take a busy but healthy instance out). It sends one PING at a time,
 * past the bound, and health checks that come while it is under way share its answer.
 */
import { createClient } from 'redis';
import { redactUrl, StartupError } from '../../config/index.ts';
import { flushLogSummaries } from '../log-summary.ts';
import type { Logger } from '../logger.ts';
import { RedisUsers } from './redis-users.ts';
import { type SessionStore, type StoreHealth, StoreUnavailableError } from './store.ts';

export interface RedisStoreOptions {
  readonly url: string;
  readonly keyPrefix: string;
  /** Deadline of each (re)connection attempt: TCP connect, handshake and a PING. */
  readonly connectTimeoutMs: number;
  /** Deadline of each store call, from the call to its answer. */
  readonly commandTimeoutMs: number;
  readonly logger: Logger;
  /** The most calls waiting for Redis at once; past it, calls fail at once. */
  readonly maxInFlight?: number;
}

const DEFAULT_MAX_IN_FLIGHT = 1_000;
/** Delays between reconnection attempts grow from the first to the last. */
const FIRST_RECONNECT_DELAY_MS = 50;
const MAX_RECONNECT_DELAY_MS = 2_000;

function createRedisClient(options: RedisStoreOptions) {
  return createClient({
    url: options.url,
    socket: { connectTimeout: options.connectTimeoutMs, reconnectStrategy: false },
    disableOfflineQueue: true,
    // node-redis's own timeout (5 s by default) is off: each command would get an AbortSignal.timeout()
    // and a listener (measured with npm run profile: 12 µs of CPU per request, a third of what the Redis
    // store costs the app), and it only covers a command not yet written to the socket. Every call has a
    // deadline of its own here (withDeadline), from the call to the answer.
    commandOptions: { timeout: 0 },
  });
}
type Client = ReturnType<typeof createRedisClient>;

function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)) || 'no answer';
}

/**
 * Runs `work` against a deadline: past it, rejects with `timeoutError()`, then calls `afterTimeout`
 * (after, so that what it does to `work` cannot win the race).
 */
async function withDeadline<T>(
  work: Promise<T>,
  ms: number,
  timeoutError: () => Error,
  afterTimeout?: () => void,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(timeoutError());
      afterTimeout?.();
    }, ms);
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Opens a client and proves it answers (PING) within the deadline; destroys it otherwise. The
 * deadline matters: a paused Redis still accepts TCP connections (the kernel does) but never
 * completes the handshake.
 */
async function openClient(
  options: RedisStoreOptions,
  onError: (client: Client, error: Error) => void,
  onCreated?: (client: Client) => void,
): Promise<Client> {
  const client = createRedisClient(options);
  // node-redis emits 'error' for every failure; without a listener it would crash the process.
  client.on('error', (error: Error) => onError(client, error));
  onCreated?.(client);
  const ready = client.connect().then(() => client.ping());
  try {
    await withDeadline(ready, options.connectTimeoutMs, () => new Error('timed out'));
    return client;
  } catch (error) {
    ready.catch(() => {}); // settles (rejects) once destroyed below
    client.destroy();
    throw error;
  }
}

export class RedisStore implements SessionStore {
  readonly kind = 'redis';
  /** Users' signed-in sessions (redis-users.ts): one script per call, through #run like every call. */
  readonly users: RedisUsers;
  readonly #options: RedisStoreOptions;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  readonly #maxInFlight: number;
  readonly #logger: Logger;
  /** The connection calls use; undefined while there is none ready. */
  #client: Client | undefined;
  /** A connection being opened in the background, if any. */
  #opening: Client | undefined;
  #reconnecting = false;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #inFlight = 0;
  /** The health check's PING under way, if any: the checks that come meanwhile share it. */
  #healthCheck: Promise<StoreHealth> | undefined;
  #down = false;
  #closed = false;

  private constructor(client: Client, options: RedisStoreOptions) {
    this.#options = options;
    this.#prefix = options.keyPrefix;
    this.#timeoutMs = options.commandTimeoutMs;
    this.#maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    this.#logger = options.logger;
    this.#client = client;
    this.users = new RedisUsers((command) => this.#run(command), options.keyPrefix);
  }

  /** Connects, or throws a StartupError naming REDIS_URL if Redis does not answer in time. */
  static async connect(options: RedisStoreOptions): Promise<RedisStore> {
    let lastError: Error | undefined;
    let store: RedisStore | undefined;
    const onError = (client: Client, error: Error) => {
      // After start, an error means the connection is lost (node-redis does not reconnect it).
      if (store) store.#recycle(client, messageOf(error));
      else lastError = error;
    };
    let client: Client;
    try {
      client = await openClient(options, onError);
    } catch (error) {
      const reason = messageOf(lastError ?? error);
      throw new StartupError(
        'REDIS_URL',
        `REDIS_URL=${JSON.stringify(redactUrl(options.url))}: ` +
          `Redis did not answer within ${options.connectTimeoutMs} ms (${reason})`,
      );
    }
    store = new RedisStore(client, options);
    return store;
  }

  /** The number of calls waiting for Redis now, the health check's PING aside (for tests and diagnostics). */
  get inFlight(): number {
    return this.#inFlight;
  }

  async get(id: string, ttlMs: number): Promise<string | undefined> {
    const key = this.#prefix + id;
    const text = await this.#run((client) =>
      client.getEx(key, { type: 'PX', value: ttlMs }).catch((error: unknown) => {
        // A key of another type is not a session: it reads as invalid text, not as an outage.
        if (error instanceof Error && error.message.startsWith('WRONGTYPE')) return '';
        throw error;
      }),
    );
    return text ?? undefined;
  }

  async create(id: string, text: string, ttlMs: number): Promise<boolean> {
    const key = this.#prefix + id;
    const reply = await this.#run((client) =>
      client.set(key, text, { expiration: { type: 'PX', value: ttlMs }, condition: 'NX' }),
    );
    return reply === 'OK';
  }

  async update(id: string, text: string, ttlMs: number): Promise<boolean> {
    const key = this.#prefix + id;
    const reply = await this.#run((client) =>
      client.set(key, text, { expiration: { type: 'PX', value: ttlMs }, condition: 'XX' }),
    );
    return reply === 'OK';
  }

  async destroy(id: string): Promise<boolean> {
    const key = this.#prefix + id;
    return (await this.#run((client) => client.del(key))) > 0;
  }

  /**
   * A PING under the same deadline as every call, but not refused by the bound on calls in flight (one
   * at a time, shared by concurrent checks). Answers { ok: false } rather than throwing, so that
   * /healthz can still say what is wrong; the reason is in the log (this object is public).
   */
  health(): Promise<StoreHealth> {
    this.#healthCheck ??= this.#ping().finally(() => (this.#healthCheck = undefined));
    return this.#healthCheck;
  }

  async #ping(): Promise<StoreHealth> {
    try {
      await this.#run((client) => client.ping(), { bounded: false });
      return { ok: true, reachable: true };
    } catch {
      return { ok: false, reachable: false };
    }
  }

  async close(): Promise<void> {
    // The 503s counted since the last summary line: the shutdown's next step is the exit.
    flushLogSummaries(this.#logger);
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    this.#opening?.destroy();
    const client = this.#client;
    this.#client = undefined;
    if (!client) return;
    if (!client.isReady) {
      client.destroy();
      return;
    }
    // close() lets commands already sent finish, but a stalled Redis never answers them.
    const closing = client.close();
    try {
      await withDeadline(closing, this.#timeoutMs, () => new Error('close timed out'));
    } catch {
      client.destroy();
    }
  }

  /**
   * Runs one command on the current connection, within the deadline. Every failure (no connection,
   * too many calls in flight, deadline, lost connection, error reply) is a StoreUnavailableError.
   * Unless `bounded` is false (the health check's one PING), the call counts against the bound on
   * calls in flight.
   */
  async #run<T>(command: (client: Client) => Promise<T>, { bounded = true } = {}): Promise<T> {
    const client = this.#client;
    if (this.#closed) throw new StoreUnavailableError('redis store is closed');
    if (!client?.isReady) {
      if (client) this.#recycle(client, 'connection lost');
      else this.#reconnect();
      throw new StoreUnavailableError('redis is not connected');
    }
    if (bounded) {
      if (this.#inFlight >= this.#maxInFlight) {
        throw new StoreUnavailableError(`redis has ${this.#inFlight} calls in flight already`);
      }
      this.#inFlight++;
    }
    try {
      return await withDeadline(
        command(client),
        this.#timeoutMs,
        () => new StoreUnavailableError(`redis command failed: no answer within ${this.#timeoutMs} ms`),
        () => this.#recycle(client, `no answer within ${this.#timeoutMs} ms`),
      );
    } catch (error) {
      if (error instanceof StoreUnavailableError) throw error;
      throw new StoreUnavailableError(`redis command failed: ${messageOf(error)}`, { cause: error });
    } finally {
      if (bounded) this.#inFlight--;
    }
  }

  /** Drops a connection that stalled or died, failing what is pending on it, and opens a new one. */
  #recycle(client: Client, reason: string): void {
    if (client !== this.#client) return; // already recycled
    this.#client = undefined;
    client.destroy();
    this.#markDown(reason);
    this.#reconnect();
  }

  /** Opens a new connection in the background, retrying with backoff until one is ready or the store closes. */
  #reconnect(): void {
    if (this.#reconnecting || this.#closed || this.#client) return;
    this.#reconnecting = true;
    let attempt = 0;
    const tryOnce = async () => {
      this.#reconnectTimer = undefined;
      if (this.#closed) return;
      try {
        const client = await openClient(
          this.#options,
          (failed, error) => this.#recycle(failed, messageOf(error)),
          (opening) => (this.#opening = opening),
        );
        this.#opening = undefined;
        if (this.#closed) {
          client.destroy();
          return;
        }
        this.#client = client;
        this.#reconnecting = false;
        this.#markUp();
      } catch (error) {
        this.#opening = undefined;
        if (this.#closed) return;
        this.#markDown(messageOf(error));
        const delay = Math.min(FIRST_RECONNECT_DELAY_MS * 2 ** attempt++, MAX_RECONNECT_DELAY_MS);
        this.#reconnectTimer = setTimeout(() => void tryOnce(), delay).unref();
      }
    };
    void tryOnce();
  }

  #markDown(reason: string): void {
    if (this.#down || this.#closed) return;
    this.#down = true;
    this.#logger.warn(
      { url: redactUrl(this.#options.url), err: reason },
      'redis unreachable; session requests answer 503 until it is back',
    );
  }

  /** At the outage's level (warn), so that a log kept at warn shows its end too. */
  #markUp(): void {
    if (!this.#down) return;
    this.#down = false;
    flushLogSummaries(this.#logger); // the outage's 503s, before the line that ends it
    this.#logger.warn({ url: redactUrl(this.#options.url) }, 'redis reachable again');
  }
}

/**
 * Sessions in Redis, shared by every instance of the app and kept across restarts: the way to run
 * more than one process (GoFrame offers the same through its Redis storages).
 *
 * Same contract and behaviour as the memory store: a JSON copy per session, sliding idle expiry,
 * `destroy` deletes the key. Every key carries a TTL in Redis itself, so idle sessions expire even
 * when no instance is running. A read is one round trip: GETEX reads the value and renews its TTL.
 *
 * When Redis is unreachable or slow, commands fail fast instead of piling up: no offline queue
 * (commands are refused while reconnecting), a timeout on every command, and a bounded queue. Each
 * failure surfaces as StoreUnavailableError, which the app answers with a 503. The client keeps
 * reconnecting in the background, so service comes back by itself.
 */
import { createClient } from 'redis';
import { redactUrl, StartupError } from '../../config/index.ts';
import type { Logger } from '../logger.ts';
import { idleLifetimeMs, type MaxAge, type SessionStore, type StoreHealth, type StoredSession, StoreUnavailableError } from './store.ts';

export interface RedisStoreOptions {
  readonly url: string;
  readonly keyPrefix: string;
  readonly defaultMaxAgeMs: number;
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
  readonly logger: Logger;
}

/** The most commands waiting for Redis at once; past it, requests get a 503 rather than a queue. */
const MAX_QUEUED_COMMANDS = 10_000;
/** Reconnect delays grow from 50 ms to this. */
const MAX_RECONNECT_DELAY_MS = 2_000;

function createRedisClient(options: RedisStoreOptions) {
  return createClient({
    url: options.url,
    socket: {
      connectTimeout: options.connectTimeoutMs,
      reconnectStrategy: (retries) => Math.min(50 * 2 ** retries, MAX_RECONNECT_DELAY_MS),
    },
    disableOfflineQueue: true,
    commandsQueueMaxLength: MAX_QUEUED_COMMANDS,
    commandOptions: { timeout: options.commandTimeoutMs },
  });
}
type Client = ReturnType<typeof createRedisClient>;

export class RedisStore implements SessionStore {
  readonly kind = 'redis';
  readonly #client: Client;
  readonly #prefix: string;
  readonly #defaultMaxAgeMs: number;

  private constructor(client: Client, options: RedisStoreOptions) {
    this.#client = client;
    this.#prefix = options.keyPrefix;
    this.#defaultMaxAgeMs = options.defaultMaxAgeMs;
  }

  /** Connects, or throws a StartupError naming REDIS_URL if Redis does not answer in time. */
  static async connect(options: RedisStoreOptions): Promise<RedisStore> {
    const { logger } = options;
    let lastError: Error | undefined;
    let connected = false;
    let reportedDown = false;
    const client = createRedisClient(options);
    // node-redis emits 'error' on every failed (re)connect; log state changes, not each retry.
    client.on('error', (error: Error) => {
      lastError = error;
      if (connected && !reportedDown) {
        reportedDown = true;
        logger.warn('redis unreachable; session requests answer 503 until it is back', { err: error.message });
      }
    });
    client.on('ready', () => {
      if (reportedDown) logger.info('redis reachable again');
      reportedDown = false;
    });

    const redacted = redactUrl(options.url);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timeout')), options.connectTimeoutMs);
    });
    try {
      await Promise.race([client.connect().then(() => client.ping()), timedOut]);
    } catch (error) {
      client.destroy();
      const reason = (lastError ?? (error instanceof Error ? error : new Error(String(error)))).message || 'no answer';
      throw new StartupError(
        'REDIS_URL',
        `REDIS_URL=${JSON.stringify(redacted)}: Redis did not answer within ${options.connectTimeoutMs} ms (${reason})`,
      );
    } finally {
      clearTimeout(timer);
    }
    connected = true;
    return new RedisStore(client, options);
  }

  async get(id: string, maxAge?: MaxAge): Promise<StoredSession | undefined> {
    const ttl = idleLifetimeMs(maxAge, this.#defaultMaxAgeMs);
    const json = await this.#run(() => this.#client.getEx(this.#prefix + id, { type: 'PX', value: ttl }));
    return json === null ? undefined : (JSON.parse(json) as StoredSession);
  }

  async set(id: string, session: StoredSession, maxAge?: MaxAge): Promise<void> {
    const ttl = idleLifetimeMs(maxAge, this.#defaultMaxAgeMs);
    await this.#run(() => this.#client.set(this.#prefix + id, JSON.stringify(session), { expiration: { type: 'PX', value: ttl } }));
  }

  async destroy(id: string): Promise<void> {
    await this.#run(() => this.#client.del(this.#prefix + id));
  }

  async health(): Promise<StoreHealth> {
    if (!this.#client.isReady) return { ok: false, reachable: false };
    try {
      await this.#run(() => this.#client.ping());
      return { ok: true, reachable: true };
    } catch {
      return { ok: false, reachable: false };
    }
  }

  async close(): Promise<void> {
    // close() lets commands already sent finish; when Redis is gone there is nothing to wait for.
    if (this.#client.isReady) await this.#client.close();
    else this.#client.destroy();
  }

  /** Runs a command; any failure (offline, timeout, full queue, error reply) becomes StoreUnavailableError. */
  async #run<T>(command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new StoreUnavailableError(`redis command failed: ${reason}`, { cause: error });
    }
  }
}

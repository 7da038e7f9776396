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
 *
 * Deployments (config/'s RedisTopology). One server: the above. Sentinel: node-redis's Sentinel client
 * finds the master through the Sentinels and follows it (a READONLY reply from a demoted master makes it
 * ask them again and retry); to the store it is one connection like a server's, recycled the same way
 * when it stalls or is not ready (mid-failover, say): a fresh one asks the Sentinels afresh. Cluster:
 * node-redis's cluster client keeps a connection per master and follows MOVED and ASK; it never
 * replaces a node's connection that stops answering or dies, and re-reads the topology only on MOVED
 * or ASK, which a dead master never sends. So a call that misses its deadline or loses its connection
 * starts a repair instead of a recycle: the topology is read again (a failover shows there), every master
 * is sent a PING within the command deadline, and the connection of each one that does not answer is
 * dropped (node-redis opens a fresh one on the next use); repeated with backoff until every master
 * answers. Calls to the other masters go on meanwhile. The node connections of both carry a socket
 * timeout of half of REDIS_CONNECT_TIMEOUT, kept from firing on an idle connection by a PING every
 * quarter of it: without it node-redis waits forever for a stalled node's handshake when it looks up a
 * Cluster's topology (and every later lookup waits behind that one) or a Sentinel's master.
 */
import { createClient, createCluster, createSentinel, ErrorReply } from 'redis';
import { type RedisNodeAddress, type RedisTopology, redactUrl, StartupError } from '../../config/index.ts';
import { flushLogSummaries } from '../log-summary.ts';
import type { Logger } from '../logger.ts';
import { RedisUsers } from './redis-users.ts';
import { type SessionStore, type StoreHealth, StoreUnavailableError } from './store.ts';

export interface RedisStoreOptions {
  /** The server; with a Cluster or Sentinels, only its user, password, TLS (rediss://) and database count. */
  readonly url: string;
  /** A Cluster or Sentinels instead of the one server at `url` (the default). */
  readonly topology?: RedisTopology;
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
/**
 * A Cluster's repair rounds come closer: each costs a lookup and a PING per master, and calls to the
 * masters that answer go on meanwhile.
 */
const MAX_REPAIR_DELAY_MS = 500;

function createRedisClient(options: RedisStoreOptions) {
  return createClient({
    url: options.url,
    socket: { connectTimeout: options.connectTimeoutMs, reconnectStrategy: false },
    disableOfflineQueue: true,
    // node-redis's own timeout (5 s by default) is off: each command would get an AbortSignal.timeout()
    // and a listener (a large share of what the Redis store costs the app: docs/benchmark.md), and it
    // only covers a command not yet written to the socket. Every call has a deadline of its own here
    // (withDeadline), from the call to the answer.
    commandOptions: { timeout: 0 },
  });
}
type Client = ReturnType<typeof createRedisClient>;
type Cluster = ReturnType<typeof createCluster>;

/** What a URL says about connecting: for a Cluster's or a Sentinel-managed master's nodes. */
function connectionOf(url: string) {
  const parsed = new URL(url);
  const decoded = (text: string) => (text === '' ? undefined : decodeURIComponent(text));
  const database = Number(parsed.pathname.slice(1) || 0);
  return {
    username: decoded(parsed.username),
    password: decoded(parsed.password),
    ...(database === 0 ? {} : { database }),
    tls: parsed.protocol === 'rediss:',
  };
}

/**
 * The socket options of every node connection of a Cluster or Sentinels (see the top of this file): no
 * reconnection of its own (the store replaces what fails), and a connection silent for half of
 * REDIS_CONNECT_TIMEOUT is dropped, so that a lookup that meets a stalled node still has time to ask
 * another; idle connections send a PING every quarter of it (`pingInterval`, beside each use).
 */
function nodeSocket(options: RedisStoreOptions, tls: boolean) {
  return {
    connectTimeout: options.connectTimeoutMs,
    socketTimeout: Math.ceil(options.connectTimeoutMs / 2),
    reconnectStrategy: false as const,
    ...(tls ? { tls: true as const } : {}),
  };
}

/** Keeps an idle node connection from its socket timeout (see nodeSocket). */
function pingInterval(options: RedisStoreOptions): number {
  return Math.ceil(options.connectTimeoutMs / 4);
}

function createClusterClient(options: RedisStoreOptions, nodes: readonly RedisNodeAddress[]) {
  const { tls, database: _clusterHasOne, ...credentials } = connectionOf(options.url);
  return createCluster({
    rootNodes: nodes.map(({ host, port }) => ({ socket: { host, port } })),
    defaults: {
      ...credentials,
      socket: nodeSocket(options, tls),
      pingInterval: pingInterval(options),
      disableOfflineQueue: true,
    },
    // Masters only (the default): a session is read right after it is written, and a replica may lag.
    commandOptions: { timeout: 0 },
    // The store re-reads the topology itself (repair); node connections do not reconnect anyway.
    topologyRefreshOnReconnectionAttemptStrategy: false,
  });
}

function createSentinelClient(
  options: RedisStoreOptions,
  sentinels: readonly RedisNodeAddress[],
  masterName: string,
): Client {
  const { tls, ...credentials } = connectionOf(options.url);
  const sentinel = createSentinel({
    name: masterName,
    sentinelRootNodes: sentinels.map(({ host, port }) => ({ host, port })),
    // The user and password are the data nodes': Sentinels are asked without them.
    nodeClientOptions: {
      ...credentials,
      socket: nodeSocket(options, tls),
      pingInterval: pingInterval(options),
      disableOfflineQueue: true,
    },
    sentinelClientOptions: { socket: nodeSocket(options, tls), pingInterval: pingInterval(options) },
    commandOptions: { timeout: 0 },
  });
  // The master the Sentinels name, ready or not: what a start-up line names when it does not answer.
  sentinel.on('topology-change', (event: { type: string; node?: { host: string; port: number } }) => {
    if (event.type === 'MASTER_CHANGE' && event.node !== undefined) namedMasters.set(sentinel, event.node);
  });
  // The same command methods as a client's, which is all the store's calls use.
  return sentinel as unknown as Client;
}

/** Per Sentinel client, the master the Sentinels named last. */
const namedMasters = new WeakMap<object, { readonly host: string; readonly port: number }>();

/** A new, unconnected client for the deployment the options name. */
function createClientFor(options: RedisStoreOptions): Client {
  const topology = options.topology;
  switch (topology?.kind) {
    case undefined:
      return createRedisClient(options);
    case 'cluster':
      // The same command methods as a client's, which is all the store's calls use; they route by key.
      return createClusterClient(options, topology.nodes) as unknown as Client;
    case 'sentinel':
      return createSentinelClient(options, topology.nodes, topology.masterName);
  }
}

/** Drops a client at once, failing what is pending on it (a Sentinel client's destroy() is async). */
function drop(client: Client): void {
  Promise.resolve(client.destroy() as unknown).catch(() => {});
}

/** How messages and logs name the deployment, password hidden. */
function shownAs(options: RedisStoreOptions) {
  const topology = options.topology;
  const list = (nodes: readonly RedisNodeAddress[]) =>
    nodes.map(({ host, port }) => `${host.includes(':') ? `[${host}]` : host}:${port}`).join(',');
  switch (topology?.kind) {
    case undefined:
      return {
        setting: 'REDIS_URL',
        shown: redactUrl(options.url),
        what: 'Redis',
        log: { url: redactUrl(options.url) },
      };
    case 'cluster':
      return {
        setting: 'REDIS_CLUSTER_NODES',
        shown: list(topology.nodes),
        what: 'Redis Cluster',
        log: { clusterNodes: list(topology.nodes) },
      };
    case 'sentinel':
      return {
        setting: 'REDIS_SENTINEL_NODES',
        shown: list(topology.nodes),
        what: `Redis Sentinel (master ${topology.masterName})`,
        log: { sentinelNodes: list(topology.nodes), sentinelMaster: topology.masterName },
      };
  }
}

/** An error reply that says nothing about the connection or the topology (OOM, say): no repair for it. */
function isPlainErrorReply(error: unknown): boolean {
  return (
    error instanceof ErrorReply &&
    !/^(CLUSTERDOWN|TRYAGAIN|MOVED|ASK|LOADING|MASTERDOWN|READONLY)\b/.test(error.message)
  );
}

/**
 * A Cluster's repair round: the topology read again (a failover shows there, for the next round;
 * bounded by the socket timeout per node asked), and a PING to every master within the command
 * deadline. A master that does not answer loses its connection: node-redis opens a fresh one on the
 * next use (it never replaces one itself). Returns what failed, one line per master.
 */
async function checkMasters(cluster: Cluster, options: RedisStoreOptions): Promise<string[]> {
  // Both at once: a lookup that meets a stalled node waits for the socket timeout.
  const lookup = withDeadline(cluster._slots.rediscover(), options.connectTimeoutMs, () => new Error('timed out'));
  lookup.catch(() => {});
  const failures = await Promise.all(
    cluster.masters.map(async (node) => {
      try {
        await withDeadline(
          cluster.nodeClient(node).then((client) => client.ping()),
          options.commandTimeoutMs,
          () => new Error(`no answer within ${options.commandTimeoutMs} ms`),
        );
        return undefined;
      } catch (error) {
        const client = node.client;
        node.client = undefined;
        node.connectPromise = undefined;
        client?.destroy();
        return `${node.address}: ${messageOf(error)}`;
      }
    }),
  );
  return failures.filter((failure) => failure !== undefined);
}

/**
 * PING every master a Cluster client knows (a Cluster answers only when every master does); a PING for
 * any other client. Each failing master's name leads the error.
 */
async function pingEveryMaster(client: Client, options: RedisStoreOptions): Promise<void> {
  if (options.topology?.kind !== 'cluster') {
    await client.ping();
    return;
  }
  const cluster = client as unknown as Cluster;
  await Promise.all(
    cluster.masters.map((node) =>
      cluster
        .nodeClient(node)
        .then((nodeClient) => nodeClient.ping())
        .catch((error: unknown) => {
          throw new Error(`${node.address}: ${messageOf(error)}`);
        }),
    ),
  );
}

function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)) || 'no answer';
}

/**
 * Runs `work` against a deadline: past it, rejects with `timeoutError()`, then calls `afterTimeout`
 * (after, so that what it does to `work` cannot win the race).
 *
 * A deadline counts the time Redis was given, not the app's own lateness. On a busy process the timer
 * can fire long after it was due, in the same turn of the event loop as an answer that arrived in time
 * (timers run before the socket is read), or before node-redis has even written the command (it
 * writes on the next turn). So: the deadline takes effect one step later (setImmediate runs after the
 * poll phase, where Node reads what has arrived), and a timer that fired late by more than half the
 * deadline gives the call one more deadline from then. A Redis that does not answer still fails the
 * call, within twice the deadline plus the process's own delay.
 */
async function withDeadline<T>(
  work: Promise<T>,
  ms: number,
  timeoutError: () => Error,
  afterTimeout?: () => void,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let settled = false;
  const expired = new Promise<never>((_, reject) => {
    const arm = (mayExtend: boolean) => {
      const due = performance.now() + ms;
      timer = setTimeout(() => {
        if (mayExtend && performance.now() - due > ms / 2) return arm(false);
        setImmediate(() => {
          if (settled) return;
          reject(timeoutError());
          afterTimeout?.();
        });
      }, ms);
    };
    arm(true);
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    settled = true;
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
  const client = createClientFor(options);
  // node-redis emits 'error' for every failure; without a listener it would crash the process.
  client.on('error', (error: Error) => onError(client, error));
  onCreated?.(client);
  const ready = client.connect().then(() => pingEveryMaster(client, options));
  try {
    await withDeadline(ready, options.connectTimeoutMs, () => new Error('timed out'));
    return client;
  } catch (error) {
    ready.catch(() => {}); // settles (rejects) once destroyed below
    const silent = silentMasters(client, options);
    drop(client);
    throw silent === undefined ? error : Object.assign(asError(error), { silentMasters: silent });
  }
}

/**
 * A Cluster's masters, or the master Sentinels named, that were found but did not answer, as host:port:
 * which node the start-up line must name when the seeds or the Sentinels did answer. Undefined if none.
 */
function silentMasters(client: Client, options: RedisStoreOptions): string | undefined {
  let silent: string[] = [];
  if (options.topology?.kind === 'cluster') {
    const cluster = client as unknown as Cluster;
    silent = cluster.masters.filter((node) => !node.client?.isReady).map((node) => node.address);
  } else if (options.topology?.kind === 'sentinel') {
    const master = namedMasters.get(client);
    if (master !== undefined) silent = [`${master.host}:${master.port}`];
  }
  return silent.length > 0 ? silent.join(', ') : undefined;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
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
  /** A Cluster's repair under way (see the top of this file), and its next round. */
  #repairing = false;
  #repairTimer: NodeJS.Timeout | undefined;
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

  /**
   * Connects, or throws a StartupError naming the setting (REDIS_URL, REDIS_CLUSTER_NODES,
   * REDIS_SENTINEL_NODES or REDIS_SENTINEL_MASTER) if Redis does not answer in time.
   */
  static async connect(options: RedisStoreOptions): Promise<RedisStore> {
    let lastError: unknown;
    let store: RedisStore | undefined;
    const onError = (client: Client, error: Error) => {
      if (store) store.#lost(client, error);
      else lastError = error;
    };
    let client: Client;
    try {
      client = await openClient(options, onError);
    } catch (error) {
      const silent = (error as { silentMasters?: string }).silentMasters;
      const reason = `${silent === undefined ? '' : `no answer from master ${silent}: `}${messageOf(lastError ?? error)}`;
      const { setting, shown, what } = shownAs(options);
      const topology = options.topology;
      if (topology?.kind === 'sentinel' && /no such master/i.test(reason)) {
        throw new StartupError(
          'REDIS_SENTINEL_MASTER',
          `REDIS_SENTINEL_MASTER=${JSON.stringify(topology.masterName)}: ` +
            `the Sentinels at ${shown} monitor no master of that name (${reason})`,
        );
      }
      throw new StartupError(
        setting,
        `${setting}=${JSON.stringify(shown)}: ${what} did not answer within ${options.connectTimeoutMs} ms (${reason})`,
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
      await this.#run((client) => pingEveryMaster(client, this.#options), { bounded: false });
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
    clearTimeout(this.#repairTimer);
    if (this.#opening) drop(this.#opening);
    const client = this.#client;
    this.#client = undefined;
    if (!client) return;
    if (!client.isReady) {
      drop(client);
      return;
    }
    // close() lets commands already sent finish, but a stalled Redis never answers them.
    const closing = client.close();
    try {
      await withDeadline(closing, this.#timeoutMs, () => new Error('close timed out'));
    } catch {
      drop(client);
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
        () => this.#stalled(client, `no answer within ${this.#timeoutMs} ms`),
      );
    } catch (error) {
      if (error instanceof StoreUnavailableError) throw error;
      if (this.#options.topology?.kind === 'cluster' && !isPlainErrorReply(error)) this.#repair();
      throw new StoreUnavailableError(`redis command failed: ${messageOf(error)}`, { cause: error });
    } finally {
      if (bounded) this.#inFlight--;
    }
  }

  /**
   * A call got no answer in time: the connection is recycled; with a Cluster, only the connections of
   * the masters that do not answer are (a repair).
   */
  #stalled(client: Client, reason: string): void {
    if (this.#options.topology?.kind === 'cluster') this.#repair();
    else this.#recycle(client, reason);
  }

  /**
   * node-redis reported an error on a client. A server's client: the connection is lost (node-redis does
   * not reconnect it). A Cluster or Sentinel client reports lookups that failed, its own retries and the
   * like, and carries on; what it cannot get over shows in calls (deadlines, repairs, not ready).
   */
  #lost(client: Client, error: Error): void {
    if (this.#options.topology === undefined) this.#recycle(client, messageOf(error));
  }

  /** Drops a connection that stalled or died, failing what is pending on it, and opens a new one. */
  #recycle(client: Client, reason: string): void {
    if (client !== this.#client) return; // already recycled
    this.#client = undefined;
    drop(client);
    this.#markDown(reason);
    this.#reconnect();
  }

  /**
   * Cluster: reads the topology again and PINGs every master (each within the command deadline), drops
   * the connection of each master that does not answer, and goes again with backoff until all answer.
   */
  #repair(): void {
    const client = this.#client;
    if (this.#repairing || this.#closed || !client) return;
    this.#repairing = true;
    const cluster = client as unknown as Cluster;
    let attempt = 0;
    const round = async () => {
      this.#repairTimer = undefined;
      if (this.#closed) return;
      const failures = await checkMasters(cluster, this.#options);
      if (this.#closed) return;
      if (failures.length === 0) {
        this.#repairing = false;
        this.#markUp();
        return;
      }
      this.#markDown(failures.join('; '));
      const delay = Math.min(FIRST_RECONNECT_DELAY_MS * 2 ** attempt++, MAX_REPAIR_DELAY_MS);
      this.#repairTimer = setTimeout(() => void round(), delay).unref();
    };
    void round();
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
          (failed, error) => this.#lost(failed, error),
          (opening) => (this.#opening = opening),
        );
        this.#opening = undefined;
        if (this.#closed) {
          drop(client);
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
      { ...shownAs(this.#options).log, err: reason },
      'redis unreachable; session requests answer 503 until it is back',
    );
  }

  /** At the outage's level (warn), so that a log kept at warn shows its end too. */
  #markUp(): void {
    if (!this.#down) return;
    this.#down = false;
    flushLogSummaries(this.#logger); // the outage's 503s, before the line that ends it
    this.#logger.warn(shownAs(this.#options).log, 'redis reachable again');
  }
}

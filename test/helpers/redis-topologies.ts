/**
 * A Redis Cluster and a Redis Sentinel deployment of a test file's own: real redis-server processes on
 * spare ports, their files (cluster configs, RDB files, Sentinel configs) in one temp folder named
 * koa-session-* that goes when they stop. Starting one takes seconds, so a test file shares one between
 * its tests (sharedCluster, sharedSentinel): started on first use, stopped after the file's last test,
 * passed or failed. A worker that dies first kills the servers on exit (test/helpers/redis.ts) and removes
 * the folders (below).
 *
 * Measured facts these set-ups rely on: with Redis 7's default diskless-sync delay (5 s) a replica may not
 * finish its first sync within a test and is then never promoted, so every node has
 * --repl-diskless-sync-delay 0; a replica's RDB file in a shared folder is loaded by the next node started
 * there, so each node has its own --dbfilename; with the timeouts below a failover takes 2 to 3 s.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Implementation, TestFn } from 'ava';
import { createClient, createCluster } from 'redis';
import { silentLogger } from '../../app/logger.ts';
import { RedisStore, type RedisStoreOptions } from '../../app/stores/redis.ts';
import type { RedisNodeAddress } from '../../config/index.ts';
import { freePort } from './process.ts';
import {
  deleteKeysWithPrefix,
  inspector,
  keysWithPrefix,
  OwnRedisServer,
  REDIS_URL,
  redisTest,
  type TestRedisClient,
  type TestRedisStoreOptions,
  uniquePrefix,
} from './redis.ts';

const run = promisify(execFile);

/** The folders of deployments not stopped yet: removed if the worker exits first. */
const liveFolders = new Set<string>();
process.once('exit', () => {
  for (const folder of liveFolders) rmSync(folder, { recursive: true, force: true });
});

function tempFolder(kind: string): string {
  const folder = mkdtempSync(join(tmpdir(), `koa-session-${kind}-`));
  liveFolders.add(folder);
  return folder;
}

function removeFolder(folder: string): void {
  rmSync(folder, { recursive: true, force: true });
  liveFolders.delete(folder);
}

/** Whether redis-server and redis-cli are on the PATH (a Cluster or Sentinel of the tests' own needs both). */
async function binariesThere(): Promise<boolean> {
  try {
    await run('redis-server', ['--version']);
    await run('redis-cli', ['--version']);
    return true;
  } catch {
    return false;
  }
}
const BINARIES_THERE = await binariesThere();
const SKIP_REASON = 'skipped: redis-server and redis-cli are not on the PATH (install Redis to run this; .ci/run does)';

/** ava's test, or test.skip with the reason in the title when redis-server or redis-cli is missing. */
export function topologyTest(test: TestFn): TestFn {
  if (BINARIES_THERE) return test;
  const skipWithReason = (title: string, implementation: Implementation<unknown[]>) =>
    test.skip(`${title} (${SKIP_REASON})`, implementation);
  return Object.assign(skipWithReason, test) as unknown as TestFn;
}

/**
 * A plain client for looking at a node, that gives up rather than waits: connected within `timeoutMs` or
 * an error, no reconnection, no queueing while disconnected. (A test that fails with a node paused or
 * killed must fail, not hang in its clean-up.)
 */
export async function boundedClient(url: string, timeoutMs = 10_000): Promise<TestRedisClient> {
  const client = createClient({
    url,
    socket: { connectTimeout: timeoutMs, reconnectStrategy: false },
    disableOfflineQueue: true,
  });
  client.on('error', () => {});
  const connecting = client.connect();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      connecting,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${url}: no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return client as unknown as TestRedisClient;
  } catch (error) {
    connecting.catch(() => {});
    client.destroy();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** One reply of a plain client to a node (on 127.0.0.1), as text. */
export async function ask(port: number, ...command: string[]): Promise<string> {
  const client = await boundedClient(`redis://127.0.0.1:${port}`);
  try {
    return String(await client.sendCommand(command));
  } finally {
    client.destroy();
  }
}

/** `field:value` lines (INFO, CLUSTER INFO) as a map. */
function fields(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) map.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return map;
}

/** Polls `check` (false or a reason while not there yet) until it is true, for at most `timeoutMs`. */
async function until(what: string, check: () => Promise<true | string>, timeoutMs = 30_000): Promise<void> {
  const started = performance.now();
  let last = 'not checked yet';
  while (performance.now() - started < timeoutMs) {
    try {
      const result = await check();
      if (result === true) return;
      last = result;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await sleep(50);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms (${last})`);
}

/** The cluster-node-timeout while failovers are allowed: a stopped master is failed over in 2 to 3 s. */
const NODE_TIMEOUT_MS = 1_000;
/** While failovers are held (holdFailovers): longer than any test pauses a node. */
const HELD_TIMEOUT_MS = 120_000;

/** A node of the cluster, as CLUSTER NODES describes it. */
interface ClusterNodeLine {
  readonly id: string;
  readonly port: number;
  readonly flags: readonly string[];
  readonly masterId: string;
  readonly slots: ReadonlyArray<readonly [number, number]>;
}

function parseClusterNodes(text: string): ClusterNodeLine[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [id, address, flags, masterId, , , , , ...slots] = line.trim().split(' ');
      return {
        id,
        port: Number(address.split('@')[0].split(':').pop()),
        flags: flags.split(','),
        masterId,
        slots: slots
          .filter((range) => !range.startsWith('['))
          .map((range) => {
            const [from, to = from] = range.split('-').map(Number);
            return [from, to] as const;
          }),
      };
    });
}

/**
 * A Redis Cluster of three masters, with a replica each if asked: `redis-server --cluster-enabled yes` per
 * node, then `redis-cli --cluster create`. Nodes can be paused, killed and restarted (they come back with
 * their own cluster config file, so with their identity: a killed master rejoins as a replica).
 */
export class OwnRedisCluster {
  readonly folder: string;
  readonly nodes: OwnRedisServer[] = [];
  /** The cluster bus port of each client port (Redis 7's --cluster-port, so no port + 10000 past 65535). */
  readonly #busPorts = new Map<number, number>();
  /** The cluster-node-timeout while failovers are allowed. */
  readonly #allowedTimeoutMs: number;
  #nodeTimeoutMs: number;

  private constructor(nodeTimeoutMs: number) {
    this.folder = tempFolder('cluster');
    this.#allowedTimeoutMs = nodeTimeoutMs;
    this.#nodeTimeoutMs = nodeTimeoutMs;
  }

  /**
   * `nodeTimeoutMs`: the cluster-node-timeout (NODE_TIMEOUT_MS by default, for quick failovers). The
   * benchmark, which stops no node, sets a long one: a master that misses its pings for that long under
   * load would be flagged failing, and with no replica to take over the cluster would refuse commands.
   */
  static async start(options: { replicas?: boolean; nodeTimeoutMs?: number } = {}): Promise<OwnRedisCluster> {
    const cluster = new OwnRedisCluster(options.nodeTimeoutMs ?? NODE_TIMEOUT_MS);
    try {
      await cluster.#create(options.replicas ? 1 : 0);
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  async #create(replicas: number): Promise<void> {
    for (let index = 0; index < 3 * (1 + replicas); index++) {
      this.nodes.push(new OwnRedisServer({ args: (port) => this.#nodeArgs(index, port) }));
    }
    await Promise.all(this.nodes.map((node) => node.start()));
    const addresses = this.nodes.map((node) => `127.0.0.1:${node.port}`);
    await run(
      'redis-cli',
      ['--cluster', 'create', ...addresses, '--cluster-replicas', String(replicas), '--cluster-yes'],
      {
        timeout: 60_000,
      },
    );
    await this.waitHealthy();
  }

  async #nodeArgs(index: number, port: number): Promise<string[]> {
    let bus = this.#busPorts.get(port);
    if (bus === undefined) {
      bus = await freePort();
      this.#busPorts.set(port, bus);
    }
    // node-timeout also sets how soon a restarted node's cluster state is current again.
    return [
      ...['--port', String(port), '--bind', '127.0.0.1', '--dir', this.folder],
      ...['--cluster-enabled', 'yes', '--cluster-port', String(bus), '--cluster-config-file', `nodes-${index}.conf`],
      ...['--cluster-node-timeout', String(this.#nodeTimeoutMs), '--repl-diskless-sync-delay', '0'],
      ...['--dbfilename', `dump-${index}.rdb`, '--save', '', '--appendonly', 'no'],
    ];
  }

  /** Every node's address, for REDIS_CLUSTER_NODES (any node serves as a seed). */
  get seeds(): string {
    return this.nodes.map((node) => `127.0.0.1:${node.port}`).join(',');
  }

  get rootNodes(): Array<{ url: string }> {
    return this.nodes.map((node) => ({ url: `redis://127.0.0.1:${node.port}` }));
  }

  /** The cluster as a node that answers sees it. */
  async #view(): Promise<ClusterNodeLine[]> {
    let lastError: unknown;
    for (const node of this.nodes) {
      if (!node.running || node.paused) continue;
      try {
        return parseClusterNodes(await ask(node.port, 'CLUSTER', 'NODES'));
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError ?? new Error('no node of the cluster answers');
  }

  #server(port: number): OwnRedisServer {
    const server = this.nodes.find((node) => node.port === port);
    if (!server) throw new Error(`no node on port ${port}`);
    return server;
  }

  /** The masters that serve slots now. */
  async masters(): Promise<OwnRedisServer[]> {
    const view = await this.#view();
    return view
      .filter((node) => node.flags.includes('master') && !node.flags.includes('fail') && node.slots.length > 0)
      .map((node) => this.#server(node.port));
  }

  /** The master that serves `key` now, and its replicas. */
  async shardOf(key: string): Promise<{ master: OwnRedisServer; replicas: OwnRedisServer[] }> {
    const master = (await this.masters())[0];
    const slot = Number(await ask(master.port, 'CLUSTER', 'KEYSLOT', key));
    const view = await this.#view();
    const owner = view.find(
      (node) =>
        node.flags.includes('master') &&
        !node.flags.includes('fail') &&
        node.slots.some(([from, to]) => from <= slot && slot <= to),
    );
    if (!owner) throw new Error(`no master serves slot ${slot}`);
    const replicas = view.filter((node) => node.masterId === owner.id && !node.flags.includes('fail'));
    return { master: this.#server(owner.port), replicas: replicas.map((node) => this.#server(node.port)) };
  }

  /**
   * The master that serves each key now, in order: one look at the cluster and one connection for them
   * all (shardOf per key opens several, which makes a loaded machine's set-up of many keys slow).
   */
  async mastersOf(keys: readonly string[]): Promise<OwnRedisServer[]> {
    const view = await this.#view();
    const client = await boundedClient((await this.masters())[0].url);
    try {
      const masters: OwnRedisServer[] = [];
      for (const key of keys) {
        const slot = Number(await client.sendCommand(['CLUSTER', 'KEYSLOT', key]));
        const owner = view.find(
          (node) =>
            node.flags.includes('master') &&
            !node.flags.includes('fail') &&
            node.slots.some(([from, to]) => from <= slot && slot <= to),
        );
        if (!owner) throw new Error(`no master serves slot ${slot}`);
        masters.push(this.#server(owner.port));
      }
      return masters;
    } finally {
      client.destroy();
    }
  }

  /** The node id of a master or replica (CLUSTER MYID), for CLUSTER SETSLOT and the like. */
  async idOf(node: OwnRedisServer): Promise<string> {
    return ask(node.port, 'CLUSTER', 'MYID');
  }

  /** A key that `master` holds now (a hash tag found by asking CLUSTER KEYSLOT). */
  async keyOn(master: OwnRedisServer): Promise<string> {
    const view = await this.#view();
    const ranges = view.find((node) => node.port === master.port)?.slots ?? [];
    for (let tag = 0; tag < 10_000; tag++) {
      const key = `marker:{${tag}}`;
      const slot = Number(await ask(master.port, 'CLUSTER', 'KEYSLOT', key));
      if (ranges.some(([from, to]) => from <= slot && slot <= to)) return key;
    }
    throw new Error(`no key found for ${master.port}`);
  }

  /**
   * Waits until every running node says cluster_state:ok with all slots served, knows every node, and
   * every replica's link to its master is up (a replica that has not synced is never promoted).
   */
  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    await until(
      'cluster healthy',
      async () => {
        for (const node of this.nodes) {
          if (!node.running) return `node ${node.port} is not running`;
          const info = fields(await ask(node.port, 'CLUSTER', 'INFO'));
          if (info.get('cluster_state') !== 'ok')
            return `node ${node.port}: cluster_state ${info.get('cluster_state')}`;
          if (info.get('cluster_slots_ok') !== '16384')
            return `node ${node.port}: ${info.get('cluster_slots_ok')} slots ok`;
          const replication = fields(await ask(node.port, 'INFO', 'replication'));
          if (replication.get('role') === 'slave' && replication.get('master_link_status') !== 'up')
            return `replica ${node.port}: link to its master ${replication.get('master_link_status')}`;
        }
        const view = await this.#view();
        if (view.some((node) => node.flags.includes('fail') || node.flags.includes('fail?')))
          return 'a node is still flagged as failing';
        return true;
      },
      timeoutMs,
    );
  }

  /**
   * Failovers held: no master is failed over however long it stays paused (cluster-node-timeout raised on
   * every node), for tests of a paused node that is meant to come back as it was. Set before pausing.
   */
  async holdFailovers(held: boolean): Promise<void> {
    this.#nodeTimeoutMs = held ? HELD_TIMEOUT_MS : this.#allowedTimeoutMs;
    for (const node of this.nodes) {
      if (node.running && !node.paused)
        await ask(node.port, 'CONFIG', 'SET', 'cluster-node-timeout', String(this.#nodeTimeoutMs));
    }
  }

  /** Back to a healthy cluster after a test: paused nodes resumed, killed ones restarted, failovers allowed. */
  async heal(): Promise<void> {
    for (const node of this.nodes) node.resume();
    await Promise.all(this.nodes.filter((node) => !node.running).map((node) => node.start()));
    await this.holdFailovers(false);
    await this.waitHealthy();
  }

  /** A cluster client for inspecting keys (TTLs, existence) wherever they are. */
  async inspector(): Promise<TestRedisClient> {
    const client = createCluster({
      // Only nodes that run: a killed master among the seeds fails the client's first connect.
      rootNodes: this.nodes
        .filter((node) => node.running && !node.paused)
        .map((node) => ({ url: `redis://127.0.0.1:${node.port}` })),
      defaults: { socket: { connectTimeout: 10_000, reconnectStrategy: false }, disableOfflineQueue: true },
    });
    client.on('error', () => {});
    await client.connect();
    // The tests call single-key commands only, which a cluster client routes by key.
    return client as unknown as TestRedisClient;
  }

  /** Keys under the prefix on every master that answers (a paused or killed one is skipped). */
  async keysWithPrefix(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    for (const master of await this.masters()) {
      if (!master.running || master.paused) continue;
      const client = await boundedClient(master.url);
      try {
        keys.push(...(await keysWithPrefix(client, prefix)));
      } finally {
        client.destroy();
      }
    }
    return keys;
  }

  /** Deletes keys under the prefix on every master that answers (keys in tests carry a TTL anyway). */
  async deleteKeysWithPrefix(prefix: string): Promise<void> {
    for (const master of await this.masters()) {
      if (!master.running || master.paused) continue;
      const client = await boundedClient(master.url);
      try {
        const keys = await keysWithPrefix(client, prefix);
        // One DEL per key: keys of one call must share a slot.
        for (const key of keys) await client.del(key);
      } finally {
        client.destroy();
      }
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.stop()));
    removeFolder(this.folder);
  }
}

/** Sentinel's down-after-milliseconds while failovers are allowed. */
const DOWN_AFTER_MS = 1_000;

/**
 * A master, a replica and three Sentinels (quorum 2) watching them. The Sentinels start knowing each
 * other and the replica (their config files say so), so a failover can start at once rather than after
 * their first hello messages (every 2 s). A killed data node restarts as a replica of the current master.
 */
export class OwnRedisSentinel {
  static readonly MASTER_NAME = 'sessions';
  readonly folder: string;
  readonly data: OwnRedisServer[] = [];
  readonly sentinels: OwnRedisServer[] = [];
  /** Whom each data node replicates when it (re)starts; undefined for a master. */
  readonly #replicaOf = new Map<OwnRedisServer, OwnRedisServer | undefined>();
  #downAfterMs = DOWN_AFTER_MS;

  private constructor() {
    this.folder = tempFolder('sentinel');
  }

  static async start(): Promise<OwnRedisSentinel> {
    const setup = new OwnRedisSentinel();
    try {
      await setup.#create();
    } catch (error) {
      await setup.stop();
      throw error;
    }
    return setup;
  }

  async #create(): Promise<void> {
    for (let index = 0; index < 2; index++) {
      const node: OwnRedisServer = new OwnRedisServer({ args: (port) => this.#dataArgs(index, port, node) });
      this.data.push(node);
    }
    const [master, replica] = this.data;
    await master.start();
    this.#replicaOf.set(replica, master);
    await replica.start();

    const ids = [0, 1, 2].map(() => randomBytes(20).toString('hex'));
    const ports: number[] = [];
    while (ports.length < 3) {
      const port = await freePort();
      if (!ports.includes(port)) ports.push(port);
    }
    for (let index = 0; index < 3; index++) {
      const config = join(this.folder, `sentinel-${index}.conf`);
      const others = [0, 1, 2].filter((other) => other !== index);
      writeFileSync(
        config,
        [
          `port ${ports[index]}`,
          'bind 127.0.0.1',
          `dir ${this.folder}`,
          `sentinel myid ${ids[index]}`,
          `sentinel monitor ${OwnRedisSentinel.MASTER_NAME} 127.0.0.1 ${master.port} 2`,
          `sentinel down-after-milliseconds ${OwnRedisSentinel.MASTER_NAME} ${DOWN_AFTER_MS}`,
          // A failover that fails is retried after twice this (180 s by default).
          `sentinel failover-timeout ${OwnRedisSentinel.MASTER_NAME} 3000`,
          `sentinel known-replica ${OwnRedisSentinel.MASTER_NAME} 127.0.0.1 ${replica.port}`,
          ...others.map(
            (other) =>
              `sentinel known-sentinel ${OwnRedisSentinel.MASTER_NAME} 127.0.0.1 ${ports[other]} ${ids[other]}`,
          ),
          '',
        ].join('\n'),
      );
      const sentinel = new OwnRedisServer({ args: () => [config, '--sentinel'], ready: /\+monitor master/ });
      sentinel.port = ports[index];
      this.sentinels.push(sentinel);
    }
    await Promise.all(this.sentinels.map((sentinel) => sentinel.start()));
    await this.waitHealthy();
  }

  #dataArgs(index: number, port: number, node: OwnRedisServer): string[] {
    const primary = this.#replicaOf.get(node);
    return [
      ...['--port', String(port), '--bind', '127.0.0.1', '--dir', this.folder],
      ...['--dbfilename', `dump-${index}.rdb`, '--save', '', '--appendonly', 'no', '--repl-diskless-sync-delay', '0'],
      ...(primary ? ['--replicaof', '127.0.0.1', String(primary.port)] : []),
    ];
  }

  /** Every Sentinel's address, for REDIS_SENTINEL_NODES. */
  get seeds(): string {
    return this.sentinels.map((sentinel) => `127.0.0.1:${sentinel.port}`).join(',');
  }

  /** The master the Sentinels name now. */
  async master(): Promise<OwnRedisServer> {
    for (const sentinel of this.sentinels) {
      if (!sentinel.running || sentinel.paused) continue;
      const client = await boundedClient(`redis://127.0.0.1:${sentinel.port}`);
      try {
        const [, port] = (await client.sendCommand([
          'SENTINEL',
          'GET-MASTER-ADDR-BY-NAME',
          OwnRedisSentinel.MASTER_NAME,
        ])) as string[];
        const master = this.data.find((node) => node.port === Number(port));
        if (master) return master;
      } finally {
        client.destroy();
      }
    }
    throw new Error('no Sentinel names a master');
  }

  /** The data node that is not the master. */
  async replica(): Promise<OwnRedisServer> {
    const master = await this.master();
    return this.data.find((node) => node !== master)!;
  }

  /**
   * Waits until every Sentinel names the same master, which answers as master, with the replica's link
   * up, and each Sentinel sees the two others and the replica, none of them down.
   */
  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    await until(
      'sentinel set-up healthy',
      async () => {
        const masters = new Set<number>();
        for (const sentinel of this.sentinels) {
          const client = await boundedClient(`redis://127.0.0.1:${sentinel.port}`);
          try {
            const name = OwnRedisSentinel.MASTER_NAME;
            const master = pairs(await client.sendCommand(['SENTINEL', 'MASTER', name]));
            if (master.get('flags') !== 'master')
              return `sentinel ${sentinel.port}: master flags ${master.get('flags')}`;
            if (master.get('num-other-sentinels') !== '2')
              return `sentinel ${sentinel.port} knows ${master.get('num-other-sentinels')} other sentinels`;
            const replicas = ((await client.sendCommand(['SENTINEL', 'REPLICAS', name])) as unknown[]).map(pairs);
            if (
              replicas.length !== 1 ||
              replicas[0].get('flags') !== 'slave' ||
              replicas[0].get('master-link-status') !== 'ok'
            )
              return `sentinel ${sentinel.port}: replicas ${JSON.stringify(replicas.map((replica) => replica.get('flags')))}`;
            masters.add(Number(master.get('port')));
          } finally {
            client.destroy();
          }
        }
        if (masters.size !== 1) return `the sentinels name masters ${[...masters].join(', ')}`;
        const master = this.data.find((node) => node.port === [...masters][0]);
        if (!master?.running) return 'the named master is not running';
        if (fields(await ask(master.port, 'INFO', 'replication')).get('role') !== 'master')
          return `${master.port} does not answer as master`;
        const replica = this.data.find((node) => node !== master)!;
        if (fields(await ask(replica.port, 'INFO', 'replication')).get('master_link_status') !== 'up')
          return `replica ${replica.port}: link to the master not up`;
        return true;
      },
      timeoutMs,
    );
  }

  /** Failovers held (down-after-milliseconds raised on every Sentinel): for tests of a paused master. */
  async holdFailovers(held: boolean): Promise<void> {
    this.#downAfterMs = held ? HELD_TIMEOUT_MS : DOWN_AFTER_MS;
    for (const sentinel of this.sentinels) {
      await ask(
        sentinel.port,
        'SENTINEL',
        'SET',
        OwnRedisSentinel.MASTER_NAME,
        'down-after-milliseconds',
        String(this.#downAfterMs),
      );
    }
  }

  /** Back to healthy after a test: paused nodes resumed, killed data nodes restarted as replicas of the master. */
  async heal(): Promise<void> {
    for (const node of [...this.data, ...this.sentinels]) node.resume();
    await this.holdFailovers(false);
    const master = await this.master();
    for (const node of this.data) {
      this.#replicaOf.set(node, node === master ? undefined : master);
      if (!node.running) await node.start();
    }
    await this.waitHealthy();
  }

  /** A plain client on the current master, for inspecting keys. */
  async inspector(): Promise<TestRedisClient> {
    return boundedClient((await this.master()).url);
  }

  async keysWithPrefix(prefix: string): Promise<string[]> {
    const client = await this.inspector();
    try {
      return await keysWithPrefix(client, prefix);
    } finally {
      client.destroy();
    }
  }

  /** Deletes keys under the prefix on the master, if it answers (keys in tests carry a TTL anyway). */
  async deleteKeysWithPrefix(prefix: string): Promise<void> {
    const master = await this.master();
    if (!master.running || master.paused) return;
    const client = await boundedClient(master.url);
    try {
      const keys = await keysWithPrefix(client, prefix);
      if (keys.length > 0) await client.del(keys);
    } finally {
      client.destroy();
    }
  }

  async stop(): Promise<void> {
    await Promise.all([...this.sentinels, ...this.data].map((node) => node.stop()));
    removeFolder(this.folder);
  }
}

/** A reply of fields and values (SENTINEL MASTER): a RESP3 map, or RESP2's flat [field, value, ...] list. */
function pairs(reply: unknown): Map<string, string> {
  if (reply instanceof Map) return new Map([...reply].map(([field, value]) => [String(field), String(value)]));
  if (!Array.isArray(reply)) {
    return new Map(Object.entries(reply as Record<string, unknown>).map(([field, value]) => [field, String(value)]));
  }
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < reply.length; i += 2) map.set(String(reply[i]), String(reply[i + 1]));
  return map;
}

/**
 * One deployment per test file, started on first use and stopped after the file's last test (passed or
 * failed): `await get()` in each test that needs it.
 */
function shared<T extends { stop(): Promise<void> }>(test: TestFn, start: () => Promise<T>): () => Promise<T> {
  let started: Promise<T> | undefined;
  test.after.always(async () => {
    if (started) await (await started.catch(() => undefined))?.stop();
  });
  return () => {
    started ??= start();
    return started;
  };
}

export function sharedCluster(test: TestFn, options: { replicas?: boolean } = {}): () => Promise<OwnRedisCluster> {
  return shared(test, () => OwnRedisCluster.start(options));
}

export function sharedSentinel(test: TestFn): () => Promise<OwnRedisSentinel> {
  return shared(test, () => OwnRedisSentinel.start());
}

/**
 * A Redis deployment the shared suites run on (the store contract, the model, the logout overlaps): how
 * an app or a store reaches it, and how a test looks at its keys.
 */
export interface RedisDeployment {
  /** 'redis', 'redis cluster' or 'redis sentinel', for test titles. */
  readonly name: string;
  /** ava's test, or a skip that says what is missing. */
  readonly test: TestFn;
  /** The settings that select it, as environment variables: REDIS_URL, or the node lists. */
  settings(): Promise<Record<string, string>>;
  /** What RedisStore.connect needs to reach it. */
  storeOptions(): Promise<Pick<RedisStoreOptions, 'url' | 'topology'>>;
  /** A client for looking at keys wherever they are; the caller closes it. */
  inspector(): Promise<TestRedisClient>;
  keysWithPrefix(prefix: string): Promise<string[]>;
  deleteKeysWithPrefix(prefix: string): Promise<void>;
}

function nodeList(servers: readonly OwnRedisServer[]): RedisNodeAddress[] {
  return servers.map((server) => ({ host: '127.0.0.1', port: server.port }));
}

/** The Redis at REDIS_URL (the tests' shared one). */
export function singleRedis(test: TestFn): RedisDeployment {
  return {
    name: 'redis',
    test: redisTest(test),
    settings: async () => ({ REDIS_URL: REDIS_URL ?? '' }),
    storeOptions: async () => ({ url: REDIS_URL! }),
    inspector: () => inspector(),
    async keysWithPrefix(prefix) {
      const client = await inspector();
      try {
        return await keysWithPrefix(client, prefix);
      } finally {
        client.destroy();
      }
    },
    deleteKeysWithPrefix: (prefix) => deleteKeysWithPrefix(prefix),
  };
}

/** A Cluster of three masters of the test file's own (sharedCluster). */
export function clusterRedis(test: TestFn, cluster = sharedCluster(test)): RedisDeployment {
  return {
    name: 'redis cluster',
    test: topologyTest(test),
    settings: async () => ({ REDIS_CLUSTER_NODES: (await cluster()).seeds }),
    storeOptions: async () => ({
      // Only its user, password and scheme count with a Cluster: none here.
      url: 'redis://127.0.0.1',
      topology: { kind: 'cluster', nodes: nodeList((await cluster()).nodes) },
    }),
    inspector: async () => (await cluster()).inspector(),
    keysWithPrefix: async (prefix) => (await cluster()).keysWithPrefix(prefix),
    deleteKeysWithPrefix: async (prefix) => (await cluster()).deleteKeysWithPrefix(prefix),
  };
}

/** A master, a replica and three Sentinels of the test file's own (sharedSentinel). */
export function sentinelRedis(test: TestFn, setup = sharedSentinel(test)): RedisDeployment {
  return {
    name: 'redis sentinel',
    test: topologyTest(test),
    settings: async () => ({
      REDIS_SENTINEL_NODES: (await setup()).seeds,
      REDIS_SENTINEL_MASTER: OwnRedisSentinel.MASTER_NAME,
    }),
    storeOptions: async () => ({
      url: 'redis://127.0.0.1',
      topology: {
        kind: 'sentinel',
        nodes: nodeList((await setup()).sentinels),
        masterName: OwnRedisSentinel.MASTER_NAME,
      },
    }),
    inspector: async () => (await setup()).inspector(),
    keysWithPrefix: async (prefix) => (await setup()).keysWithPrefix(prefix),
    deleteKeysWithPrefix: async (prefix) => (await setup()).deleteKeysWithPrefix(prefix),
  };
}

/** Every Redis deployment: the shared suites run on each (a Cluster and Sentinels of the file's own). */
export function redisDeployments(test: TestFn): RedisDeployment[] {
  return [singleRedis(test), clusterRedis(test), sentinelRedis(test)];
}

/**
 * A RedisStore on a deployment under a fresh key prefix, patient like openTestRedisStore's; close() also
 * deletes every key it made.
 */
export async function openStoreOn(
  deployment: RedisDeployment,
  options: TestRedisStoreOptions = {},
): Promise<{ store: RedisStore; keyPrefix: string; close(): Promise<void> }> {
  const keyPrefix = uniquePrefix();
  const store = await RedisStore.connect({
    connectTimeoutMs: 10_000,
    commandTimeoutMs: 10_000,
    logger: silentLogger(),
    ...options,
    ...(await deployment.storeOptions()),
    keyPrefix,
  });
  return {
    store,
    keyPrefix,
    async close() {
      await store.close();
      await deployment.deleteKeysWithPrefix(keyPrefix);
    },
  };
}

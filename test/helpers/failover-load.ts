/**
 * A master killed (SIGKILL) under HTTP load, with a replica to take over: what the app answers meanwhile,
 * how soon it serves again with no restart, and what became of the sessions. For a Cluster
 * (test/redis-cluster.test.ts) and Sentinels (test/redis-sentinel.test.ts).
 *
 * Sessions are made first, some ended, and every master is made to confirm its replicas have it all
 * (WAIT after a write of the test's own: replication is one ordered stream, so a later write acknowledged
 * by a replica means everything before it is there too). Then workers, each on sessions of its own, one
 * request at a time, write new values and now and then end a session, while a watermark loop does the
 * same SET and WAIT on the master to be killed every few ms: a request answered before the last confirmed
 * marker was sent is on the replica. The master is killed a second into the load; the load goes on until
 * its sessions have been served again for a second.
 *
 * The checks: every answer is 200 or 503 (never a 500), each within the bound; then, per session, the
 * stored value (read straight from Redis) must be one its own requests could have left: on the masters
 * that lived, the last acknowledged write or a later one whose answer was a 503; on the killed master, the
 * same or anything written after the watermark (a write the master acknowledged but had not passed on),
 * never older. A session ended before the watermark must stay ended (none revived). A session found gone
 * by a request (a new cookie) is lost unless an end of its own was answered with a 503 (it may have landed).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ExecutionContext } from 'ava';
import { appForTest } from './app.ts';
import { Browser, sessionIdOf } from './browser.ts';
import { type OwnRedisServer, type TestRedisClient, uniquePrefix } from './redis.ts';
import { boundedClient } from './redis-topologies.ts';
import { storeKeyOf } from './store-key.ts';
import { BOUND_MS, COMMAND_TIMEOUT_MS } from './store-outages.ts';

export interface FailoverTarget {
  /** The app's settings that select the deployment (REDIS_CLUSTER_NODES, or the Sentinels). */
  readonly settings: Record<string, string>;
  /** The master that holds each key now, in order (one look at the deployment for them all). */
  mastersOf(keys: readonly string[]): Promise<OwnRedisServer[]>;
  /** Every master now, each with a key it holds (for the test's own SET and WAIT) and its replica count. */
  masters(): Promise<Array<{ master: OwnRedisServer; key: string; replicas: number }>>;
  /** A client that reads keys wherever they are now (after the failover). */
  inspector(): Promise<TestRedisClient>;
  /** Keys under the prefix, wherever they are, for clean-up. */
  deleteKeysWithPrefix(prefix: string): Promise<void>;
}

/** One request and what came of it. */
class Op {
  readonly kind: 'write' | 'end';
  /** What /write stores: a counter per session. */
  readonly value: string;
  status = 0;
  start = 0;
  end = 0;
  constructor(kind: 'write' | 'end', value: string) {
    this.kind = kind;
    this.value = value;
  }
}

interface TrackedSession {
  readonly id: string;
  readonly browser: Browser;
  onVictim: boolean;
  readonly ops: Op[];
  /** No more requests: ended (200), or its cookie was replaced (its data was gone when a request came). */
  done: boolean;
  replaced: boolean;
}

export interface FailoverFigures {
  readonly requests: number;
  readonly failed: number;
  readonly failedOnVictim: number;
  readonly failedElsewhere: number;
  readonly slowestFailureMs: number;
  readonly slowestAnswerMs: number;
  /** From the kill to the first 200 for a session of the killed master. */
  readonly servedAgainAfterMs: number;
  /** From the kill to the last 503 of any request. */
  readonly lastFailureAfterMs: number;
  /** How long before the kill the last replication marker was sent. */
  readonly watermarkLagMs: number;
  readonly sessions: number;
  readonly sessionsOnVictim: number;
  /** Sessions whose stored value is older than their last acknowledged write (written after the watermark). */
  readonly lostWrites: number;
  /** Sessions ended (200) after the watermark that are there again. */
  readonly revived: number;
  /** Sessions whose data was gone when a request came (a new cookie was issued). */
  readonly replaced: number;
}

const WORKERS = 6;
const SESSIONS = 60;

export async function failoverUnderLoad(t: ExecutionContext, target: FailoverTarget): Promise<FailoverFigures> {
  const prefix = uniquePrefix();
  t.teardown(() => target.deleteKeysWithPrefix(prefix));
  const app = await appForTest(t, {
    SESSION_STORE: 'redis',
    ...target.settings,
    REDIS_KEY_PREFIX: prefix,
    REDIS_COMMAND_TIMEOUT: `${COMMAND_TIMEOUT_MS}ms`,
    REDIS_CONNECT_TIMEOUT: '10s',
    // Longer than any test may run (ava's timeout): a session must not expire of itself however slow the
    // set-up (with the default of a minute, a loaded machine aged every session out before the kill, and
    // the killed master's sessions were never asked for again).
    SESSION_MAX_AGE: '1h',
    LOG_LEVEL: 'warn',
  });

  // Sessions, some ended at once; then every master confirms its replicas have it all.
  const sessions: TrackedSession[] = [];
  const endedFirst: string[] = [];
  for (let i = 0; i < SESSIONS; i++) {
    const browser = new Browser(app.url);
    t.is((await browser.request('/write?value=0')).status, 200);
    const id = sessionIdOf(browser.cookies.get('sid'))!;
    if (i % 6 === 5) {
      t.is((await browser.request('/end')).status, 200);
      endedFirst.push(id);
      continue;
    }
    sessions.push({ id, browser, onVictim: false, ops: [], done: false, replaced: false });
  }
  for (const { master, key, replicas } of await target.masters()) {
    t.true((await confirmReplicated(master, key, replicas, 5_000)) >= replicas, `${master.port} replicated it all`);
  }

  // The victim: the master of a session whose master has a replica to promote (after an earlier test's
  // failover, a master may have none until its old one is back as a replica).
  const masters = await target.masters();
  const withReplica = new Set(masters.filter(({ replicas }) => replicas > 0).map(({ master }) => master));
  const mastersOf = await target.mastersOf(sessions.map((session) => prefix + storeKeyOf(app, session.id)));
  const victim = mastersOf.find((master) => withReplica.has(master));
  if (victim === undefined) throw new Error('no master with a replica holds a session: nothing to fail over');
  for (const [index, session] of sessions.entries()) session.onVictim = mastersOf[index] === victim;
  const victimMarker = masters.find(({ master }) => master === victim)!;

  // The watermark: when the last marker the replica confirmed was sent.
  let watermark = performance.now();
  let killed = false;
  const watermarkLoop = (async () => {
    const client = await boundedClient(victim.url);
    client.on('error', () => {});
    try {
      while (!killed) {
        const sent = performance.now();
        try {
          if ((await confirmReplicated(victim, victimMarker.key, victimMarker.replicas, 200, client)) >= 1)
            watermark = sent;
        } catch {
          return; // the master is gone
        }
        await sleep(5);
      }
    } finally {
      client.destroy();
    }
  })();

  // The load: each worker on sessions of its own, one request at a time.
  let stop = false;
  let counter = 0;
  const workers = Array.from({ length: WORKERS }, async (_, worker) => {
    const own = sessions.filter((_, index) => index % WORKERS === worker);
    while (!stop) {
      for (const session of own) {
        if (stop || session.done) continue;
        const kind = ++counter % 23 === 0 ? 'end' : 'write';
        const op = new Op(kind, String(session.ops.length + 1));
        session.ops.push(op);
        op.start = performance.now();
        const answer = await session.browser.request(kind === 'end' ? '/end' : `/write?value=${op.value}`);
        op.end = performance.now();
        op.status = answer.status;
        if (answer.status !== 200) continue;
        if (kind === 'end') session.done = true;
        else if (sessionIdOf(session.browser.cookies.get('sid')) !== session.id) {
          session.replaced = true;
          session.done = true;
        }
      }
      if (own.every((session) => session.done)) return;
      await sleep(10);
    }
  });

  await sleep(1_000);
  // The replica is in sync (the cluster or set-up is healthy between tests): kill its master.
  const killedAt = performance.now();
  killed = true;
  await victim.stop();
  await watermarkLoop;

  // Until the killed master's sessions have been served again for a second (20 s at most).
  let servedAgainAt: number | undefined;
  const deadline = performance.now() + 20_000;
  while (performance.now() < deadline) {
    await sleep(100);
    const victimOps = sessions.filter((session) => session.onVictim).flatMap((session) => session.ops);
    servedAgainAt ??= victimOps.find((op) => op.start > killedAt && op.status === 200)?.end;
    if (servedAgainAt !== undefined && performance.now() - servedAgainAt > 1_000) break;
  }
  stop = true;
  await Promise.all(workers);
  t.truthy(servedAgainAt, 'the sessions of the killed master were served again, with no restart');

  // Every answer: 200 or 503, within the bound.
  const ops = sessions.flatMap((session) => session.ops.map((op) => ({ op, session })));
  const statuses = new Set(ops.map(({ op }) => op.status));
  t.deepEqual(
    [...statuses].filter((status) => status !== 200 && status !== 503),
    [],
    'every answer is 200 or 503',
  );
  const failed = ops.filter(({ op }) => op.status === 503);
  const slowest = (list: typeof ops) => Math.max(0, ...list.map(({ op }) => op.end - op.start));
  t.true(slowest(ops) < BOUND_MS, `every answer within ${BOUND_MS} ms (slowest ${Math.round(slowest(ops))} ms)`);

  // What each session holds now, read straight from Redis (wherever its key is now).
  const redis = await target.inspector();
  t.teardown(() => redis.destroy());
  let lostWrites = 0;
  let revived = 0;
  for (const session of sessions) {
    const text = await redis.get(prefix + storeKeyOf(app, session.id));
    const stored = text === null ? undefined : (JSON.parse(text) as { value?: string }).value;
    const verdict = judge(session, stored, watermark);
    t.true(
      verdict.ok,
      `session ${session.id} (${session.onVictim ? 'killed master' : 'other master'}): ${verdict.why}`,
    );
    if (verdict.lostWrite) lostWrites++;
    if (verdict.revived) revived++;
  }
  for (const id of endedFirst)
    t.is(await redis.get(prefix + storeKeyOf(app, id)), null, `session ${id}, ended before, stays ended`);

  return {
    requests: ops.length,
    failed: failed.length,
    failedOnVictim: failed.filter(({ session }) => session.onVictim).length,
    failedElsewhere: failed.filter(({ session }) => !session.onVictim).length,
    slowestFailureMs: Math.round(slowest(failed)),
    slowestAnswerMs: Math.round(slowest(ops)),
    servedAgainAfterMs: Math.round((servedAgainAt ?? Number.NaN) - killedAt),
    lastFailureAfterMs: Math.round(Math.max(0, ...failed.map(({ op }) => op.end)) - killedAt),
    watermarkLagMs: Math.round(killedAt - watermark),
    sessions: sessions.length,
    sessionsOnVictim: sessions.filter((session) => session.onVictim).length,
    lostWrites,
    revived,
    replaced: sessions.filter((session) => session.replaced).length,
  };
}

/**
 * Whether `stored` (the session's value now, undefined if gone) is a state the session's requests could
 * have left. States: 0 before its first op, k after op k (the value it wrote, or gone after an end).
 */
function judge(
  session: TrackedSession,
  stored: string | undefined,
  watermark: number,
): { ok: boolean; why: string; lostWrite: boolean; revived: boolean } {
  const { ops } = session;
  const stateAfter = (k: number) => (k === 0 ? '0' : ops[k - 1].kind === 'end' ? undefined : ops[k - 1].value);
  // The last acknowledged op, and the last one acknowledged before the watermark (1-based; 0: none).
  let lastAcked = 0;
  let lastReplicated = 0;
  ops.forEach((op, index) => {
    if (op.status !== 200) return;
    lastAcked = index + 1;
    if (op.end < watermark) lastReplicated = index + 1;
  });
  const matches = [...Array(ops.length + 1).keys()].filter((k) => stateAfter(k) === stored);
  const describe = `stored ${JSON.stringify(stored)}, requests ${ops.map((op) => `${op.kind}${op.kind === 'write' ? op.value : ''}:${op.status}`).join(' ')}`;
  if (session.replaced) {
    // Found gone (a new cookie came back): only an end answered with a 503 may have removed it (its DEL can
    // land though the answer missed its deadline). Its creation was replicated before the kill and it
    // cannot expire during the test (SESSION_MAX_AGE above): gone otherwise, it was lost.
    const ok = ops.some((op) => op.kind === 'end' && op.status !== 200);
    return {
      ok,
      why: ok ? describe : `${describe}: found gone, and no end of its own may have removed it`,
      lostWrite: false,
      revived: false,
    };
  }
  // Not older than the last acknowledged op; a later op whose answer was a 503 may have been applied too.
  const current = matches.some((k) => k >= lastAcked);
  if (current) return { ok: true, why: describe, lostWrite: false, revived: false };
  const revived = ops[lastAcked - 1]?.kind === 'end' && stored !== undefined;
  // On the killed master, writes acknowledged after the watermark may have died with it.
  if (session.onVictim && matches.some((k) => k >= lastReplicated)) {
    return { ok: true, why: describe, lostWrite: !revived, revived };
  }
  return {
    ok: false,
    why: `${describe}: older than what was acknowledged (and replicated)`,
    lostWrite: false,
    revived,
  };
}

/** A SET of `key` then WAIT on the master: how many replicas confirmed it (and everything written before). */
async function confirmReplicated(
  master: OwnRedisServer,
  key: string,
  replicas: number,
  timeoutMs: number,
  client?: TestRedisClient,
): Promise<number> {
  const own = client ?? (await boundedClient(master.url));
  try {
    await own.set(key, String(performance.now()), { expiration: { type: 'PX', value: 60_000 } });
    return Number(await own.sendCommand(['WAIT', String(replicas), String(timeoutMs)]));
  } finally {
    if (!client) own.destroy();
  }
}

/**
 * The Redis store's users (the UserSessionIndex of store.ts). Every call is one Lua script, so one
 * round trip and one atomic step, under the store's deadline (the store runs it: RedisStore.users).
 *
 * One user's data is four keys sharing the hash tag `{<user>}` (the user key the session layer derives
 * from the user id), so they sit in one hash slot and the same scripts run on Redis Cluster:
 *
 * - `…{user}:epoch`: the epoch, a counter `endAll` INCRs (missing reads as 0);
 * - `…{user}:expires`: sorted set, handle → when the entry expires (Unix ms), for pruning and the bound;
 * - `…{user}:used`: sorted set, handle → last use (Unix ms);
 * - `…{user}:sessions`: hash, handle → JSON {k: store key, l: label, c: created}.
 *
 * Every call that writes gives the keys a TTL of at least the entry's, so a user's keys go with their
 * last session even when no instance runs; the epoch after `endAll` is kept at least its keep time.
 * Entries are pruned by expiry when a user's list is added to or read. Times are the app's clock (the
 * instances' clocks should agree to within a second, as for the absolute lifetime).
 */
import { createHash } from 'node:crypto';
import type { UserSessionEntry, UserSessionIndex } from './store.ts';

/** The one thing the scripts need from a node-redis client. */
export interface ScriptClient {
  evalSha(sha: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
}

/** Runs a command on the store's connection, within its deadline (RedisStore's #run). */
export type Run = <T>(command: (client: ScriptClient) => Promise<T>) => Promise<T>;

/** Lua shared by the scripts: KEYS are epoch, expires, used, sessions. */
const LIB = `
local epochKey, expiresKey, usedKey, sessionsKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
-- The epoch, for the scripts that hand it out or bump it. One that is not a count (stored data is input)
-- goes, as REPAIR explains; TOUCH needs no such check: no session holds such an epoch.
local function epochOf()
  local epoch = redis.call('GET', epochKey)
  if epoch and not string.match(epoch, '^%d+$') then
    redis.call('DEL', epochKey)
    epoch = false
  end
  return epoch or '0'
end
-- The store key in an entry, or nil when the entry is not what this app writes (not JSON, say).
local function storeKeyOf(entry)
  local ok, decoded = pcall(cjson.decode, entry)
  if ok and type(decoded) == 'table' and type(decoded.k) == 'string' then return decoded.k end
  return nil
end
local function unlist(handles)
  if #handles > 0 then
    redis.call('ZREM', expiresKey, unpack(handles))
    redis.call('ZREM', usedKey, unpack(handles))
    redis.call('HDEL', sessionsKey, unpack(handles))
  end
end
local function pruneExpired(now)
  unlist(redis.call('ZRANGE', expiresKey, '-inf', now, 'BYSCORE'))
end
-- The list's keys always share a TTL (set together): one PTTL tells whether all need a longer one.
local function keepFor(ttl)
  local left = redis.call('PTTL', expiresKey)
  if left ~= -2 and left < ttl then
    for _, key in ipairs({ expiresKey, usedKey, sessionsKey }) do redis.call('PEXPIRE', key, ttl) end
    if redis.call('PTTL', epochKey) < ttl then redis.call('PEXPIRE', epochKey, ttl) end
  end
end
`;

/** ARGV: handle, store key, label, now, ttl, max entries. Returns {epoch, dropped store keys...}. */
const ADD = `${LIB}
local handle, storeKey, label = ARGV[1], ARGV[2], ARGV[3]
local now, ttl, max = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
pruneExpired(now)
local result = { epochOf() }
local count = redis.call('ZCARD', expiresKey)
if count >= max then
  local victims = redis.call('ZRANGE', expiresKey, 0, count - max)
  for _, victim in ipairs(redis.call('HMGET', sessionsKey, unpack(victims))) do
    local victimKey = victim and storeKeyOf(victim)
    if victimKey then table.insert(result, victimKey) end
  end
  unlist(victims)
end
redis.call('ZADD', expiresKey, now + ttl, handle)
redis.call('ZADD', usedKey, now, handle)
redis.call('HSET', sessionsKey, handle, cjson.encode({ k = storeKey, l = label, c = now }))
keepFor(ttl)
return result
`;

/** ARGV: handle, epoch, now, ttl, new store key or ''. Returns 1, or 0 (nothing written). */
const TOUCH = `${LIB}
local handle, epoch, storeKey = ARGV[1], ARGV[2], ARGV[5]
local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
if not redis.call('ZSCORE', expiresKey, handle) then return 0 end
if (redis.call('GET', epochKey) or '0') ~= epoch then return 0 end
redis.call('ZADD', expiresKey, 'XX', now + ttl, handle)
redis.call('ZADD', usedKey, 'XX', now, handle)
if storeKey ~= '' then
  local ok, entry = pcall(cjson.decode, redis.call('HGET', sessionsKey, handle))
  if not (ok and type(entry) == 'table') then entry = {} end
  entry.k = storeKey
  redis.call('HSET', sessionsKey, handle, cjson.encode(entry))
end
keepFor(ttl)
return 1
`;

/** ARGV: now. Returns {handle, expires, used, JSON, ...}, least recently used first. */
const LIST = `${LIB}
pruneExpired(tonumber(ARGV[1]))
local result = {}
local listed = redis.call('ZRANGE', expiresKey, 0, -1, 'WITHSCORES')
for i = 1, #listed, 2 do
  local handle = listed[i]
  table.insert(result, handle)
  table.insert(result, listed[i + 1])
  table.insert(result, redis.call('ZSCORE', usedKey, handle) or '0')
  table.insert(result, redis.call('HGET', sessionsKey, handle) or '{}')
end
return result
`;

/** ARGV: handle. Returns the store key ('' when the entry does not hold one), or false. */
const REMOVE = `${LIB}
local entry = redis.call('HGET', sessionsKey, ARGV[1])
if not entry then return false end
unlist({ ARGV[1] })
return storeKeyOf(entry) or ''
`;

/** ARGV: keep the epoch this long (ms). Returns the store keys that were listed. */
const END_ALL = `${LIB}
local result = {}
local handles = redis.call('ZRANGE', expiresKey, 0, -1)
if #handles > 0 then
  for _, entry in ipairs(redis.call('HMGET', sessionsKey, unpack(handles))) do
    local storeKey = entry and storeKeyOf(entry)
    if storeKey then table.insert(result, storeKey) end
  end
end
redis.call('DEL', expiresKey, usedKey, sessionsKey)
epochOf()
redis.call('INCR', epochKey)
local keep = tonumber(ARGV[1])
local left = redis.call('PTTL', epochKey)
if left < keep then redis.call('PEXPIRE', epochKey, keep) end
return result
`;

/**
 * Stored data is input: a user's key of another type than this app writes would fail every call of the user
 * (WRONGTYPE) until it expired, sign out everywhere included. Run when a call meets one (never on the way
 * of a call that does not), it deletes such keys and an epoch that is not a count. That can only sign
 * sessions out: a session is valid only while listed under the current epoch, and a handle is never listed
 * again. Returns nothing.
 */
const REPAIR = `${LIB}
for key, wanted in pairs({ [epochKey] = 'string', [expiresKey] = 'zset', [usedKey] = 'zset', [sessionsKey] = 'hash' }) do
  local kind = redis.call('TYPE', key).ok
  if kind ~= 'none' and kind ~= wanted then redis.call('DEL', key) end
end
epochOf()
return false
`;

interface Script {
  readonly source: string;
  readonly sha: string;
}

function script(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

const SCRIPTS = { add: script(ADD), touch: script(TOUCH), list: script(LIST), remove: script(REMOVE) };
const END_ALL_SCRIPT = script(END_ALL);
const REPAIR_SCRIPT = script(REPAIR);

/** The largest bound per user the scripts accept (Lua's unpack takes a few thousand values at most). */
export const MAX_ENTRIES_PER_USER = 1_000;

/** An entry's JSON as stored; {} when it is anything else (stored data is input: never a 500). */
function parseEntry(text: string): { k?: unknown; l?: unknown; c?: unknown } {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? value : {};
  } catch {
    return {};
  }
}

export class RedisUsers implements UserSessionIndex {
  readonly #run: Run;
  readonly #prefix: string;

  constructor(run: Run, keyPrefix: string) {
    this.#run = run;
    this.#prefix = keyPrefix;
  }

  async add(
    user: string,
    entry: { readonly handle: string; readonly storeKey: string; readonly label: string },
    ttlMs: number,
    maxEntries: number,
  ): Promise<{ epoch: number; dropped: string[] }> {
    if (!(Number.isInteger(maxEntries) && maxEntries >= 1 && maxEntries <= MAX_ENTRIES_PER_USER))
      throw new RangeError(`maxEntries must be from 1 to ${MAX_ENTRIES_PER_USER}, not ${maxEntries}`);
    const reply = (await this.#call(SCRIPTS.add, user, [
      entry.handle,
      entry.storeKey,
      entry.label,
      String(Date.now()),
      String(ttlMs),
      String(maxEntries),
    ])) as string[];
    const [epoch, ...dropped] = reply;
    return { epoch: Number(epoch), dropped };
  }

  async touch(user: string, handle: string, epoch: number, ttlMs: number, storeKey?: string): Promise<boolean> {
    const args = [handle, String(epoch), String(Date.now()), String(ttlMs), storeKey ?? ''];
    return (await this.#call(SCRIPTS.touch, user, args)) === 1;
  }

  async list(user: string): Promise<UserSessionEntry[]> {
    const reply = (await this.#call(SCRIPTS.list, user, [String(Date.now())])) as string[];
    const entries: UserSessionEntry[] = [];
    for (let i = 0; i < reply.length; i += 4) {
      const stored = parseEntry(reply[i + 3]);
      entries.push({
        handle: reply[i],
        storeKey: String(stored.k ?? ''),
        label: String(stored.l ?? ''),
        createdAt: Number(stored.c ?? 0),
        lastUsedAt: Number(reply[i + 2]),
        expiresAt: Number(reply[i + 1]),
      });
    }
    return entries;
  }

  async remove(user: string, handle: string): Promise<string | undefined> {
    const reply = await this.#call(SCRIPTS.remove, user, [handle]);
    return typeof reply === 'string' ? reply : undefined;
  }

  async endAll(user: string, keepEpochMs: number): Promise<string[]> {
    return (await this.#call(END_ALL_SCRIPT, user, [String(keepEpochMs)])) as string[];
  }

  /** One script on the user's keys, under the store's deadline. */
  #call(script: Script, user: string, args: string[]): Promise<unknown> {
    const tag = `${this.#prefix}{${user}}:`;
    const options = { keys: [`${tag}epoch`, `${tag}expires`, `${tag}used`, `${tag}sessions`], arguments: args };
    return this.#run(async (client) => {
      try {
        return await evaluate(client, script, options);
      } catch (error) {
        if (!(error instanceof Error && error.message.includes('WRONGTYPE'))) throw error;
        // A key of the user of another type (see REPAIR): deleted, then the call once more.
        await evaluate(client, REPAIR_SCRIPT, options);
        return evaluate(client, script, options);
      }
    });
  }
}

/** The script by its SHA1; its source once, when this Redis has not seen it yet (or flushed its scripts). */
async function evaluate(
  client: ScriptClient,
  script: Script,
  options: { keys: string[]; arguments: string[] },
): Promise<unknown> {
  try {
    return await client.evalSha(script.sha, options);
  } catch (error) {
    if (!(error instanceof Error && error.message.startsWith('NOSCRIPT'))) throw error;
    return client.eval(script.source, options);
  }
}

/**
 * Session ids are useless at rest: the store keeps a keyed hash of each id (app/session/store-keys.ts), so
 * a Redis dump, Redis's MONITOR output or a heap snapshot of the server holds no id and no cookie value.
 * And what that costs in key rotation: a session moves to the current key's hash when its cookie is
 * re-signed, stays alive through the rotation, and logout stays final while the move is under way.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { CookieSigner } from '../app/session/signed-cookie.ts';
import { MemoryStore } from '../app/stores/memory.ts';
import { appForTest, type RunningApp } from './helpers/app.ts';
import { sessionIdOf } from './helpers/browser.ts';
import { GatedStore } from './helpers/gated-store.ts';
import { startServerProcess } from './helpers/process.ts';
import {
  deleteKeysWithPrefix,
  inspector,
  keysWithPrefix,
  PATIENT_REDIS,
  REDIS_URL,
  redisTest,
  uniquePrefix,
} from './helpers/redis.ts';
import { addSignInRoutes } from './helpers/sign-in-routes.ts';
import { Device } from './helpers/sign-in-setup.ts';
import { storeKeyOf } from './helpers/store-key.ts';

const test = anyTest as TestFn;
const KEY_A = 'rotation-key-a-0123456789abcdefghijklmnopq';
const KEY_B = 'rotation-key-b-0123456789abcdefghijklmnopq';
const SIGN_IN_SERVER = fileURLToPath(new URL('./helpers/sign-in-server.ts', import.meta.url));

/** Sessions of every kind, through every path that writes ids: new, signed in, regenerated, logged out. */
async function makeSessions(baseUrl: string): Promise<{ devices: Device[]; issued: string[]; marker: string }> {
  const marker = `marker-${Date.now().toString(36)}`;
  const devices = [0, 1, 2, 3, 4].map((i) => new Device(baseUrl, `device-${i}`));
  const issued = recording(devices);
  await devices[0].post('/note', { note: marker });
  await devices[1].signIn('alice');
  await devices[1].post('/note', { note: marker });
  await devices[2].signIn('alice');
  await devices[2].post('/regenerate');
  await devices[3].signIn('bob');
  await devices[3].post('/logout');
  await devices[4].signIn('carol');
  await devices[4].me();
  return { devices, issued, marker };
}

/** Every id and every signed value the devices were ever given (what must not appear at rest). */
function secretsOf(devices: readonly Device[], issued: readonly string[]): string[] {
  const values = [...issued, ...devices.map((device) => device.cookies.get('sid')).filter((v) => v !== undefined)];
  return [...new Set([...values, ...values.map((value) => sessionIdOf(value)!)])];
}

/** A Device that records every session cookie value it is given. */
function recording(devices: Device[]): string[] {
  const issued: string[] = [];
  for (const device of devices) {
    const request = device.request.bind(device);
    device.request = async (path, init) => {
      const answer = await request(path, init);
      for (const line of answer.setCookies) {
        const value = /^sid=([^;]+)/.exec(line)?.[1];
        if (value) issued.push(value);
      }
      return answer;
    };
  }
  return issued;
}

redisTest(test)(
  'redis store: neither the keys, the values nor MONITOR output hold a session id or cookie',
  async (t) => {
    const prefix = uniquePrefix();
    t.teardown(() => deleteKeysWithPrefix(prefix));
    const monitor = await inspector();
    const seen: string[] = [];
    await monitor.monitor((line) => seen.push(line));
    t.teardown(() => monitor.destroy());
    const app = await appForTest(
      t,
      {
        SESSION_STORE: 'redis',
        REDIS_URL: REDIS_URL ?? '',
        REDIS_KEY_PREFIX: prefix,
        ...PATIENT_REDIS,
        LOG_LEVEL: 'warn',
      },
      { routes: addSignInRoutes },
    );
    const devices = [0, 1, 2, 3, 4].map((i) => new Device(app.url, `device-${i}`));
    const issued = recording(devices);
    const marker = `marker-${Date.now().toString(36)}`;
    await devices[0].post('/note', { note: marker });
    await devices[1].signIn('alice');
    await devices[1].post('/note', { note: marker });
    await devices[2].signIn('alice');
    await devices[2].post('/regenerate');
    await devices[3].signIn('bob');
    await devices[3].post('/logout');
    await devices[4].signIn('carol');
    await devices[4].post('/logout-everywhere');
    await devices[1].me();
    await sleep(200); // MONITOR lines arrive after the replies

    const client = await inspector();
    t.teardown(() => client.close());
    let dump = '';
    for (const key of await keysWithPrefix(client, prefix)) {
      const type = await client.type(key);
      const value =
        type === 'string'
          ? await client.get(key)
          : type === 'hash'
            ? await client.hGetAll(key)
            : await client.zRangeWithScores(key, 0, -1);
      dump += `${key} ${JSON.stringify(value)}\n`;
    }
    const monitored = seen.join('\n');
    t.true(dump.includes(marker), 'the dump holds the sessions (the search would find what is there)');
    t.true(monitored.includes(prefix), 'MONITOR saw the commands');
    const secrets = secretsOf(devices, issued);
    t.true(secrets.length >= 10, `${secrets.length} ids and values`);
    for (const secret of secrets) {
      t.false(dump.includes(secret), `the dump holds ${secret}`);
      t.false(monitored.includes(secret), `MONITOR showed ${secret}`);
    }
  },
);

test('memory store: a heap snapshot of the server holds no session id or cookie, only their store keys', async (t) => {
  const folder = await mkdtemp(join(tmpdir(), 'heap-'));
  t.teardown(() => rm(folder, { recursive: true, force: true }));
  const snapshot = join(folder, 'server.heapsnapshot');
  const server = await startServerProcess(
    { SESSION_KEYS: KEY_A, LOG_LEVEL: 'warn', HTTP_KEEP_ALIVE_TIMEOUT: '1ms' },
    { script: SIGN_IN_SERVER, args: [snapshot] },
  );
  t.teardown(async () => {
    server.child.kill('SIGKILL');
    await server.exited;
  });
  const { devices, issued, marker } = await makeSessions(server.url);
  await sleep(300); // the keep-alive sockets close, their last request goes with them
  server.child.kill('SIGUSR2');
  for (let waited = 0; !existsSync(snapshot) && waited < 30_000; waited += 100) await sleep(100);
  const heap = readFileSync(snapshot, 'utf8');
  t.true(heap.includes(marker), 'the snapshot holds the stored sessions (the search would find what is there)');
  const live = devices.filter((device) => device.cookies.get('sid') !== undefined);
  t.true(live.length >= 3);
  for (const device of live) {
    const id = sessionIdOf(device.cookies.get('sid'))!;
    t.true(heap.includes(storeKeyOf([KEY_A], id)), 'stored under its store key');
  }
  for (const secret of secretsOf(devices, issued)) t.false(heap.includes(secret), `the heap holds ${secret}`);
});

// --- Key rotation ---

interface RotationSetup {
  /** An app on the shared store with these SESSION_KEYS (the first signs), a GatedStore in front. */
  appWith(keys: readonly string[]): Promise<{ app: RunningApp; gate: GatedStore }>;
  /** Whether the store holds this store key. */
  holds(storeKey: string): Promise<boolean>;
}

function rotationScenario(title: string, body: (t: ExecutionContext, setup: RotationSetup) => Promise<void>): void {
  for (const [name, storeTest] of [
    ['memory', test],
    ['redis', redisTest(test)],
  ] as const) {
    storeTest(`${name} store: ${title}`, async (t) => {
      const env: Record<string, string> = { LOG_LEVEL: 'warn' };
      let shared: MemoryStore | undefined;
      let holds: (storeKey: string) => Promise<boolean>;
      if (name === 'redis') {
        const prefix = uniquePrefix();
        Object.assign(env, {
          SESSION_STORE: 'redis',
          REDIS_URL: REDIS_URL ?? '',
          REDIS_KEY_PREFIX: prefix,
          ...PATIENT_REDIS,
        });
        t.teardown(() => deleteKeysWithPrefix(prefix));
        const client = await inspector();
        t.teardown(() => client.close());
        holds = async (storeKey) => (await client.exists(prefix + storeKey)) === 1;
      } else {
        const store = new MemoryStore({ maxEntries: 1_000 });
        shared = store;
        t.teardown(() => store.close());
        holds = async (storeKey) => store.segments().probation.concat(store.segments().protected).includes(storeKey);
      }
      const appWith = async (keys: readonly string[]) => {
        let gate!: GatedStore;
        const app = await appForTest(
          t,
          { ...env, SESSION_KEYS: keys.join(',') },
          {
            routes: addSignInRoutes,
            wrapStore: (inner) => (gate = new GatedStore(inner)),
            ...(shared === undefined ? {} : { store: shared, keepStore: true }),
          },
        );
        return { app, gate };
      };
      await body(t, { appWith, holds });
    });
  }
}

/** A device's cookie as an app with `keys` would re-sign it. */
function resigned(device: Device, keys: readonly string[]): string {
  const [id, issued] = device.cookies.get('sid')!.split('.');
  return new CookieSigner('sid', keys).encode(id, Number.parseInt(issued, 36));
}

rotationScenario(
  'a session outlives the rotation and its old key, moved to the new key’s hash',
  async (t, { appWith, holds }) => {
    const before = await appWith([KEY_A]);
    const laptop = new Device(before.app.url);
    await laptop.signIn('alice');
    await laptop.post('/note', { note: 'kept' });
    const id = sessionIdOf(laptop.cookies.get('sid'))!;
    t.true(await holds(storeKeyOf([KEY_A], id)));

    const during = await appWith([KEY_B, KEY_A]);
    const moved = new Device(during.app.url);
    moved.cookies.set('sid', laptop.cookies.get('sid')!);
    t.deepEqual(await moved.me(), { user: 'alice', note: 'kept' });
    t.is(moved.cookies.get('sid'), resigned(laptop, [KEY_B]), 're-signed with the new key, same id and issue time');
    t.false(await holds(storeKeyOf([KEY_A], id)), 'nothing left under the old key’s hash');
    t.true(await holds(storeKeyOf([KEY_B], id)), 'the session is under the new key’s');

    const late = new Device(during.app.url);
    late.cookies.set('sid', laptop.cookies.get('sid')!); // a tab that still sends the old cookie
    t.deepEqual(await late.me(), { user: 'alice', note: 'kept' }, 'the old cookie finds the moved session');

    const after = await appWith([KEY_B]);
    const final = new Device(after.app.url);
    final.cookies.set('sid', moved.cookies.get('sid')!);
    t.deepEqual(await final.me(), { user: 'alice', note: 'kept' }, 'and the old key can go');
    const phone = new Device(after.app.url);
    await phone.signIn('alice');
    await phone.post('/logout-everywhere');
    t.false(await holds(storeKeyOf([KEY_B], id)), 'its list entry followed it: sign out everywhere destroyed it');
  },
);

rotationScenario(
  'logout during the move, before the copy: logout wins, no copy survives',
  async (t, { appWith, holds }) => {
    const before = await appWith([KEY_A]);
    const laptop = new Device(before.app.url);
    await laptop.post('/note', { note: 'x' });
    const id = sessionIdOf(laptop.cookies.get('sid'))!;
    const { app, gate } = await appWith([KEY_B, KEY_A]);
    const mover = new Device(app.url);
    mover.cookies.set('sid', laptop.cookies.get('sid')!);
    const other = mover.copy();
    const held = gate.holdNext('create'); // the move's copy under the new key
    const moving = mover.me();
    await held.reached;
    const logout = await other.post('/logout');
    t.regex(logout.setCookies[0] ?? '', /^sid=;/);
    held.release();
    t.deepEqual(await moving, { user: null, note: 'x' }, 'it had read the session before the logout');
    t.is(mover.cookies.get('sid'), laptop.cookies.get('sid'), 'no re-signed cookie');
    t.false(await holds(storeKeyOf([KEY_A], id)));
    t.false(await holds(storeKeyOf([KEY_B], id)), 'the copy was destroyed');
    t.deepEqual(await mover.me(), { user: null, note: null });
  },
);

rotationScenario(
  'logout during the move, after the copy: logout destroys both, the move sends no cookie',
  async (t, { appWith, holds }) => {
    const before = await appWith([KEY_A]);
    const laptop = new Device(before.app.url);
    await laptop.signIn('alice');
    const id = sessionIdOf(laptop.cookies.get('sid'))!;
    const { app, gate } = await appWith([KEY_B, KEY_A]);
    const mover = new Device(app.url);
    mover.cookies.set('sid', laptop.cookies.get('sid')!);
    const other = mover.copy();
    const held = gate.holdNext('destroy'); // the move's delete of the old copy
    const moving = mover.me();
    await held.reached;
    t.true(await holds(storeKeyOf([KEY_B], id)), 'copied already');
    await other.post('/logout');
    held.release();
    await moving;
    t.is(mover.cookies.get('sid'), laptop.cookies.get('sid'), 'no re-signed cookie');
    t.false(await holds(storeKeyOf([KEY_A], id)));
    t.false(await holds(storeKeyOf([KEY_B], id)));
    t.deepEqual(await mover.me(), { user: null, note: null });
    const again = new Device(app.url);
    await again.signIn('alice');
    t.is((await again.sessions()).length, 1, 'and it left the list');
  },
);

rotationScenario(
  'logout with a cookie another mover re-signed, while a move is still under way: final',
  async (t, { appWith, holds }) => {
    const before = await appWith([KEY_A]);
    const laptop = new Device(before.app.url);
    await laptop.post('/note', { note: 'x' });
    const id = sessionIdOf(laptop.cookies.get('sid'))!;
    const { app, gate } = await appWith([KEY_B, KEY_A]);
    const slow = new Device(app.url);
    slow.cookies.set('sid', laptop.cookies.get('sid')!);
    const fast = slow.copy();
    const held = gate.holdNext('destroy'); // the slow request's delete of the old copy
    const moving = slow.me();
    await held.reached;
    t.deepEqual(await fast.me(), { user: null, note: 'x' }, 'a second request with the old cookie finds the copy');
    t.is(fast.cookies.get('sid'), resigned(laptop, [KEY_B]), 'and gets the re-signed cookie at once');
    await fast.post('/logout');
    held.release();
    await moving;
    t.is(slow.cookies.get('sid'), laptop.cookies.get('sid'), 'the slow move sends no cookie for the ended session');
    t.false(await holds(storeKeyOf([KEY_A], id)));
    t.false(await holds(storeKeyOf([KEY_B], id)));
  },
);

rotationScenario(
  'two requests move the same session at once: one session, under the new key',
  async (t, { appWith, holds }) => {
    const before = await appWith([KEY_A]);
    const laptop = new Device(before.app.url);
    await laptop.post('/note', { note: 'x' });
    const id = sessionIdOf(laptop.cookies.get('sid'))!;
    const { app, gate } = await appWith([KEY_B, KEY_A]);
    const first = new Device(app.url);
    first.cookies.set('sid', laptop.cookies.get('sid')!);
    const second = first.copy();
    const held = gate.holdNext('create');
    const moving = first.me();
    await held.reached; // the first has read it and is about to copy it
    t.deepEqual(await second.me(), { user: null, note: 'x' }, 'the second moves it meanwhile');
    held.release();
    t.deepEqual(await moving, { user: null, note: 'x' });
    for (const device of [first, second]) t.is(device.cookies.get('sid'), resigned(laptop, [KEY_B]));
    t.false(await holds(storeKeyOf([KEY_A], id)));
    t.true(await holds(storeKeyOf([KEY_B], id)));
    t.deepEqual(await first.me(), { user: null, note: 'x' });
  },
);

rotationScenario(
  'a logout that read the session under the old key before another request moved it: both go',
  async (t, { appWith, holds }) => {
    const before = await appWith([KEY_A]);
    const laptop = new Device(before.app.url);
    await laptop.post('/note', { note: 'x' });
    const id = sessionIdOf(laptop.cookies.get('sid'))!;
    const { app, gate } = await appWith([KEY_B, KEY_A]);
    const leaving = new Device(app.url);
    leaving.cookies.set('sid', laptop.cookies.get('sid')!);
    const mover = leaving.copy();
    const held = gate.holdNext('destroy'); // the logout's destroy, under the old key
    const logout = leaving.post('/logout');
    await held.reached;
    t.deepEqual(await mover.me(), { user: null, note: 'x' }, 'another request moves it meanwhile');
    t.true(await holds(storeKeyOf([KEY_B], id)));
    held.release();
    t.regex((await logout).setCookies[0] ?? '', /^sid=;/, 'the logout clears the cookie');
    t.false(await holds(storeKeyOf([KEY_A], id)));
    t.false(await holds(storeKeyOf([KEY_B], id)), 'the moved session is destroyed too');
    t.deepEqual(await mover.me(), { user: null, note: null }, 'its re-signed cookie opens nothing');
  },
);

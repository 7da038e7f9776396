/**
 * A user's signed-in sessions are stored data too, so input: a Redis key of a user's list or epoch that
 * this app would not have written (an entry that is not JSON, a key of another type) never gives a 500, nor
 * a 503 that lasts until the key expires, and never keeps sign out everywhere from working.
 */
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { userKeyOf } from '../app/session/user-sessions.ts';
import { appForTest } from './helpers/app.ts';
import { deleteKeysWithPrefix, inspector, PATIENT_REDIS, REDIS_URL, redisTest, uniquePrefix } from './helpers/redis.ts';
import { addSignInRoutes } from './helpers/sign-in-routes.ts';
import { Device } from './helpers/sign-in-setup.ts';

const test = redisTest(anyTest as TestFn);

/** An app with the sign-in routes on Redis, one device signed in as alice, and the prefix of alice's keys. */
async function signedIn(t: ExecutionContext, env: Record<string, string> = {}) {
  const prefix = uniquePrefix();
  t.teardown(() => deleteKeysWithPrefix(prefix));
  const app = await appForTest(
    t,
    {
      SESSION_STORE: 'redis',
      REDIS_URL: REDIS_URL ?? '',
      REDIS_KEY_PREFIX: prefix,
      LOG_LEVEL: 'warn',
      ...PATIENT_REDIS,
      ...env,
    },
    { routes: addSignInRoutes },
  );
  const device = new Device(app.url);
  t.is((await device.signIn('alice')).status, 200);
  const [{ handle }] = await device.sessions();
  const client = await inspector();
  t.teardown(() => client.close());
  return { app, device, handle, client, tag: `${prefix}{${userKeyOf('alice')}}:` };
}

test('a user entry that is not JSON: listed, rewritten by a move, and revoked without a 500', async (t) => {
  const { device, handle, client, tag } = await signedIn(t);
  await client.hSet(`${tag}sessions`, handle, '{not json');
  const list = await device.request('/sessions');
  t.is(list.status, 200, `GET /sessions answered ${list.status} ${list.body}`);
  t.deepEqual(
    (JSON.parse(list.body) as Array<{ handle: string }>).map((entry) => entry.handle),
    [handle],
  );
  t.is((await device.post('/regenerate')).status, 200, 'a move (new store key) rewrites the entry');
  t.is((await device.me()).user, 'alice');

  await client.hSet(`${tag}sessions`, handle, '"a JSON string"');
  const other = new Device(device.baseUrl);
  t.is((await other.signIn('alice')).status, 200);
  t.is((await other.post('/revoke', { handle })).status, 204, 'revoking the entry that holds no store key');
  t.is((await device.me()).user, null, 'and that session is signed out');
});

test('a user entry that is not JSON, pushed out past SESSION_MAX_PER_USER, without a 500', async (t) => {
  const { device, handle, client, tag } = await signedIn(t, { SESSION_MAX_PER_USER: '1' });
  await client.hSet(`${tag}sessions`, handle, '[1');
  t.is((await new Device(device.baseUrl).signIn('alice')).status, 200);
  t.is((await device.me()).user, null, 'the session pushed out is signed out');
});

test('a user entry that is not JSON, signed out everywhere without a 500', async (t) => {
  const { device, handle, client, tag } = await signedIn(t);
  const other = new Device(device.baseUrl);
  t.is((await other.signIn('alice')).status, 200);
  await client.hSet(`${tag}sessions`, handle, 'null');
  t.is((await other.post('/logout-everywhere')).status, 200);
  t.is((await device.me()).user, null);
  t.is((await other.me()).user, null);
});

type Client = Awaited<ReturnType<typeof inspector>>;
const CORRUPTIONS: Array<[string, string, (client: Client, key: string) => Promise<unknown>]> = [
  ...['epoch', 'expires', 'used', 'sessions'].map(
    (key): [string, string, (client: Client, key: string) => Promise<unknown>] => [
      `${key} key of another Redis type`,
      key,
      async (client, name) => {
        await client.del(name);
        await client.rPush(name, ['x']);
      },
    ],
  ),
  ['epoch that is not a count', 'epoch', (client, name) => client.set(name, 'abc')],
];

for (const [what, key, corrupt] of CORRUPTIONS) {
  test(`a user's ${what}: no 500 or 503, and sign out everywhere holds`, async (t) => {
    const { device, client, tag } = await signedIn(t);
    await corrupt(client, `${tag}${key}`);
    const statuses: Record<string, number> = {};
    statuses.me = (await device.request('/me')).status;
    statuses.list = (await device.request('/sessions')).status;
    const other = new Device(device.baseUrl);
    statuses.signIn = (await other.signIn('alice')).status;
    statuses.everywhere = (await other.post('/logout-everywhere')).status;
    t.deepEqual(statuses, { me: 200, list: 200, signIn: 200, everywhere: 200 });
    t.is((await device.me()).user, null, 'the first device is signed out');
    t.is((await other.me()).user, null);
    t.is(await client.type(`${tag}${key}`), key === 'epoch' ? 'string' : 'none');
  });
}

/**
 * "Everywhere" means everywhere, when requests overlap: each bad interleaving is made to happen on purpose
 * (GatedStore holds one store call of a request while another request signs out everywhere, revokes or
 * signs in), with every store, on one instance and on two sharing the store. Checked through the answers,
 * through later requests, and through the store.
 */
import type { ExecutionContext } from 'ava';
import { sessionIdOf } from './helpers/browser.ts';
import { Device, type Instance, type Setup, storeScenario } from './helpers/sign-in-setup.ts';
import { storeKeyOf } from './helpers/store-key.ts';

const PHONE =
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36';

/** Alice signed in on a laptop (on `setup.app`) and a phone (on `phoneOn`). */
async function aliceOnTwoDevices(setup: Setup, phoneOn: Instance = setup) {
  const laptop = new Device(setup.app.url);
  const phone = new Device(phoneOn.app.url, PHONE);
  await laptop.signIn('alice');
  await phone.signIn('alice');
  return { laptop, phone, phoneKey: storeKeyOf(setup.app, sessionIdOf(phone.cookies.get('sid'))!) };
}

/** The session keys the store holds (the users' own keys left out). */
async function sessionKeys(setup: Setup): Promise<string[]> {
  return (await setup.storedKeys()).filter((key) => !key.includes('{u:'));
}

async function expectSignedOut(t: ExecutionContext, setup: Setup, device: Device, key: string, label: string) {
  for (const instance of [setup, setup.other]) {
    const seen = new Device(instance.app.url);
    for (const [name, value] of device.cookies) seen.cookies.set(name, value);
    t.deepEqual(await seen.me(), { user: null, note: null }, `${label}: signed out on every instance`);
  }
  t.is(await setup.app.store.get(key, 60_000), undefined, `${label}: nothing in the store`);
}

storeScenario(
  'sign out everywhere while a write-back of another device is in flight: the write-back is refused',
  async (t, setup) => {
    const { laptop, phone, phoneKey } = await aliceOnTwoDevices(setup);
    const held = setup.gate.holdNext('update');
    const late = phone.post('/note', { note: 'written late' });
    await held.reached; // the phone's request has read and checked its session and is about to write it back
    t.deepEqual(JSON.parse((await laptop.post('/logout-everywhere')).body), { ended: 2 });
    held.release();
    const answer = await late;
    t.is(answer.status, 200, 'the handler had run: its answer goes out');
    t.deepEqual(answer.setCookies, [], 'no cookie: nothing was written');
    await expectSignedOut(t, setup, phone, phoneKey, 'the phone');
    t.deepEqual(await sessionKeys(setup), [], 'no session of alice is left');
  },
);

storeScenario(
  'sign out everywhere while another device has read its session but not yet had it checked: refused',
  async (t, setup) => {
    const { laptop, phone, phoneKey } = await aliceOnTwoDevices(setup);
    const held = setup.gate.holdNext('users.touch');
    const late = phone.me();
    await held.reached;
    await laptop.post('/logout-everywhere');
    held.release();
    t.deepEqual(await late, { user: null, note: null }, 'the check after the bump refuses it, in this very request');
    await expectSignedOut(t, setup, phone, phoneKey, 'the phone');
  },
);

storeScenario(
  'a sign-in on another device listed before sign out everywhere bumps the epoch: it fails, and leaves nothing',
  async (t, setup) => {
    const laptop = new Device(setup.app.url);
    await laptop.signIn('alice');
    const phone = new Device(setup.app.url, PHONE);
    const held = setup.gate.holdNext('create');
    const login = phone.signIn('alice');
    await held.reached; // listed (under the old epoch), its session not stored yet
    await laptop.post('/logout-everywhere');
    held.release();
    const answer = await login;
    t.is(answer.status, 409);
    t.deepEqual(JSON.parse(answer.body), { signedIn: false });
    t.deepEqual(answer.setCookies, [], 'no cookie for a session that is already signed out');
    t.deepEqual(await phone.me(), { user: null, note: null });
    t.deepEqual(await sessionKeys(setup), [], 'its session was destroyed as soon as it was stored');
    const again = new Device(setup.app.url);
    await again.signIn('alice');
    t.is((await again.sessions()).length, 1, 'and it is not listed');
  },
);

storeScenario(
  'a sign-in stored before sign out everywhere but checked after it: it fails, and leaves nothing',
  async (t, setup) => {
    const laptop = new Device(setup.app.url);
    await laptop.signIn('alice');
    const phone = new Device(setup.app.url, PHONE);
    const held = setup.gate.holdNext('users.touch'); // the phone has no session yet: its first check is the sign-in's
    const login = phone.signIn('alice');
    await held.reached;
    t.deepEqual(JSON.parse((await laptop.post('/logout-everywhere')).body), { ended: 2 });
    held.release();
    const answer = await login;
    t.deepEqual(JSON.parse(answer.body), { signedIn: false });
    t.deepEqual(answer.setCookies, []);
    t.deepEqual(await sessionKeys(setup), []);
  },
);

storeScenario(
  'a sign-in on another device listed after sign out everywhere bumped the epoch: it stands',
  async (t, setup) => {
    const laptop = new Device(setup.app.url);
    await laptop.signIn('alice');
    const phone = new Device(setup.app.url, PHONE);
    const held = setup.gate.holdNext('users.add');
    const login = phone.signIn('alice');
    await held.reached; // the phone's sign-in is about to be listed
    t.deepEqual(JSON.parse((await laptop.post('/logout-everywhere')).body), { ended: 1 });
    held.release();
    const answer = await login;
    t.deepEqual(JSON.parse(answer.body), { signedIn: true });
    t.deepEqual(await phone.me(), { user: 'alice', note: null }, 'a sign-in after the sign-out is a new sign-in');
    t.deepEqual(await laptop.me(), { user: null, note: null });
    t.deepEqual(
      (await phone.sessions()).map((session) => session.current),
      [true],
    );
  },
);

storeScenario(
  'two instances: sign out everywhere on one while the other serves a write-back of another device',
  async (t, setup) => {
    const { laptop, phone, phoneKey } = await aliceOnTwoDevices(setup, setup.other);
    const held = setup.other.gate.holdNext('update');
    const late = phone.post('/note', { note: 'written late' });
    await held.reached;
    t.deepEqual(JSON.parse((await laptop.post('/logout-everywhere')).body), { ended: 2 });
    held.release();
    t.deepEqual((await late).setCookies, []);
    await expectSignedOut(t, setup, phone, phoneKey, 'the phone');
    t.deepEqual(await sessionKeys(setup), []);
  },
);

storeScenario(
  'two instances: sign out everywhere on one while the other has read a session and not yet checked it',
  async (t, setup) => {
    const { laptop, phone, phoneKey } = await aliceOnTwoDevices(setup, setup.other);
    const held = setup.other.gate.holdNext('users.touch');
    const late = phone.me();
    await held.reached;
    await laptop.post('/logout-everywhere');
    held.release();
    t.deepEqual(await late, { user: null, note: null });
    await expectSignedOut(t, setup, phone, phoneKey, 'the phone');
  },
);

storeScenario('revoke by handle while the revoked session has a write-back in flight: refused', async (t, setup) => {
  const { laptop, phone, phoneKey } = await aliceOnTwoDevices(setup);
  const phoneHandle = (await laptop.sessions()).find((session) => !session.current)!.handle;
  const held = setup.gate.holdNext('update');
  const late = phone.post('/note', { note: 'written late' });
  await held.reached;
  t.is((await laptop.post('/revoke', { handle: phoneHandle })).status, 204);
  held.release();
  t.deepEqual((await late).setCookies, []);
  await expectSignedOut(t, setup, phone, phoneKey, 'the phone');
  t.deepEqual((await laptop.me()).user, 'alice', 'the laptop stays signed in');
});

storeScenario('revoke by handle while the revoked session is read but not yet checked: refused', async (t, setup) => {
  const { laptop, phone, phoneKey } = await aliceOnTwoDevices(setup, setup.other);
  const phoneHandle = (await laptop.sessions()).find((session) => !session.current)!.handle;
  const held = setup.other.gate.holdNext('users.touch');
  const late = phone.me();
  await held.reached;
  t.is((await laptop.post('/revoke', { handle: phoneHandle })).status, 204);
  held.release();
  t.deepEqual(await late, { user: null, note: null });
  await expectSignedOut(t, setup, phone, phoneKey, 'the phone');
});

storeScenario('regenerate() of a session revoked meanwhile: no new session survives', async (t, setup) => {
  const { laptop, phone } = await aliceOnTwoDevices(setup);
  const phoneHandle = (await laptop.sessions()).find((session) => !session.current)!.handle;
  const held = setup.gate.holdNext('create'); // the phone's old id is destroyed, its new one not stored yet
  const regenerate = phone.post('/regenerate');
  await held.reached;
  t.is((await laptop.post('/revoke', { handle: phoneHandle })).status, 204);
  held.release();
  const answer = await regenerate;
  t.deepEqual(answer.setCookies, [], 'no cookie for the new id');
  t.deepEqual(await phone.me(), { user: null, note: null });
  t.deepEqual((await sessionKeys(setup)).length, 1, "only the laptop's session is left");
});

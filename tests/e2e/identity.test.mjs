// Identity resolution end to end with the real Segment SDK (@segment/analytics-node): anonymous
// browsing, then signup (identify with both ids), then events with only the old anonymousId all
// land on one profile, across partitions, and still do after kill -9; a declared identifier
// (email) links a second device; a second userId on a shared device is refused and shown on both
// profiles; a person anonymous and known in the same journey ends up in it once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { start, request, uid } from './lib/journeyd.mjs';
import { api, sdk } from './lib/clients.mjs';

/** A server whose identify traits `email` identify people, with its own empty folders. */
async function server(t, dataDir) {
  const dir = mkdtempSync(join(tmpdir(), 'journeyd-e2e-idn-'));
  mkdirSync(join(dir, 'j'));
  mkdirSync(join(dir, 's'));
  const args = ['--set', `journeys.dir=${join(dir, 'j')}`, '--set', `segments.dir=${join(dir, 's')}`,
    '--set', 'identity.identifiers=email'];
  const s = await start({ t, args, dataDir });
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return s;
}

test('anonymous browsing, signup, then the old anonymousId alone: one profile, also after kill -9', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'journeyd-e2e-idn-data-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  let s = await server(t, dataDir);
  const a = sdk(s);
  const people = Array.from({ length: 12 }, (_, i) => ({ user: uid(`user${i}`), anon: uid(`browser${i}`) }));
  for (const p of people) {
    await a.send('page', { anonymousId: p.anon, name: 'Pricing' });
    await a.send('track', { anonymousId: p.anon, event: 'Product Viewed', properties: { sku: 'A1' } });
  }
  for (const p of people)
    await a.send('identify', { userId: p.user, anonymousId: p.anon, traits: { email: `${p.user}@Example.com`, plan: 'trial' } });
  for (const p of people) await a.send('track', { anonymousId: p.anon, event: 'Cart Viewed' });   // signed out, same browser
  await a.close();

  const check = async (srv) => {
    for (const p of people) {
      const byUser = await api(srv, 'GET', `/v1/profiles/${p.user}`);
      assert.equal(byUser.status, 200, byUser.text);
      const j = byUser.json;
      assert.equal(j.userId, p.user);
      assert.deepEqual(j.anonymousIds, [p.anon]);
      assert.equal(j.counts.page, 1, byUser.text);
      assert.equal(j.counts.track, 2, byUser.text);     // Product Viewed before signup, Cart Viewed after
      assert.equal(j.events['Cart Viewed'], 1);
      assert.equal(j.traits.plan, 'trial');
      assert.deepEqual(j.identifiers, { email: [`${p.user}@example.com`] });   // emails compare in lower case
      for (const other of [p.anon, `${p.user}@example.com`, `${p.user}@EXAMPLE.com`.toLowerCase()]) {
        const r = await api(srv, 'GET', `/v1/profiles/${encodeURIComponent(other)}`);
        assert.equal(r.status, 200, `${other}: ${r.text}`);
        assert.deepEqual(r.json, j, `${other} finds the same profile`);
      }
    }
  };
  await check(s);
  let m = await request(s.url, '/metrics', {});
  assert.match(m.text, new RegExp(`journeyd_identity_merges_total ${people.length}\\b`));

  await s.kill9();                       // no snapshot: the log alone rebuilds directory and profiles
  s = await server(t, dataDir);
  await check(s);
  const b = sdk(s);
  await b.send('track', { anonymousId: people[0].anon, event: 'Checkout Started' });   // routed after the restart
  await b.close();
  const r = await api(s, 'GET', `/v1/profiles/${people[0].user}`);
  assert.equal(r.json.events['Checkout Started'], 1, r.text);
  await s.stop();
});

test('an email links a second device; a second userId on a shared device is refused and shown', async (t) => {
  const s = await server(t);
  const a = sdk(s);
  const ann = uid('ann'), laptop = uid('laptop'), phone = uid('phone'), bob = uid('bob');
  await a.send('identify', { userId: ann, anonymousId: laptop, traits: { email: `${ann}@example.com` } });
  await a.send('track', { anonymousId: phone, event: 'App Opened' });
  await a.send('identify', { anonymousId: phone, traits: { email: `${ann}@example.com`, device: 'phone' } });   // newsletter form on the phone
  await a.send('track', { anonymousId: phone, event: 'App Opened' });
  let r = await api(s, 'GET', `/v1/profiles/${ann}`);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual([...r.json.anonymousIds].sort(), [laptop, phone].sort(), r.text);
  assert.equal(r.json.events['App Opened'], 2, r.text);
  assert.equal(r.json.traits.device, 'phone');

  await a.send('identify', { userId: bob, anonymousId: laptop });   // bob signs in on ann's laptop
  await a.send('identify', { userId: bob, traits: { email: `${ann}@example.com` } });   // and claims her email
  await a.close();
  r = await api(s, 'GET', `/v1/profiles/${bob}`);
  assert.equal(r.status, 200, r.text);
  assert.ok(!r.json.anonymousIds?.includes(laptop), 'the laptop stays with ann');
  assert.equal(r.json.identifiers, undefined, r.text);
  assert.equal(r.json.mergesRefused.length, 2, r.text);
  for (const n of r.json.mergesRefused) {
    assert.equal(n.with, ann);
    assert.match(n.reason, /identity\.max_user_ids \(1\)/);
    assert.match(n.at, /^\d{4}-\d\d-\d\dT/);
  }
  const annNow = await api(s, 'GET', `/v1/profiles/${ann}`);
  assert.equal(annNow.json.mergesRefused.length, 2, annNow.text);
  assert.equal(annNow.json.mergesRefused[0].with, bob);
  r = await api(s, 'GET', `/v1/profiles/${laptop}`);
  assert.equal(r.json.userId, ann);
  let m = await request(s.url, '/metrics', {});
  assert.match(m.text, /journeyd_identity_merges_refused_total 2\b/);

  // deleting by the email deletes the person; none of their identifiers finds anything after
  r = await api(s, 'DELETE', `/v1/profiles/${encodeURIComponent(`${ann}@example.com`)}`);
  assert.equal(r.status, 200, r.text);
  for (const id of [ann, laptop, phone, `${ann}@example.com`]) {
    r = await api(s, 'GET', `/v1/profiles/${encodeURIComponent(id)}`);
    assert.equal(r.status, 404, `${id}: ${r.text}`);
  }
  m = await request(s.url, '/metrics', {});
  assert.match(m.text, /journeyd_profiles_deleted_total 1\b/);
});

const BROWSE = `id: idn-browse
name: Browse follow-up
entry: { event: Product Viewed }
reentry: never
nodes:
  pause: { wait: 1h, next: nudge }
  nudge: { send: { channel: email, template: browse_nudge } }
`;

test('a person in the same journey as anonymous and as known stays in it once after signup', async (t) => {
  const s = await server(t);
  let r = await api(s, 'POST', '/v1/journeys', BROWSE);
  assert.equal(r.status, 201, r.text);
  r = await api(s, 'POST', '/v1/journeys/idn-browse/publish');
  assert.equal(r.status, 200, r.text);
  const a = sdk(s);
  const user = uid('cat'), anon = uid('tablet'), other = uid('dan'), otherAnon = uid('pc');
  await a.send('track', { userId: user, event: 'Product Viewed' });       // known, on one device
  await a.send('track', { anonymousId: anon, event: 'Product Viewed' });  // anonymous, on another
  await a.send('track', { anonymousId: otherAnon, event: 'Product Viewed' });   // someone only anonymous
  await a.send('identify', { userId: user, anonymousId: anon });
  await a.send('identify', { userId: other, anonymousId: otherAnon });
  await a.send('track', { anonymousId: anon, event: 'Product Viewed' });  // reentry: never, merged history
  await a.close();

  r = await api(s, 'GET', `/v1/profiles/${user}/journeys`);
  assert.equal(r.status, 200, r.text);
  const live = r.json.filter((x) => x.journey === 'idn-browse' && x.state !== 'exited');
  assert.equal(live.length, 1, r.text);
  r = await api(s, 'GET', `/v1/profiles/${other}/journeys`);   // the anonymous instance moved with dan
  assert.equal(r.json.filter((x) => x.journey === 'idn-browse' && x.state !== 'exited').length, 1, r.text);
  r = await api(s, 'GET', '/v1/journeys/idn-browse');
  assert.equal(r.status, 200, r.text);
  const st = r.json.stats ?? r.json.versions?.[0]?.stats;
  assert.ok(st, r.text);
  assert.equal(st.entered, 3, r.text);
  assert.equal(st.exits.merged, 1, r.text);
  assert.equal(st.active, 2, r.text);
});

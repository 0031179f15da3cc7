// Profiles end to end with the real Segment SDK: segments defined over the API and entered as
// traits change (with the journeys entered on them), and deleting a person: a late event, also by
// the old anonymousId alone, recreates nothing; an identify brings them back.
//
// Timed segments ("quiet for 3 days") are checked on the virtual clock in tests/unit (engine
// test_segment_flips_on_the_clock); here the segments change with traits, in real time.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { start, request, uid } from './lib/journeyd.mjs';
import { api, sdk } from './lib/clients.mjs';

/** A server with empty journeys and segments folders (the API defines them). */
async function server(t) {
  const dir = mkdtempSync(join(tmpdir(), 'journeyd-e2e-prof-'));
  mkdirSync(join(dir, 'j'));
  mkdirSync(join(dir, 's'));
  const s = await start({ args: ['--set', `journeys.dir=${join(dir, 'j')}`, '--set', `segments.dir=${join(dir, 's')}`] });
  t.after(async () => { await s.stop(); rmSync(dir, { recursive: true, force: true }); });
  return s;
}

test('segments follow traits and start journeys; sizes and members are readable', async (t) => {
  const s = await server(t);
  const seg = `id: pro\nname: Pro plan\nwhen: has(profile.traits.plan) && profile.traits.plan == "pro"\n`;
  let r = await api(s, 'POST', '/v1/segments', seg);
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.size, 0);
  r = await api(s, 'POST', '/v1/segments', seg);
  assert.equal(r.status, 409, r.text);
  r = await api(s, 'POST', '/v1/segments', 'id: bad\nwhen: nope(\nextra: 1\n');
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.errors.length, 2, r.text);
  r = await api(s, 'POST', '/v1/journeys', 'id: pro-welcome\nentry: { segment_enter: pro }\nnodes:\n  m: { send: { channel: email, template: pro_welcome } }\n');
  assert.equal(r.status, 201, r.text);
  r = await api(s, 'POST', '/v1/journeys/pro-welcome/publish');
  assert.equal(r.status, 200, r.text);

  const a = sdk(s);
  const users = [uid('ann'), uid('bob'), uid('cy')];
  for (const u of users) await a.send('identify', { userId: u, traits: { plan: 'pro' } });
  await a.send('identify', { userId: users[2], traits: { plan: 'free' } });   // cy leaves
  await a.close();

  r = await api(s, 'GET', '/v1/segments/pro');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.size, 2);
  r = await api(s, 'GET', '/v1/segments/pro/members?limit=1');
  assert.equal(r.json.members.length, 1);
  const page2 = await api(s, 'GET', `/v1/segments/pro/members?limit=1&after=${encodeURIComponent(r.json.next)}`);
  assert.equal(page2.json.members.length, 1);
  assert.equal(page2.json.next, null);
  assert.deepEqual([...r.json.members, ...page2.json.members].sort(), users.slice(0, 2).sort());
  r = await api(s, 'GET', `/v1/profiles/${users[0]}/segments`);
  assert.deepEqual(r.json, ['pro']);
  r = await api(s, 'GET', `/v1/profiles/${users[2]}/segments`);
  assert.deepEqual(r.json, []);
  // entering the segment started the journey: one welcome each, cy included (entered, then left)
  for (const u of users) {
    r = await api(s, 'GET', `/v1/intents?userId=${u}`);
    assert.equal(r.json.length, 1, `${u}: ${r.text}`);
    assert.equal(r.json[0].template, 'pro_welcome');
  }
});

test('a deleted person stays deleted: late events (by userId or old anonymousId) recreate nothing, identify brings them back', async (t) => {
  const s = await server(t);
  const user = uid('dee'), anon = uid('device');
  const a = sdk(s);
  await a.send('track', { anonymousId: anon, event: 'Viewed Product' });       // browsing anonymously
  await a.send('identify', { userId: user, anonymousId: anon, traits: { email: 'dee@example.com' } });   // signs up
  await a.send('track', { userId: user, event: 'Order Completed' });
  let r = await api(s, 'GET', `/v1/profiles/${user}`);
  assert.equal(r.status, 200, r.text);
  assert.ok(r.json.anonymousIds.includes(anon), r.text);

  r = await api(s, 'DELETE', `/v1/profiles/${user}`);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { deleted: user });
  r = await api(s, 'DELETE', `/v1/profiles/${user}`);
  assert.equal(r.status, 404, r.text);

  // late events, as an SDK's queue would send them
  await a.send('track', { userId: user, event: 'Order Completed' });
  await a.send('page', { userId: user, name: 'Receipt' });
  await a.send('track', { anonymousId: anon, event: 'Viewed Product' });    // the old device, signed out
  r = await api(s, 'GET', `/v1/profiles/${user}`);
  assert.equal(r.status, 404, r.text);
  // the anonymous profile from before the sign-up was theirs too: gone, and not recreated
  r = await api(s, 'GET', `/v1/profiles/${anon}`);
  assert.equal(r.status, 404, r.text);
  const m = await request(s.url, '/metrics', {});
  assert.match(m.text, /journeyd_profiles_deleted_total 1/);
  assert.match(m.text, /journeyd_events_suppressed_total 3/);

  // they come back on purpose: a new, empty profile
  await a.send('identify', { userId: user, traits: { plan: 'free' } });
  await a.close();
  r = await api(s, 'GET', `/v1/profiles/${user}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.traits.email, undefined, 'nothing of the deleted profile');
  assert.equal(r.json.traits.plan, 'free');
});

test('consent: set by the SDK through traits.consent and by POST /v1/consent, with its source and time, readable in conditions', async (t) => {
  const s = await server(t);
  const user = uid('cat');
  const a = sdk(s);
  await a.send('identify', { userId: user, traits: { plan: 'pro', consent: { 'email/marketing': true } } });
  await a.close();
  let r = await api(s, 'POST', '/v1/consent', JSON.stringify({ userId: user, consent: { 'email/marketing': false, 'sms/alerts': true }, source: 'preference-center' }), 'application/json');
  assert.equal(r.status, 200, r.text);
  r = await api(s, 'POST', '/v1/consent', JSON.stringify({ userId: user, consent: { 'email/marketing': 'yes' } }), 'application/json');
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.at, 'consent');
  r = await api(s, 'GET', `/v1/profiles/${user}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.traits.consent, undefined, 'consent is not a trait');
  assert.equal(r.json.traits.plan, 'pro');
  assert.equal(r.json.consent['email/marketing'].granted, false);
  assert.equal(r.json.consent['email/marketing'].source, 'preference-center');
  assert.ok(Date.parse(r.json.consent['email/marketing'].at) > 0);
  assert.equal(r.json.consent['sms/alerts'].granted, true);
  // the console's search: by a trait's value
  r = await api(s, 'GET', `/v1/profiles?trait=plan&value=pro`);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, [user]);
  r = await api(s, 'GET', `/v1/profiles?trait=plan`);
  assert.equal(r.status, 400, r.text);
  // a segment over consent sees it
  r = await api(s, 'POST', '/v1/segments', 'id: sms-ok\nwhen: >-\n  "sms/alerts" in profile.consent && profile.consent["sms/alerts"]\n');
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.size, 1, r.text);   /* defining it re-evaluates the people the engine knows */
  // consented() applies the consent rules (docs/api.md "Consent decisions"): the topic refusal
  // decides, a later channel grant does not undo it, a topic grant does
  r = await api(s, 'POST', '/v1/segments', 'id: mail-ok\nwhen: consented("email", "marketing")\n');
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.size, 0, r.text);
  r = await api(s, 'POST', '/v1/segments', 'id: alerts-ok\nwhen: consented("sms", "alerts")\n');
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.size, 1, r.text);
  r = await api(s, 'POST', '/v1/journeys', 'id: promo\nentry: { event: Go }\nreentry: always\nnodes:\n' +
    '  route:\n    branch:\n      - { when: "consented(\'email\', \'marketing\')", next: mail }\n      - { else: sms }\n' +
    '  mail: { send: { channel: email, template: promo } }\n  sms: { send: { channel: sms, template: promo } }\n');
  assert.equal(r.status, 201, r.text);
  r = await api(s, 'POST', '/v1/journeys/promo/publish');
  assert.equal(r.status, 200, r.text);
  const promo = async (n, node) => {
    const c = sdk(s);
    await c.send('track', { userId: user, event: 'Go' });
    await c.close();
    for (const deadline = Date.now() + 5000; ; await new Promise((ok) => setTimeout(ok, 50))) {
      r = await api(s, 'GET', `/v1/intents?userId=${user}`);
      assert.equal(r.status, 200, r.text);
      if (r.json.length >= n) break;
      assert.ok(Date.now() < deadline, `no intent ${n}: ${r.text}`);
    }
    assert.equal(r.json[0].node, node, r.text);   /* newest first */
  };
  await promo(1, 'sms');
  r = await api(s, 'POST', '/v1/consent', JSON.stringify({ userId: user, consent: { email: true }, source: 'login' }), 'application/json');
  assert.equal(r.status, 200, r.text);
  await promo(2, 'sms');
  r = await api(s, 'POST', '/v1/consent', JSON.stringify({ userId: user, consent: { 'email/marketing': true } }), 'application/json');
  assert.equal(r.status, 200, r.text);
  await promo(3, 'mail');
  r = await api(s, 'GET', '/v1/segments/mail-ok');   /* the identify that granted it re-evaluated the person */
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.size, 1, r.text);
});

// A profile's timeline end to end with the real Segment SDK: the latest events and the messages
// journeys sent appear in GET /v1/profiles/{id}, newest first, and after a merge (an identify with
// userId and anonymousId) the anonymous events are in the user's timeline. profiles.timeline 0
// turns it off. The format and the bytes it costs: docs/internals/profile.md ("Timeline").

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { start, uid, waitForProfile, BIN } from './lib/journeyd.mjs';
import { api, sdk } from './lib/clients.mjs';

async function server(t, extra = []) {
  const dir = mkdtempSync(join(tmpdir(), 'journeyd-e2e-tl-'));
  mkdirSync(join(dir, 'j'));
  mkdirSync(join(dir, 's'));
  const s = await start({ args: ['--set', `journeys.dir=${join(dir, 'j')}`, '--set', `segments.dir=${join(dir, 's')}`, ...extra] });
  t.after(async () => { await s.stop(); rmSync(dir, { recursive: true, force: true }); });
  return s;
}

const WELCOME = 'id: tl-welcome\nentry: { event: Signed Up }\nnodes:\n  hello: { send: { channel: email, template: welcome } }\n';

test('the timeline shows events and journey messages, newest first, merged across identities', async (t) => {
  const s = await server(t);
  let r = await api(s, 'POST', '/v1/journeys', WELCOME);
  assert.equal(r.status, 201, r.text);
  r = await api(s, 'POST', '/v1/journeys/tl-welcome/publish');
  assert.equal(r.status, 200, r.text);

  const a = sdk(s);
  const user = uid('tl-user'), anon = uid('tl-anon');
  const base = Date.now() - 10 * 60_000;   // ten minutes ago, a second apart
  const at = (k) => new Date(base + k * 1000);
  await a.send('track', { anonymousId: anon, event: 'Product Viewed', timestamp: at(0), properties: { sku: 'A-1' } });
  await a.send('page', { anonymousId: anon, name: 'Pricing', timestamp: at(1) });
  await a.send('identify', { userId: user, anonymousId: anon, traits: { plan: 'pro' }, timestamp: at(2) });   // merges anon
  await a.send('track', { userId: user, event: 'Signed Up', timestamp: at(3) });   // enters tl-welcome
  await a.close();

  r = await waitForProfile(s, user, (j) => (j.timeline ?? []).some((e) => e.type === 'message') &&
    (j.timeline ?? []).some((e) => e.name === 'Product Viewed'));
  const tl = r.json.timeline;
  for (let i = 1; i < tl.length; i++) assert.ok(tl[i - 1].at >= tl[i].at, `newest first: ${r.text}`);
  const msg = tl.find((e) => e.type === 'message');
  assert.deepEqual(Object.keys(msg).sort(), ['at', 'channel', 'name', 'template', 'type']);
  assert.equal(msg.name, 'tl-welcome/hello');
  assert.equal(msg.channel, 'email');
  assert.equal(msg.template, 'welcome');
  assert.match(msg.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  // the events, by their own timestamps (give or take the ingest's clock-skew correction, a few
  // ms), the anonymous ones merged in
  const evs = tl.filter((e) => e.type !== 'message');
  assert.deepEqual(evs.map(({ at: _, ...e }) => e), [
    { type: 'track', name: 'Signed Up' },
    { type: 'identify' },
    { type: 'page', name: 'Pricing' },
    { type: 'track', name: 'Product Viewed' },
  ], r.text);
  evs.forEach((e, i) => assert.ok(Math.abs(Date.parse(e.at) - at(3 - i).getTime()) < 1000, r.text));
  assert.ok(msg.at >= evs[0].at, r.text);
  // the anonymousId finds the same profile and timeline
  const byAnon = await api(s, 'GET', `/v1/profiles/${anon}`);
  assert.deepEqual(byAnon.json.timeline, tl);
});

test('profiles.timeline bounds the timeline; 0 turns it off', async (t) => {
  const two = await server(t, ['--set', 'profiles.timeline=2']);
  const off = await server(t, ['--set', 'profiles.timeline=0']);
  const user = uid('tl-bound');
  for (const s of [two, off]) {
    const a = sdk(s);
    for (let k = 0; k < 4; k++) await a.send('track', { userId: user, event: `E${k}`, timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, k)) });
    await a.close();
  }
  let r = await waitForProfile(two, user, (j) => j.counts.track === 4);
  assert.deepEqual(r.json.timeline.map((e) => [e.type, e.name, e.at.slice(0, 19)]), [
    ['track', 'E3', '2026-01-01T00:00:03'],
    ['track', 'E2', '2026-01-01T00:00:02'],
  ], r.text);
  r = await waitForProfile(off, user, (j) => j.counts.track === 4);
  assert.equal(r.json.timeline, undefined, r.text);
  const dir = mkdtempSync(join(tmpdir(), 'journeyd-e2e-tl-bad-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bad = spawnSync(BIN, ['serve', '--data', dir, '--listen', '127.0.0.1:0', '--set', 'profiles.timeline=101'],
    { encoding: 'utf8', timeout: 10_000 });
  assert.notEqual(bad.status, 0, 'a timeline past 100 is refused');
  assert.match(bad.stderr, /profiles\.timeline/, bad.stderr);
});

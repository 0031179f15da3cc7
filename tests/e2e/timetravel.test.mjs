// Time-based behaviour end to end without waiting: a server started with clock.travel: 1 lets
// POST /v1/clock move its time forward, and every edge (receivedAt, the committer's clock
// records) reads that one clock. A segment "inactive for 3 days" is entered exactly 3 days
// after the last login, and the journey it starts sends at that moment, to the millisecond.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Analytics } from '@segment/analytics-node';
import { start, request, uid, WRITE_KEY } from './lib/journeyd.mjs';
import { api } from './lib/clients.mjs';

async function server(t, travel) {
  const dir = mkdtempSync(join(tmpdir(), 'journeyd-e2e-tt-'));
  mkdirSync(join(dir, 'j'));
  mkdirSync(join(dir, 's'));
  const args = ['--set', `journeys.dir=${join(dir, 'j')}`, '--set', `segments.dir=${join(dir, 's')}`];
  if (travel) args.push('--set', 'clock.travel=1');
  const s = await start({ t, args });
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return s;
}

/** Polls fn until it returns a truthy value (the server applies records asynchronously). */
async function until(fn, what, ms = 10_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('a segment "inactive 3 days" is entered exactly 3 days after the last login (clock.travel)', async (t) => {
  const s = await server(t, true);
  let r = await api(s, 'POST', '/v1/segments', 'id: inactive-3d\nwhen: days_since(timestamp(profile.last_seen)) >= 3\n');
  assert.equal(r.status, 201, r.text);
  r = await api(s, 'POST', '/v1/journeys', 'id: winback\nentry: { segment_enter: inactive-3d }\nnodes:\n  hi: { send: { channel: email, template: we_miss_you } }\n');
  assert.equal(r.status, 201, r.text);
  assert.equal((await api(s, 'POST', '/v1/journeys/winback/publish')).status, 200);

  const user = uid('sleepy');
  const a = new Analytics({ writeKey: WRITE_KEY, host: s.url, path: '/v1/batch', flushAt: 1, flushInterval: 20, maxRetries: 0 });
  await new Promise((res, rej) => a.track({ userId: user, event: 'Logged In' }, (e) => (e ? rej(e) : res())));
  await a.closeAndFlush({ timeout: 10_000 });
  r = await api(s, 'GET', `/v1/profiles/${user}`);
  assert.equal(r.status, 200, r.text);
  const last = Date.parse(r.json.lastSeen);
  const due = last + 3 * 86_400_000;

  r = await api(s, 'GET', '/v1/clock');
  assert.equal(r.json.travel, true);
  const now0 = Date.parse(r.json.now);
  // to one minute before the 3 days: nothing yet
  r = await api(s, 'POST', '/v1/clock', { advance: `${Math.floor((due - now0) / 1000) - 60}s` });
  assert.equal(r.status, 200, r.text);
  assert.ok(Date.parse(r.json.now) < due, r.text);
  r = await api(s, 'GET', '/v1/segments/inactive-3d');
  assert.equal(r.json.size, 0, r.text);
  // past it: the committer writes a clock record, the flip happens at its exact moment
  r = await api(s, 'POST', '/v1/clock', { advance: '2m' });
  assert.ok(Date.parse(r.json.now) > due, r.text);
  await until(async () => (await api(s, 'GET', '/v1/segments/inactive-3d')).json.size === 1, 'the segment to fill');
  r = await api(s, 'GET', `/v1/profiles/${user}`);
  assert.deepEqual(r.json.segments, ['inactive-3d'], r.text);
  const intents = await until(async () => {
    const x = await api(s, 'GET', `/v1/intents?userId=${user}`);
    return x.json.length ? x.json : null;
  }, 'the win-back intent');
  assert.equal(intents.length, 1, JSON.stringify(intents));
  assert.equal(intents[0].template, 'we_miss_you');
  assert.equal(Date.parse(intents[0].at), due, `sent at ${intents[0].at}, due ${new Date(due).toISOString()}`);

  // a login moves them out again, at once
  const b = new Analytics({ writeKey: WRITE_KEY, host: s.url, path: '/v1/batch', flushAt: 1, flushInterval: 20, maxRetries: 0 });
  await new Promise((res, rej) => b.track({ userId: user, event: 'Logged In' }, (e) => (e ? rej(e) : res())));
  await b.closeAndFlush({ timeout: 10_000 });
  r = await api(s, 'GET', '/v1/segments/inactive-3d');
  assert.equal(r.json.size, 0, r.text);
});

test('without clock.travel the clock cannot be moved; bad requests name what is wrong', async (t) => {
  const s = await server(t, false);
  let r = await api(s, 'POST', '/v1/clock', { advance: '1d' });
  assert.equal(r.status, 409, r.text);
  assert.equal(r.json.at, 'clock.travel');
  r = await api(s, 'GET', '/v1/clock');
  assert.equal(r.status, 200);
  assert.equal(r.json.travel, false);
  const s2 = await server(t, true);
  for (const body of [{ advance: '-1d' }, { advance: 'soon' }, {}, { advance: 3 }]) {
    r = await api(s2, 'POST', '/v1/clock', body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.json.at, 'advance');
  }
  r = await request(s2.url, '/v1/clock', { method: 'POST', body: { advance: '1d' } });
  assert.equal(r.status, 401);
});

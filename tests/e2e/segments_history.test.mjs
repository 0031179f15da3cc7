// A segment's size over time (GET /v1/segments/{id}/history) against the real server: the
// route's shape, its parameters and its errors. The wall clock runs here, so whether an hour
// boundary has passed since the segment was defined depends on when the test runs: the sizes at
// boundaries are checked on the virtual clock in tests/unit (journey/test_segment_history,
// engine/test_journeys test_segment_history); here only what must hold at any time.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { start, post, uid } from './lib/journeyd.mjs';
import { api } from './lib/clients.mjs';

async function server(t) {
  const dir = mkdtempSync(join(tmpdir(), 'journeyd-e2e-seghist-'));
  mkdirSync(join(dir, 'j'));
  mkdirSync(join(dir, 's'));
  const s = await start({ args: ['--set', `journeys.dir=${join(dir, 'j')}`, '--set', `segments.dir=${join(dir, 's')}`] });
  t.after(async () => { await s.stop(); rmSync(dir, { recursive: true, force: true }); });
  return s;
}

function assertPoints(r, id, granularity, boundary) {
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(Object.keys(r.json).sort(), ['granularity', 'id', 'points'], r.text);
  assert.equal(r.json.id, id);
  assert.equal(r.json.granularity, granularity);
  assert.ok(Array.isArray(r.json.points), r.text);
  let prev = -Infinity;
  for (const p of r.json.points) {
    assert.deepEqual(Object.keys(p).sort(), ['at', 'size'], r.text);
    assert.match(p.at, boundary, r.text);
    assert.ok(Number.isInteger(p.size) && p.size >= 0, r.text);
    const at = Date.parse(p.at);
    assert.ok(at > prev, `oldest first: ${r.text}`);
    prev = at;
  }
}

test('GET /v1/segments/{id}/history: shape, parameters and errors', async (t) => {
  const s = await server(t);
  let r = await api(s, 'POST', '/v1/segments', 'id: pro\nwhen: has(profile.traits.plan) && profile.traits.plan == "pro"\n');
  assert.equal(r.status, 201, r.text);
  for (const u of [uid('ann'), uid('bob')]) {
    r = await post(s, '/v1/identify', { userId: u, traits: { plan: 'pro' } });
    assert.equal(r.status, 200, r.text);
  }

  // the points there are (none yet unless an hour boundary passed since the definition)
  assertPoints(await api(s, 'GET', '/v1/segments/pro/history'), 'pro', 'hour', /T\d\d:00:00\.000Z$/);
  assertPoints(await api(s, 'GET', '/v1/segments/pro/history?granularity=hour'), 'pro', 'hour', /T\d\d:00:00\.000Z$/);
  assertPoints(await api(s, 'GET', '/v1/segments/pro/history?granularity=day'), 'pro', 'day', /T00:00:00\.000Z$/);
  r = await api(s, 'GET', '/v1/segments/pro/history?granularity=hour&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z');
  assertPoints(r, 'pro', 'hour', /^2026-01-01T\d\d:00:00\.000Z$|^2026-01-02T00:00:00\.000Z$/);
  assert.equal(r.json.points.length, 0, 'the segment did not exist then');

  // 400 names the parameter
  for (const [q, at] of [
    ['granularity=week', 'granularity'],
    ['granularity=', 'granularity'],
    ['from=yesterday', 'from'],
    ['to=2026-13-01T00:00:00Z', 'to'],
    ['from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z', 'from'],
  ]) {
    r = await api(s, 'GET', `/v1/segments/pro/history?${q}`);
    assert.equal(r.status, 400, `${q}: ${r.text}`);
    assert.equal(r.json?.at, at, `${q}: ${r.text}`);
    assert.ok(r.json?.error, r.text);
  }

  // 404: an unknown segment (parameters are checked first: they do not depend on it)
  r = await api(s, 'GET', '/v1/segments/nope/history');
  assert.equal(r.status, 404, r.text);
  assert.match(r.json?.error ?? '', /no segment 'nope'/, r.text);
  r = await api(s, 'GET', '/v1/segments/nope/history?granularity=day');
  assert.equal(r.status, 404, r.text);

  // the segment's own reads are unchanged
  r = await api(s, 'GET', '/v1/segments/pro');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.size, 2, r.text);
});

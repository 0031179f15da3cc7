// The Segment Tracking API surface of journeyd over raw HTTP: exact statuses and bodies,
// all-or-nothing batches, dedupe, clock-skew correction, keep-alive, /healthz, /metrics.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import {
  start, request, post, getProfile, waitForProfile, barrier, parseMetrics, metricSum, uid,
  WRITE_KEY, ADMIN_TOKEN,
} from './lib/journeyd.mjs';

let server;

before(async () => {
  server = await start({ writeKeys: [WRITE_KEY, 'second-write-key'] });
});
after(async () => {
  try {
    if (server) await server.stop();
  } finally {
    await server?.cleanup();
  }
});

const OK = { success: true };

function track(userId, extra = {}) {
  return { type: 'track', userId, event: 'Test Event', messageId: randomUUID(), properties: { n: 1 }, ...extra };
}

async function assertAbsent(...ids) {
  await barrier(server);
  for (const id of ids) {
    const r = await getProfile(server, id);
    assert.equal(r.status, 404, `profile ${id} must not exist, got ${r.status} ${r.text}`);
    assert.equal(typeof r.json?.error, 'string', `404 body is {"error":...}: ${r.text}`);
  }
}

// ---------------------------------------------------------------------------------------------
// success on every endpoint

test('every Tracking API endpoint answers 200 {"success":true} and the event lands', async () => {
  const userId = uid('ep');
  const calls = [
    ['/v1/identify', { userId, traits: { plan: 'free' } }],
    ['/v1/track', { userId, event: 'Clicked' }],
    ['/v1/page', { userId, name: 'Pricing' }],
    ['/v1/screen', { userId, name: 'Settings' }],
    ['/v1/group', { userId, groupId: 'grp-1', traits: { tier: 'gold' } }],
    ['/v1/alias', { userId, previousId: `${userId}-old` }],
    ['/v1/batch', { batch: [{ type: 'track', userId, event: 'Clicked' }] }],
    ['/v1/import', { batch: [{ type: 'track', userId, event: 'Imported' }] }],
  ];
  for (const [path, body] of calls) {
    const r = await post(server, path, body);
    assert.equal(r.status, 200, `${path}: ${r.status} ${r.text}`);
    assert.deepEqual(r.json, OK, `${path} body`);
    assert.match(r.headers['content-type'] ?? '', /application\/json/, `${path} content-type`);
  }
  const p = (await waitForProfile(server, userId, (j) => j.counts?.total >= 8)).json;
  assert.deepEqual(p.counts, { total: 8, track: 3, identify: 1, page: 1, screen: 1, group: 1, alias: 1 });
  assert.deepEqual(p.events, { Clicked: 2, Imported: 1 });
  assert.deepEqual(p.traits, { plan: 'free' });
  assert.deepEqual(p.groups, { 'grp-1': { traits: { tier: 'gold' } } });
  assert.deepEqual(p.anonymousIds, [`${userId}-old`]);
});

test('an anonymous-only event lands on the anonymousId profile', async () => {
  const anon = uid('anon');
  assert.equal((await post(server, '/v1/track', { anonymousId: anon, event: 'Viewed' })).status, 200);
  const p = (await waitForProfile(server, anon)).json;
  assert.equal(p.key, anon);
  assert.ok(p.userId === undefined || p.userId === null, `no userId on an anonymous profile: ${JSON.stringify(p.userId)}`);
  assert.deepEqual(p.anonymousIds, [anon]);
  assert.equal(p.counts.track, 1);
});

test('userId may be an integer', async () => {
  const n = 1_000_000 + Math.floor(Math.random() * 1e9);
  const r = await post(server, '/v1/track', { userId: n, event: 'Numeric' });
  assert.equal(r.status, 200, r.text);
  const p = (await waitForProfile(server, String(n))).json;
  assert.equal(String(p.userId), String(n));
  assert.equal(p.counts.track, 1);
});

test('messageId is generated when missing: two identical messages without one count twice', async () => {
  const userId = uid('nomid');
  const body = { userId, event: 'No Id' };
  assert.equal((await post(server, '/v1/track', body)).status, 200);
  assert.equal((await post(server, '/v1/track', body)).status, 200);
  const p = (await waitForProfile(server, userId, (j) => j.counts?.track >= 2)).json;
  assert.equal(p.counts.track, 2);
});

// ---------------------------------------------------------------------------------------------
// errors

test('invalid JSON -> 400 naming the byte offset, line and column', async () => {
  const body = '{\n  "userId": "u-bad-json",\n  "event": "E",\n  "properties": {"a": tru}\n}\n';
  const r = await post(server, '/v1/track', body, { headers: { 'Content-Type': 'application/json' } });
  assert.equal(r.status, 400, r.text);
  assert.equal(typeof r.json?.error, 'string', r.text);
  const m = /^invalid JSON at byte (\d+) \(line (\d+), column (\d+)\): \S/.exec(r.json.error);
  assert.ok(m, `error message format: ${r.json.error}`);
  const [byte, line, col] = m.slice(1).map(Number);
  assert.equal(line, 4, `the error is on line 4: ${r.json.error}`);
  const lineStart = body.split('\n').slice(0, 3).join('\n').length + 1; // byte offset of line 4
  const lineEnd = lineStart + body.split('\n')[3].length;
  assert.ok(byte >= lineStart && byte <= lineEnd, `byte ${byte} lies on line 4 [${lineStart}, ${lineEnd}]`);
  // column and byte agree (allowing 0- or 1-based counting of each)
  assert.ok(Math.abs(byte - lineStart + 1 - col) <= 1, `column ${col} agrees with byte ${byte} (line starts at ${lineStart})`);
  // the offending token is "tru}" (0-based column 21..24)
  assert.ok(col >= 20 && col <= 26, `column ${col} points at the bad literal`);
});

test('invalid JSON in a batch and truncated JSON -> 400 with an offset', async () => {
  const r1 = await post(server, '/v1/batch', '{"batch": [{"type": "track", "userId": "x", "event": "E"},');
  assert.equal(r1.status, 400, r1.text);
  assert.match(r1.json?.error ?? '', /^invalid JSON at byte \d+ \(line 1, column \d+\)/);
  const r2 = await post(server, '/v1/track', '<html>not json</html>');
  assert.equal(r2.status, 400, r2.text);
  assert.match(r2.json?.error ?? '', /^invalid JSON at byte [01] \(line 1, column [012]\)/);
  const r3 = await post(server, '/v1/track', '');
  assert.equal(r3.status, 400, `empty body: ${r3.text}`);
  assert.equal(typeof r3.json?.error, 'string');
});

test('missing userId and anonymousId -> 400 with "at"', async () => {
  const r = await post(server, '/v1/track', { event: 'Nobody' });
  assert.equal(r.status, 400, r.text);
  assert.equal(typeof r.json?.error, 'string');
  assert.match(r.json.at ?? '', /^(userId|anonymousId)$/, `"at" names the missing id: ${r.text}`);
  const rb = await post(server, '/v1/batch', { batch: [track(uid('ok')), { type: 'track', event: 'Nobody' }] });
  assert.equal(rb.status, 400, rb.text);
  assert.match(rb.json?.at ?? '', /^batch\[1\]\.(userId|anonymousId)$/, `"at" names the missing id in the batch: ${rb.text}`);
});

test('track without "event" -> 400 at "event"', async () => {
  const r = await post(server, '/v1/track', { userId: uid('noevent') });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json?.at, 'event', r.text);
});

test('mistyped traits -> 400 at "traits" (single call) and "batch[3].traits" (batch)', async () => {
  const r1 = await post(server, '/v1/identify', { userId: uid('tr'), traits: 'not an object' });
  assert.equal(r1.status, 400, r1.text);
  assert.equal(r1.json?.at, 'traits', r1.text);
  assert.equal(typeof r1.json?.error, 'string');

  const ids = [0, 1, 2, 3, 4].map(() => uid('bt'));
  const batch = ids.map((id) => track(id));
  batch[3] = { type: 'identify', userId: ids[3], traits: ['not', 'an', 'object'], messageId: randomUUID() };
  const r2 = await post(server, '/v1/batch', { batch });
  assert.equal(r2.status, 400, r2.text);
  assert.equal(r2.json?.at, 'batch[3].traits', r2.text);
  assert.equal(typeof r2.json?.error, 'string');
  // all or nothing: the good messages of the refused batch were not stored
  await assertAbsent(...ids);
});

test('a batch whose message 7 lacks an id is refused whole', async () => {
  const ids = Array.from({ length: 10 }, () => uid('whole'));
  const batch = ids.map((id) => track(id));
  delete batch[7].userId;
  const r = await post(server, '/v1/batch', { batch });
  assert.equal(r.status, 400, r.text);
  assert.match(r.json?.at ?? '', /^batch\[7\]/, r.text);
  await assertAbsent(...ids);
});

test('over a limit -> 413: 40 KB message, 600 KB batch, 40 KB message inside a batch', async () => {
  const big = 'x'.repeat(40 * 1024);
  const u1 = uid('big');
  const r1 = await post(server, '/v1/track', { userId: u1, event: 'Big', properties: { big } });
  assert.equal(r1.status, 413, r1.text.slice(0, 300));
  assert.equal(typeof r1.json?.error, 'string', r1.text.slice(0, 300));

  // 600 KB of small, individually valid messages
  const ids = [];
  const batch = [];
  for (let i = 0; JSON.stringify(batch).length < 600 * 1024; i++) {
    const id = uid('bigbatch');
    ids.push(id);
    batch.push(track(id, { properties: { pad: 'y'.repeat(1000) } }));
  }
  const r2 = await post(server, '/v1/batch', { batch });
  assert.equal(r2.status, 413, r2.text.slice(0, 300));
  assert.equal(typeof r2.json?.error, 'string');

  const u3 = uid('bigmsg');
  const r3 = await post(server, '/v1/batch', { batch: [track(u3), track(uid('bigmsg'), { properties: { big } })] });
  assert.equal(r3.status, 413, r3.text.slice(0, 300));

  await assertAbsent(u1, u3, ids[0], ids[ids.length - 1]);
});

test('a message just under 32 KB and a batch just under 500 KB are accepted', async () => {
  const u = uid('under');
  let msg = { userId: u, event: 'Under', messageId: randomUUID(), properties: { pad: '' } };
  msg.properties.pad = 'z'.repeat(32 * 1024 - 200 - JSON.stringify(msg).length);
  const r1 = await post(server, '/v1/track', msg);
  assert.equal(r1.status, 200, r1.text);
  const batch = [];
  while (JSON.stringify(batch).length < 480 * 1024) batch.push(track(uid('underb'), { properties: { pad: 'w'.repeat(4000) } }));
  const r2 = await post(server, '/v1/batch', { batch });
  assert.equal(r2.status, 200, r2.text);
  await waitForProfile(server, u);
  await waitForProfile(server, batch[batch.length - 1].userId);
});

test('auth: missing key, wrong key -> 401; second configured key and writeKey in body accepted', async () => {
  const u = uid('auth');
  const r1 = await request(server.url, '/v1/track', { method: 'POST', body: { userId: u, event: 'E' } });
  assert.equal(r1.status, 401, r1.text);
  assert.equal(typeof r1.json?.error, 'string', r1.text);
  const r2 = await post(server, '/v1/track', { userId: u, event: 'E' }, { auth: 'wrong-key' });
  assert.equal(r2.status, 401, r2.text);
  assert.equal(typeof r2.json?.error, 'string', r2.text);
  const r2b = await request(server.url, '/v1/batch', { method: 'POST', body: { writeKey: 'wrong-key', batch: [track(u)] } });
  assert.equal(r2b.status, 401, r2b.text);
  // a password is not a write key
  const r2c = await request(server.url, '/v1/track', {
    method: 'POST', body: { userId: u, event: 'E' },
    headers: { Authorization: 'Basic ' + Buffer.from(`nobody:${WRITE_KEY}`).toString('base64') },
  });
  assert.equal(r2c.status, 401, r2c.text);
  await assertAbsent(u);

  const r3 = await post(server, '/v1/track', { userId: u, event: 'E' }, { auth: 'second-write-key' });
  assert.equal(r3.status, 200, r3.text);
  const u2 = uid('bodykey');
  const r4 = await request(server.url, '/v1/batch', { method: 'POST', body: { writeKey: WRITE_KEY, batch: [track(u2)] } });
  assert.equal(r4.status, 200, r4.text);
  assert.deepEqual(r4.json, OK);
  await waitForProfile(server, u);
  await waitForProfile(server, u2);
});

test('profiles API: 401 without or with a wrong admin token (and with a write key), 404 unknown', async () => {
  const u = uid('prof');
  assert.equal((await post(server, '/v1/track', { userId: u, event: 'E' })).status, 200);
  await waitForProfile(server, u);
  const path = `/v1/profiles/${u}`;
  assert.equal((await request(server.url, path)).status, 401);
  assert.equal((await request(server.url, path, { bearer: 'nope' })).status, 401);
  assert.equal((await request(server.url, path, { bearer: WRITE_KEY })).status, 401);
  assert.equal((await request(server.url, path, { auth: 'basic' })).status, 401);
  const r = await request(server.url, `/v1/profiles/${uid('never')}`, { bearer: ADMIN_TOKEN });
  assert.equal(r.status, 404, r.text);
  assert.equal(typeof r.json?.error, 'string', r.text);
});

test('unknown route -> 404, wrong method -> 405, JSON error bodies', async () => {
  const r1 = await post(server, '/v1/nothing', { userId: 'x', event: 'E' });
  assert.equal(r1.status, 404, r1.text);
  assert.equal(typeof r1.json?.error, 'string', r1.text);
  const r2 = await request(server.url, '/nope');
  assert.equal(r2.status, 404, r2.text);
  const r3 = await request(server.url, '/v1/track', { auth: 'basic' });
  assert.equal(r3.status, 405, r3.text);
  assert.equal(typeof r3.json?.error, 'string', r3.text);
  const r4 = await request(server.url, '/v1/batch', { method: 'PUT', auth: 'basic', body: { batch: [] } });
  assert.equal(r4.status, 405, r4.text);
  const r5 = await request(server.url, '/healthz', { method: 'POST', body: {} });
  assert.equal(r5.status, 405, r5.text);
});

// ---------------------------------------------------------------------------------------------
// gzip, dedupe, normalization

test('gzip request bodies are accepted (single call and batch); a corrupt gzip body is a 400', async () => {
  const u = uid('gz');
  const r1 = await post(server, '/v1/track', { userId: u, event: 'Zipped', properties: { pad: 'p'.repeat(5000) } }, { gzip: true });
  assert.equal(r1.status, 200, r1.text);
  const ids = [uid('gzb'), uid('gzb')];
  const r2 = await post(server, '/v1/batch', { batch: ids.map((id) => track(id)) }, { gzip: true });
  assert.equal(r2.status, 200, r2.text);
  for (const id of [u, ...ids]) await waitForProfile(server, id);
  assert.deepEqual((await getProfile(server, u)).json.events, { Zipped: 1 });

  const r3 = await post(server, '/v1/track', Buffer.from('\x1f\x8b\x08\x00garbage-not-deflate'), {
    headers: { 'Content-Encoding': 'gzip', 'Content-Type': 'application/json' },
  });
  assert.equal(r3.status, 400, r3.text);
  assert.equal(typeof r3.json?.error, 'string', r3.text);
});

test('a gzip body that inflates past the batch limit -> 413', async () => {
  // ~2 MB of JSON compresses to a few KB: the limit applies to the inflated body
  const batch = [];
  for (let i = 0; i < 2000; i++) batch.push({ type: 'track', userId: 'bomb', event: 'E', properties: { pad: 'a'.repeat(1000) } });
  const r = await post(server, '/v1/batch', { batch }, { gzip: true });
  assert.equal(r.status, 413, r.text);
  await assertAbsent('bomb');
});

test('duplicate messageId is acknowledged but counted once (separate requests and within a batch)', async () => {
  const u = uid('dup');
  const messageId = randomUUID();
  for (let i = 0; i < 3; i++) {
    const r = await post(server, '/v1/track', { userId: u, event: 'Dup', messageId });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, OK);
  }
  const r = await post(server, '/v1/batch', { batch: [track(u, { event: 'Dup', messageId }), track(u, { event: 'Dup', messageId })] });
  assert.equal(r.status, 200, r.text);

  const u2 = uid('dupb');
  const mid2 = randomUUID();
  const rb = await post(server, '/v1/batch', { batch: [track(u2, { messageId: mid2 }), track(u2, { messageId: mid2 })] });
  assert.equal(rb.status, 200, rb.text);
  await barrier(server);
  assert.equal((await getProfile(server, u)).json.counts.track, 1);
  assert.equal((await getProfile(server, u2)).json.counts.track, 1);
});

test('the same messageId sent 20 times concurrently is counted once', async () => {
  const u = uid('dupc');
  const messageId = randomUUID();
  const rs = await Promise.all(Array.from({ length: 20 }, (_, i) =>
    post(server, i % 2 ? '/v1/track' : '/v1/batch', i % 2
      ? { userId: u, event: 'Dup', messageId }
      : { batch: [track(u, { event: 'Dup', messageId })] })));
  assert.deepEqual(rs.map((r) => r.status), Array(20).fill(200));
  await barrier(server);
  const p = (await getProfile(server, u)).json;
  assert.equal(p.counts.track, 1);
  assert.deepEqual(p.events, { Dup: 1 });
});

test('clock skew: timestamp is corrected by (sentAt - timestamp) relative to receivedAt', async () => {
  const u = uid('skew');
  const before = Date.now();
  const r = await post(server, '/v1/track', {
    userId: u, event: 'Skewed', timestamp: '2026-01-01T00:00:00Z', sentAt: '2026-01-01T00:00:10Z',
  });
  const afterT = Date.now();
  assert.equal(r.status, 200, r.text);
  const p = (await waitForProfile(server, u)).json;
  const last = Date.parse(p.lastSeen);
  const first = Date.parse(p.firstSeen);
  assert.equal(first, last);
  const lo = before - 10_000 - 2000;
  const hi = afterT - 10_000 + 2000;
  assert.ok(last >= lo && last <= hi,
    `lastSeen ${p.lastSeen} should be receivedAt - 10 s, i.e. within [${new Date(lo).toISOString()}, ${new Date(hi).toISOString()}]`);

});

test('clock skew: a batch-level sentAt applies to the messages of the batch (analytics-node puts it there)', async () => {
  const u2 = uid('skewb');
  const b0 = Date.now();
  const rb = await post(server, '/v1/batch', {
    sentAt: '2030-05-05T05:05:05.000Z',
    batch: [{ type: 'track', userId: u2, event: 'Skewed', timestamp: '2030-05-05T05:04:05.000Z' }],
  });
  const b1 = Date.now();
  assert.equal(rb.status, 200, rb.text);
  const p2 = (await waitForProfile(server, u2)).json;
  const last2 = Date.parse(p2.lastSeen);
  assert.ok(last2 >= b0 - 60_000 - 2000 && last2 <= b1 - 60_000 + 2000,
    `batch sentAt: lastSeen ${p2.lastSeen} should be about now - 60 s`);
});

test('without sentAt the client timestamp is used as given', async () => {
  const u = uid('nosent');
  const r = await post(server, '/v1/track', { userId: u, event: 'Past', timestamp: '2025-06-01T12:00:00.000Z' });
  assert.equal(r.status, 200, r.text);
  const p = (await waitForProfile(server, u)).json;
  assert.equal(Date.parse(p.firstSeen), Date.parse('2025-06-01T12:00:00.000Z'), `firstSeen ${p.firstSeen}`);
});

test('identify traits merge per key, the later timestamp wins, traitTimes follow', async () => {
  const u = uid('traits');
  const id1 = { userId: u, traits: { a: 1, b: 'x' }, timestamp: '2026-03-01T00:00:00.000Z' };
  assert.equal((await post(server, '/v1/identify', id1)).status, 200);
  await waitForProfile(server, u, (p) => p.counts.identify === 1);
  const id2 = { userId: u, traits: { b: 'y', c: [1, 2], d: { e: null } }, timestamp: '2026-03-02T00:00:00.000Z' };
  assert.equal((await post(server, '/v1/identify', id2)).status, 200);
  let p = (await waitForProfile(server, u, (j) => j.counts.identify === 2)).json;
  assert.deepEqual(p.traits, { a: 1, b: 'y', c: [1, 2], d: { e: null } });
  assert.deepEqual(Object.keys(p.traitTimes).sort(), ['a', 'b', 'c', 'd']);
  assert.equal(Date.parse(p.traitTimes.a), Date.parse(id1.timestamp));
  assert.equal(Date.parse(p.traitTimes.b), Date.parse(id2.timestamp));
  // an identify that arrives late with an older timestamp does not overwrite newer values
  const id3 = { userId: u, traits: { b: 'stale', z: 'new key' }, timestamp: '2026-02-15T00:00:00.000Z' };
  assert.equal((await post(server, '/v1/identify', id3)).status, 200);
  p = (await waitForProfile(server, u, (j) => j.counts.identify === 3)).json;
  assert.equal(p.traits.b, 'y', 'the older identify does not overwrite b');
  assert.equal(p.traits.z, 'new key', 'but adds the key nobody set');
  assert.equal(Date.parse(p.traitTimes.b), Date.parse(id2.timestamp));
});

test('large integers in traits pass through unchanged', async () => {
  const u = uid('bigint');
  const body = `{"userId":"${u}","traits":{"big":9007199254740993,"neg":-9223372036854775808,"f":1.5}}`;
  const r = await post(server, '/v1/identify', body, { headers: { 'Content-Type': 'application/json' } });
  assert.equal(r.status, 200, r.text);
  const raw = (await waitForProfile(server, u)).text;
  assert.match(raw, /"big":\s*9007199254740993[,}]/);
  assert.match(raw, /"neg":\s*-9223372036854775808[,}]/);
});

// ---------------------------------------------------------------------------------------------
// connection handling, health, metrics

test('keep-alive: 300 requests over one socket', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const sockets = new Set();
  const u = uid('ka');
  try {
    for (let i = 0; i < 300; i++) {
      const r = await request(server.url, '/v1/track', {
        method: 'POST', auth: 'basic', agent, body: { userId: u, event: 'KA', messageId: randomUUID() },
        onSocket: (s) => sockets.add(s),
      });
      assert.equal(r.status, 200, r.text);
      assert.notEqual((r.headers.connection ?? '').toLowerCase(), 'close');
    }
    // errors keep the connection open too
    for (let i = 0; i < 5; i++) {
      const r = await request(server.url, '/v1/track', { method: 'POST', auth: 'basic', agent, body: '{oops', onSocket: (s) => sockets.add(s) });
      assert.equal(r.status, 400);
    }
    const r = await request(server.url, '/v1/track', { method: 'POST', auth: 'basic', agent, body: { userId: u, event: 'KA' }, onSocket: (s) => sockets.add(s) });
    assert.equal(r.status, 200);
  } finally {
    agent.destroy();
  }
  assert.equal(sockets.size, 1, `all requests shared one socket (used ${sockets.size})`);
  await waitForProfile(server, u, (p) => p.counts.track === 301);
});

test('128 concurrent keep-alive clients for 8 s: every request is answered (no lost wake-ups)', { timeout: 60_000 }, async (t) => {
  const C = 128;
  const deadline = Date.now() + 8000;
  const stuck = [];
  let answered = 0;
  const run = uid('conc');
  await Promise.all(Array.from({ length: C }, async (_, k) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; Date.now() < deadline; i++) {
        try {
          const r = await request(server.url, '/v1/track', {
            method: 'POST', auth: 'basic', agent, timeout: 3000,
            body: { userId: `${run}-${k}`, event: 'Concurrent', messageId: `${run}-${k}-${i}` },
          });
          assert.equal(r.status, 200, r.text);
          answered++;
        } catch (err) {
          if (err.code === 'ERR_ASSERTION') throw err;
          stuck.push(`client ${k} request ${i}: ${err.message} (${answered} answered so far)`);
          return;
        }
      }
    } finally {
      agent.destroy();
    }
  }));
  t.diagnostic(`${answered} requests answered over ${C} connections`);
  assert.deepEqual(stuck.slice(0, 5), [], `${stuck.length} of ${C} clients got no answer within 3 s`);
});

test('GET /healthz -> 200 {"status":"ok"}', async () => {
  const r = await request(server.url, '/healthz');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json?.status, 'ok', r.text);
});

test('GET /metrics: the counters exist and move', async () => {
  const m0 = await request(server.url, '/metrics');
  assert.equal(m0.status, 200);
  assert.match(m0.headers['content-type'] ?? '', /^text\/plain/);
  const before = parseMetrics(m0.text);
  for (const name of ['journeyd_events_accepted_total', 'journeyd_fsync_seconds_count', 'journeyd_fsync_seconds_sum']) {
    assert.ok(metricSum(before, name) !== undefined, `${name} present`);
  }
  assert.ok(metricSum(before, 'journeyd_shard_queue_depth', { shard: '0' }) !== undefined, 'journeyd_shard_queue_depth{shard="0"} present');
  assert.ok([...before.keys()].some((k) => k.startsWith('journeyd_fsync_seconds_bucket{') && k.includes('le="+Inf"')), 'histogram has an le="+Inf" bucket');
  assert.match(m0.text, /^# TYPE journeyd_events_accepted_total counter$/m);
  assert.match(m0.text, /^# TYPE journeyd_fsync_seconds histogram$/m);

  const ids = Array.from({ length: 25 }, () => uid('metric'));
  assert.equal((await post(server, '/v1/batch', { batch: ids.map((id) => track(id)) })).status, 200);
  assert.equal((await post(server, '/v1/track', '{bad')).status, 400);
  assert.equal((await post(server, '/v1/track', { userId: 'x', event: 'E' }, { auth: 'wrong' })).status, 401);
  const after = parseMetrics((await request(server.url, '/metrics')).text);

  const acc = metricSum(after, 'journeyd_events_accepted_total') - metricSum(before, 'journeyd_events_accepted_total');
  assert.ok(acc >= 25, `journeyd_events_accepted_total moved by ${acc} (>= 25)`);
  const refusedBefore = metricSum(before, 'journeyd_events_refused_total') ?? 0;
  const refusedAfter = metricSum(after, 'journeyd_events_refused_total');
  assert.ok(refusedAfter !== undefined && refusedAfter > refusedBefore, `journeyd_events_refused_total moved (${refusedBefore} -> ${refusedAfter})`);
  assert.ok([...after.keys()].some((k) => /^journeyd_events_refused_total\{.*reason="[^"]+"/.test(k)), 'refused has a reason label');
  assert.ok(metricSum(after, 'journeyd_fsync_seconds_count') > metricSum(before, 'journeyd_fsync_seconds_count'), 'fsyncs were timed');
});

test('no sanitizer report so far', () => {
  server.assertNoSanitizerReport();
});

// The official Segment and RudderStack Node SDKs, unchanged, pointed at journeyd.
// A small recording proxy sits between the SDK and journeyd so the test sees exactly what the
// SDK sent (path, Content-Encoding, auth) and what journeyd answered.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { gunzipSync } from 'node:zlib';
import { Analytics } from '@segment/analytics-node';
import RudderAnalytics from '@rudderstack/rudder-sdk-node';
import { start, waitForProfile, uid, WRITE_KEY } from './lib/journeyd.mjs';

let server;
let proxy;

before(async () => {
  server = await start();
  proxy = await recordingProxy(server.url);
});
after(async () => {
  if (proxy) await proxy.close();
  try {
    if (server) await server.stop();
  } finally {
    await server?.cleanup();
  }
});

function recordingProxy(target) {
  const log = [];
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const headers = { ...req.headers };
      delete headers.connection;
      delete headers['keep-alive'];
      const preq = http.request(new URL(req.url, target), { method: req.method, headers, agent: false }, (pres) => {
        const rc = [];
        pres.on('data', (c) => rc.push(c));
        pres.on('end', () => {
          const rb = Buffer.concat(rc);
          log.push({ method: req.method, url: req.url, headers: req.headers, body, status: pres.statusCode, response: rb.toString() });
          const h = { ...pres.headers };
          delete h.connection;
          delete h['transfer-encoding'];
          h['content-length'] = String(rb.length);
          res.writeHead(pres.statusCode, h);
          res.end(rb);
        });
      });
      preq.on('error', (err) => {
        log.push({ method: req.method, url: req.url, headers: req.headers, body, status: 0, response: String(err) });
        res.destroy();
      });
      preq.end(body);
    });
  });
  return new Promise((resolve) => {
    srv.listen(0, '127.0.0.1', () => {
      resolve({
        url: `http://127.0.0.1:${srv.address().port}`,
        log,
        close: () => new Promise((r) => { srv.closeAllConnections?.(); srv.close(() => r()); }),
      });
    });
  });
}

function decodeBody(entry) {
  const enc = entry.headers['content-encoding'];
  const raw = enc === 'gzip' ? gunzipSync(entry.body) : entry.body;
  return JSON.parse(raw.toString('utf8'));
}

// The profile every SDK scenario must produce (see `sendScenario`).
function assertScenarioProfile(p, ids) {
  assert.equal(p.key, ids.userId);
  assert.equal(p.userId, ids.userId);
  assert.deepEqual(p.traits, { email: `${ids.userId}@example.com`, plan: 'pro', logins: 3 });
  assert.deepEqual(Object.keys(p.traitTimes ?? {}).sort(), ['email', 'logins', 'plan']);
  assert.deepEqual(p.groups, { [ids.groupId]: { traits: { name: 'Acme Inc', employees: 42 } } });
  assert.deepEqual(p.counts, { total: 8, track: 3, identify: 1, page: 1, screen: 1, group: 1, alias: 1 });
  assert.deepEqual(p.events, { 'Signed Up': 2, 'Order Completed': 1 });
  assert.deepEqual([...p.anonymousIds].sort(), [ids.anonymousId, ids.previousId].sort(),
    'anonymousIds holds the anonymousId the events carried and the alias previousId');
  assert.equal(p.limited, 0);
  const first = Date.parse(p.firstSeen);
  const last = Date.parse(p.lastSeen);
  assert.ok(Number.isFinite(first) && Number.isFinite(last), `firstSeen/lastSeen parse: ${p.firstSeen} ${p.lastSeen}`);
  assert.ok(first <= last, 'firstSeen <= lastSeen');
  assert.ok(Math.abs(Date.now() - last) < 60_000, `lastSeen ${p.lastSeen} is near now`);
}

// Calls are made through `call(method, message)`; both SDKs share the same message shapes.
function sendScenario(call, ids) {
  const { userId, anonymousId, previousId, groupId } = ids;
  call('identify', { userId, anonymousId, traits: { email: `${userId}@example.com`, plan: 'pro', logins: 3 } });
  call('track', { userId, anonymousId, event: 'Signed Up', properties: { source: 'sdk-test' } });
  call('track', { userId, event: 'Signed Up', properties: { source: 'again' } });
  call('track', { userId, event: 'Order Completed', properties: { revenue: 19.99, currency: 'EUR' } });
  call('page', { userId, name: 'Home', properties: { path: '/', title: 'Home' } });
  call('screen', { userId, name: 'Main', properties: { variant: 'b' } });
  call('group', { userId, groupId, traits: { name: 'Acme Inc', employees: 42 } });
  call('alias', { userId, previousId });
}

function newIds(prefix) {
  return { userId: uid(prefix), anonymousId: uid(`${prefix}-anon`), previousId: uid(`${prefix}-prev`), groupId: uid(`${prefix}-grp`) };
}

test('@segment/analytics-node: identify, track, page, screen, group, alias land on the profile', async () => {
  const from = proxy.log.length;
  const analytics = new Analytics({
    writeKey: WRITE_KEY,
    host: proxy.url,
    path: '/v1/batch',
    flushAt: 3, // several batches, not one
    flushInterval: 50,
    maxRetries: 0, // a refusal must surface here, not be retried away
  });
  const errors = [];
  analytics.on('error', (e) => errors.push(e));
  const ids = newIds('seg');
  sendScenario((method, msg) => analytics[method](msg, (err) => { if (err) errors.push(err); }), ids);
  await analytics.closeAndFlush({ timeout: 20_000 });
  assert.deepEqual(errors, []);

  const sent = proxy.log.slice(from);
  assert.ok(sent.length >= 3, `the SDK made ${sent.length} requests; flushAt 3 should give >= 3`);
  for (const e of sent) {
    assert.equal(e.method, 'POST');
    assert.equal(e.url, '/v1/batch');
    assert.equal(e.status, 200, `journeyd answered ${e.status} ${e.response}`);
    assert.deepEqual(JSON.parse(e.response), { success: true });
    assert.match(e.headers.authorization, /^Basic /);
  }
  const types = sent.flatMap((e) => decodeBody(e).batch.map((m) => m.type)).sort();
  assert.deepEqual(types, ['alias', 'group', 'identify', 'page', 'screen', 'track', 'track', 'track']);

  const r = await waitForProfile(server, ids.userId, (p) => p.counts?.total >= 8);
  assertScenarioProfile(r.json, ids);
});

test('@rudderstack/rudder-sdk-node: same scenario through /v1/batch (gzip by default)', async () => {
  const from = proxy.log.length;
  const errors = [];
  const client = new RudderAnalytics(WRITE_KEY, {
    dataPlaneUrl: proxy.url,
    flushAt: 3,
    flushInterval: 50,
    retryCount: 0,
    logLevel: 'error',
    errorHandler: (err) => errors.push(err),
  });
  const ids = newIds('rudder');
  sendScenario((method, msg) => client[method](msg, (err) => { if (err) errors.push(err); }), ids);
  // flush until the in-memory queue is empty (each flush sends at most flushAt events)
  for (let i = 0; i < 20 && (client.queue.length > 0 || client.pendingFlush); i++) {
    await client.flush();
    if (client.queue.length === 0) { await client.pendingFlush; break; }
  }
  if (client.flushTimer) clearTimeout(client.flushTimer);
  if (client.timer) clearTimeout(client.timer);
  assert.deepEqual(errors, []);

  const sent = proxy.log.slice(from);
  assert.ok(sent.length >= 3, `the SDK made ${sent.length} requests`);
  for (const e of sent) {
    assert.equal(e.method, 'POST');
    assert.equal(e.url, '/v1/batch');
    assert.equal(e.headers['content-encoding'], 'gzip', 'rudder-sdk-node gzips its batches by default');
    assert.equal(e.status, 200, `journeyd answered ${e.status} ${e.response}`);
    assert.deepEqual(JSON.parse(e.response), { success: true });
  }
  const msgs = sent.flatMap((e) => decodeBody(e).batch);
  assert.deepEqual(msgs.map((m) => m.type).sort(), ['alias', 'group', 'identify', 'page', 'screen', 'track', 'track', 'track']);
  // RudderStack copies identify traits into context.traits too: the profile must hold them once.
  assert.ok(msgs.find((m) => m.type === 'identify').context.traits);

  const r = await waitForProfile(server, ids.userId, (p) => p.counts?.total >= 8);
  assertScenarioProfile(r.json, ids);
});

test('rudder-sdk-node with gzip disabled is accepted too', async () => {
  const from = proxy.log.length;
  const errors = [];
  const client = new RudderAnalytics(WRITE_KEY, { dataPlaneUrl: proxy.url, gzip: false, retryCount: 0, logLevel: 'error', flushAt: 10, errorHandler: (e) => errors.push(e) });
  const userId = uid('rudder-plain');
  client.track({ userId, event: 'Plain Event' });
  client.track({ userId, event: 'Plain Event' });
  for (let i = 0; i < 10 && (client.queue.length > 0 || client.pendingFlush); i++) {
    await client.flush();
    if (client.queue.length === 0) { await client.pendingFlush; break; }
  }
  if (client.flushTimer) clearTimeout(client.flushTimer);
  assert.deepEqual(errors, []);
  for (const e of proxy.log.slice(from)) {
    assert.equal(e.headers['content-encoding'], undefined);
    assert.equal(e.status, 200, e.response);
  }
  const r = await waitForProfile(server, userId, (p) => p.counts?.track >= 2);
  assert.equal(r.json.counts.track, 2);
  assert.deepEqual(r.json.events, { 'Plain Event': 2 });
});

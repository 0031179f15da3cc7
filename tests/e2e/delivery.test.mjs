// Delivery end to end: a journey's send node becomes a signed webhook POST to a local receiver
// (the receiver checks the HMAC as a provider's customer would and counts by Idempotency-Key),
// retried through a 500, and delivered to every person exactly once as the receiver counts it
// across a kill -9 of journeyd with sends in flight.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { start, request, post, uid } from './lib/journeyd.mjs';
import { api, sdk } from './lib/clients.mjs';

const SECRET = 'whsec_e2e';

/** A webhook receiver: verifies the signature, counts requests and distinct keys. */
async function receiver(t, { failFirst = 0, delayMs = 0, respond = null } = {}) {
  const byKey = new Map();
  let requests = 0, badSignatures = 0;
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      requests++;
      const ts = req.headers['x-journeyd-timestamp'] ?? '';
      const sig = req.headers['x-journeyd-signature'] ?? '';
      const want = 'sha256=' + createHmac('sha256', SECRET).update(`${ts}.${body}`).digest('hex');
      if (sig.length !== want.length || !timingSafeEqual(Buffer.from(sig), Buffer.from(want))) badSignatures++;
      const key = req.headers['idempotency-key'] ?? '';
      const seen = byKey.get(key) ?? { n: 0, body: null };
      seen.n++;
      const code = respond ? respond(key, seen.n) : (seen.n <= failFirst ? 500 : 200);
      const fail = code !== 200;
      if (!fail) seen.body = JSON.parse(body);
      byKey.set(key, seen);
      setTimeout(() => { res.writeHead(code, { 'Content-Type': 'application/json' }); res.end(fail ? '{"error":"no such customer"}' : '{}'); }, delayMs);
    });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => { srv.closeAllConnections?.(); srv.close(r); }));
  return {
    url: `http://127.0.0.1:${srv.address().port}/hook`,
    get requests() { return requests; },
    get badSignatures() { return badSignatures; },
    delivered: () => [...byKey.values()].filter((v) => v.body),
    keys: byKey,
  };
}

/** A config with one webhook channel, a template, and empty journey/segment folders. */
function setup(t, hookUrl, extra = '') {
  const dir = mkdtempSync(join(tmpdir(), 'journeyd-e2e-dlv-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const d of ['j', 's', 'templates']) mkdirSync(join(dir, d));
  writeFileSync(join(dir, 'templates', 'order_hook.yaml'),
    'id: order_hook\nkind: webhook\nbody: \'{"user":"{{ profile.userId }}","order":"{{ event.properties.order_id }}","message":"{{ message.id }}","journey":"{{ journey.id }}"}\'\n');
  writeFileSync(join(dir, 'journeyd.yaml'), `
journeys: { dir: ${join(dir, 'j')} }
segments: { dir: ${join(dir, 's')} }
templates: { dir: ${join(dir, 'templates')} }
${extra.includes('consent:') ? '' : 'consent: { exempt: [transactional] }'}
channels:
  hook:
    kind: webhook
    url: "${hookUrl}"
    secret: "${SECRET}"
    timeout: 5s
    retry: { max_attempts: 6, backoff: 20ms, max_backoff: 200ms }
${extra}`);
  return join(dir, 'journeyd.yaml');
}

const JOURNEY = `id: order-hook
entry: { event: Order Completed }
reentry: always
nodes:
  notify: { send: { channel: hook, template: order_hook, category: transactional } }
`;

async function publish(s) {
  let r = await api(s, 'POST', '/v1/journeys', JOURNEY);
  assert.equal(r.status, 201, r.text);
  r = await api(s, 'POST', '/v1/journeys/order-hook/publish');
  assert.equal(r.status, 200, r.text);
}

async function until(fn, what, ms = 20_000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('a send node posts a signed webhook with the rendered body; a 500 is retried; /metrics counts it', async (t) => {
  const rx = await receiver(t, { failFirst: 1 });
  const s = await start({ t, args: ['--config', setup(t, rx.url)] });
  await publish(s);
  const a = sdk(s);
  const users = Array.from({ length: 20 }, (_, i) => uid(`buyer${i}`));
  for (const [i, u] of users.entries()) await a.send('track', { userId: u, event: 'Order Completed', properties: { order_id: `o-${i}` } });
  await a.close();
  await until(() => rx.delivered().length === users.length, 'every webhook');
  assert.equal(rx.badSignatures, 0);
  assert.equal(rx.requests, 2 * users.length, 'each key: one 500, then one 200');
  const bodies = rx.delivered().map((v) => v.body).sort((x, y) => x.order.localeCompare(y.order, 'en', { numeric: true }));
  assert.deepEqual(bodies.map((b) => [b.user, b.order, b.journey]), users.map((u, i) => [u, `o-${i}`, 'order-hook']));
  for (const [key, v] of rx.keys) assert.equal(v.body.message, key, 'Idempotency-Key is the message id the template saw');
  await until(async () => /journeyd_deliveries_total\{outcome="sent"\} 20\b/.test((await request(s.url, '/metrics', {})).text), 'the results in the log');
});

test('kill -9 with sends in flight: after the restart every person got the webhook, once per key', { timeout: 120_000 }, async (t) => {
  const rx = await receiver(t, { delayMs: 20 });
  const cfg = setup(t, rx.url);
  const dataDir = mkdtempSync(join(tmpdir(), 'journeyd-e2e-dlv-data-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  let s = await start({ t, args: ['--config', cfg], dataDir });
  await publish(s);
  const N = 1000;
  const batch = Array.from({ length: N }, (_, i) => ({ type: 'track', userId: `kill-${i}`, event: 'Order Completed', properties: { order_id: `k-${i}` }, messageId: `kill-msg-${i}` }));
  for (let i = 0; i < N; i += 100) {
    const r = await post(s, '/v1/batch', { batch: batch.slice(i, i + 100) });
    assert.equal(r.status, 200, r.text);
  }
  await until(() => rx.delivered().length >= 30, 'some deliveries before the kill');
  await s.kill9();
  const before = rx.delivered().length;
  assert.ok(before < N, `the kill came too late to test anything (${before} of ${N} delivered)`);
  s = await start({ t, args: ['--config', cfg], dataDir });
  await until(() => rx.delivered().length === N, `all ${N} webhooks after the restart`, 90_000);
  assert.equal(rx.badSignatures, 0);
  const orders = new Set(rx.delivered().map((v) => v.body.order));
  assert.equal(orders.size, N, 'every person, one key each');
  await s.stop();
});

test('a permanent failure becomes a dead letter, visible and retried through the API with the same key', async (t) => {
  let accept = false;
  const rx = await receiver(t, { respond: () => (accept ? 200 : 400) });
  const s = await start({ t, args: ['--config', setup(t, rx.url)] });
  await publish(s);
  const a = sdk(s);
  const who = uid('dead');
  await a.send('track', { userId: who, event: 'Order Completed', properties: { order_id: 'd-1' } });
  await a.close();
  let dead;
  await until(async () => {
    const r = await api(s, 'GET', '/v1/deliveries?status=dead');
    dead = r.json;
    return Array.isArray(dead) && dead.length === 1;
  }, 'the dead letter');
  assert.equal(dead[0].status, 'failed');
  assert.equal(dead[0].key, who);
  assert.equal(dead[0].attempts, 1, 'a 400 is permanent: one try');
  assert.match(dead[0].error, /HTTP 400/);
  assert.equal(dead[0].message.channel, 'hook');
  const id = dead[0].id;
  assert.equal(rx.requests, 1);
  let r = await api(s, 'GET', `/v1/deliveries/${id}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, 'failed');
  r = await api(s, 'POST', '/v1/deliveries/0123456789abcdef/retry');
  assert.equal(r.status, 404, r.text);
  r = await api(s, 'POST', '/v1/deliveries/nothex/retry');
  assert.equal(r.status, 400, r.text);
  accept = true;
  r = await api(s, 'POST', `/v1/deliveries/${id}/retry`);
  assert.equal(r.status, 200, r.text);
  await until(() => rx.delivered().length === 1, 'the retried webhook');
  assert.deepEqual([...rx.keys.keys()], [id], 'the same Idempotency-Key as the first try');
  await until(async () => (await api(s, 'GET', `/v1/deliveries/${id}`)).status === 404, 'the message to leave the outbox');
  r = await api(s, 'GET', '/v1/deliveries?status=dead');
  assert.deepEqual(r.json, []);
  r = await api(s, 'GET', '/v1/deliveries?status=later');
  assert.equal(r.status, 400, r.text);
});

const VIEWED = `id: viewed-nudge
entry: { event: Product Viewed }
reentry: always
nodes:
  nudge: { send: { channel: hook, template: order_hook, category: marketing } }
`;

test('guardrails: a frequency cap skips the third marketing message of the day, transactional ones are exempt', async (t) => {
  const rx = await receiver(t);
  const extra = `consent: { exempt: [transactional], opt_out: [hook] }
guardrails:
  caps:
    - { channel: hook, category: marketing, max: 2, per: 1d }
`;
  const s = await start({ t, args: ['--config', setup(t, rx.url, extra)] });
  await publish(s);
  let r = await api(s, 'POST', '/v1/journeys', VIEWED);
  assert.equal(r.status, 201, r.text);
  assert.equal((await api(s, 'POST', '/v1/journeys/viewed-nudge/publish')).status, 200);
  const a = sdk(s);
  const who = uid('capped');
  for (let i = 0; i < 3; i++) await a.send('track', { userId: who, event: 'Product Viewed', properties: { order_id: `v-${i}` } });
  for (let i = 0; i < 3; i++) await a.send('track', { userId: who, event: 'Order Completed', properties: { order_id: `o-${i}` } });
  await a.close();
  await until(() => rx.delivered().length >= 5, 'two marketing and three transactional webhooks').catch(async (e) => {
    const met = (await request(s.url, '/metrics', {})).text.split('\n').filter((l) => l.includes('deliveries_total')).join(' | ');
    console.log('DELIVERED', JSON.stringify(rx.delivered().map((v) => v.body.order)), met);
    throw e;
  });
  const orders = rx.delivered().map((v) => v.body.order).sort();
  assert.deepEqual(orders, ['o-0', 'o-1', 'o-2', 'v-0', 'v-1']);
  const m = (await request(s.url, '/metrics', {})).text;
  assert.match(m, /journeyd_deliveries_total\{outcome="skipped"\} 1\b/);
});

test('guardrails: a message in quiet hours is held until the window ends, not dropped', async (t) => {
  const rx = await receiver(t);
  const now = new Date();
  const hhmm = (d) => `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
  const from = new Date(now.getTime() - 3600_000), to = new Date(now.getTime() + 2 * 3600_000);
  const extra = `consent: { exempt: [transactional], opt_out: [hook] }
guardrails:
  quiet_hours:
    - { channel: hook, from: "${hhmm(from)}", to: "${hhmm(to)}" }
`;
  const s = await start({ t, args: ['--config', setup(t, rx.url, extra)] });
  await publish(s);
  let r = await api(s, 'POST', '/v1/journeys', VIEWED);
  assert.equal(r.status, 201, r.text);
  assert.equal((await api(s, 'POST', '/v1/journeys/viewed-nudge/publish')).status, 200);
  const a = sdk(s);
  const who = uid('night');
  await a.send('track', { userId: who, event: 'Product Viewed', properties: { order_id: 'q-1' } });   // marketing: held
  await a.send('track', { userId: who, event: 'Order Completed', properties: { order_id: 'q-2' } });  // transactional: exempt
  await a.close();
  let held;
  await until(async () => {
    r = await api(s, 'GET', '/v1/deliveries');
    held = r.json.find((x) => x.key === who);
    return held;
  }, 'the held message in the outbox');
  const end = new Date(Date.UTC(to.getUTCFullYear(), to.getUTCMonth(), to.getUTCDate(), to.getUTCHours(), to.getUTCMinutes()));
  assert.equal(held.message.not_before, end.getTime() * 1000, `held until ${end.toISOString()}`);
  await until(() => rx.delivered().length === 1, 'the transactional message');
  await new Promise((res) => setTimeout(res, 500));
  assert.deepEqual(rx.delivered().map((v) => v.body.order), ['q-2'], 'the marketing one waits for the window to end');
});

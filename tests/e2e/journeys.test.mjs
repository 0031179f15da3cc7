// Journeys end to end: the admin API (drafts, publishing, versions, pause/resume/archive,
// API entries, errors), the three example journeys driven by the real Segment SDK, a short
// real-time wait, and a wait that spans a restart (SIGTERM and kill -9).
//
// Waits of hours and days are checked where they are armed (timer_at), not waited for: the
// virtual-clock tests in tests/unit cover them. Only the 2 s and 3 s waits here run in real
// time, with bounded polls.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { start, request, freshDir, uid, REPO_ROOT, ADMIN_TOKEN } from './lib/journeyd.mjs';
import { sdk } from './lib/clients.mjs';

const EXAMPLES = join(REPO_ROOT, 'journeys');
const SECOND = 1000;
const HOUR = 3600 * SECOND;
const DAY = 24 * HOUR;

// ---- helpers ------------------------------------------------------------------------------

/** An admin API call. body: a string is sent as YAML (unless contentType says otherwise),
 *  an object as JSON. */
function api(server, method, path, body, { contentType, bearer = ADMIN_TOKEN } = {}) {
  const headers = {};
  if (typeof body === 'string') headers['Content-Type'] = contentType ?? 'application/yaml';
  else if (contentType) headers['Content-Type'] = contentType;
  return request(server.url, path, { method, body, headers, bearer: bearer || undefined })
    .catch((e) => { throw new Error(`${method} ${path}: ${e.message}`); });
}

/** A time from the API (RFC 3339 text, or a number of ms/us since the epoch) in ms. */
function ms(v) {
  if (typeof v === 'number') return v > 1e14 ? Math.floor(v / 1000) : v;
  const t = Date.parse(v);
  assert.ok(Number.isFinite(t), `a time: ${JSON.stringify(v)}`);
  return t;
}

async function intents(server, personId, { limit, anonymous = false } = {}) {
  const q = new URLSearchParams({ [anonymous ? 'anonymousId' : 'userId']: personId });
  if (limit) q.set('limit', String(limit));
  const r = await api(server, 'GET', `/v1/intents?${q}`);
  assert.equal(r.status, 200, `GET /v1/intents?${q}: ${r.text}`);
  assert.ok(Array.isArray(r.json), r.text);
  return r.json;
}

async function pollIntents(server, personId, pred, { timeoutMs = 5000, what = 'the expected intents' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await intents(server, personId);
    if (pred(got)) return got;
    if (Date.now() > deadline) throw new Error(`${personId}: no ${what} within ${timeoutMs} ms; last: ${JSON.stringify(got)}`);
    await sleep(50);
  }
}

function personJourneys(server, personId) {
  return api(server, 'GET', `/v1/profiles/${encodeURIComponent(personId)}/journeys`);
}

/** Polls GET /v1/profiles/{id}/journeys until the entry for `journey` satisfies pred. */
async function pollPerson(server, personId, journey, pred, { timeoutMs = 5000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await personJourneys(server, personId);
    const e = last.status === 200 ? last.json.find((x) => x.journey === journey) : undefined;
    if (e && pred(e)) return e;
    if (Date.now() > deadline) {
      throw new Error(`${personId} in ${journey}: not in the expected state within ${timeoutMs} ms; last: ${last.status} ${last.text}`);
    }
    await sleep(50);
  }
}

/** A request whose body is sent in 64 KiB writes: chunked, or with a declared Content-Length. */
function chunked(server, method, path, text, headers, declared = false) {
  return new Promise((res, rej) => {
    const req = http.request(new URL(path, server.url), { method, headers, agent: false }, (resp) => {
      const parts = [];
      resp.on('data', (c) => parts.push(c));
      resp.on('end', () => {
        const body = Buffer.concat(parts).toString('utf8');
        let json;
        try { json = JSON.parse(body); } catch {}
        res({ status: resp.statusCode, text: body, json });
      });
    });
    req.on('error', rej);
    const buf = Buffer.from(text);
    if (declared) req.setHeader('Content-Length', buf.length);
    for (let i = 0; i < buf.length; i += 65536) req.write(buf.subarray(i, i + 65536));
    req.end();
  });
}

const sleep = (n) => new Promise((r) => setTimeout(r, n));

/** The real Segment SDK pointed at journeyd; send() resolves once journeyd acknowledged. */
const WELCOME = `# a small journey for the API tests
id: e2e-welcome
name: Welcome (e2e)
entry:
  event: Signed Up
nodes:
  hello:
    send: { channel: email, template: welcome }
    next: later
  later:
    wait: 2d
    next: tips
  tips:
    send: { channel: email, template: tips }
`;

// Four problems, each at its own line:col and node (journeyd validate gives the same lines).
const BAD = `id: bad-one
entry:
  event: Signed Up
nodes:
  hello:
    send: { channel: emial, template: welcome }
    next: missing_node
  pause_a_bit:
    wait: 1.5d
    next: hello
  check:
    branch:
      - { when: "event.properties.total >", next: hello }
`;

// ---- 1. the API -----------------------------------------------------------------------------

test('journeys API: drafts, errors, publish, versions, pause/resume, enter, archive, 401/404/405/409/413/415', async (t) => {
  const s = await start({ t, args: ['--set', `journeys.dir=${freshDir(t)}`] });

  // no token, wrong token: 401 on every route
  const unauth = { error: 'missing or unknown admin token (Authorization: Bearer)' };
  for (const [m, p] of [['GET', '/v1/journeys'], ['POST', '/v1/journeys'], ['GET', '/v1/journeys/e2e-welcome'],
    ['PUT', '/v1/journeys/e2e-welcome'], ['POST', '/v1/journeys/e2e-welcome/publish'], ['GET', '/v1/journeys/e2e-welcome/versions'],
    ['POST', '/v1/journeys/e2e-welcome/enter'], ['GET', '/v1/intents?userId=x'], ['GET', '/v1/profiles/x/journeys']]) {
    for (const bearer of [null, 'wrong-token']) {
      const r = await api(s, m, p, m === 'GET' ? undefined : WELCOME, { bearer });
      assert.equal(r.status, 401, `${m} ${p} with ${bearer}: ${r.text}`);
      assert.deepEqual(r.json, unauth);
    }
  }

  let r = await api(s, 'GET', '/v1/journeys');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, []);

  // create a draft
  r = await api(s, 'POST', '/v1/journeys', WELCOME);
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.id, 'e2e-welcome');
  assert.equal(r.json.status, 'draft');
  assert.equal(r.json.version, 0);
  assert.equal(r.json.has_draft, true);
  assert.equal(r.json.source, 'api');
  r = await api(s, 'POST', '/v1/journeys', WELCOME);
  assert.equal(r.status, 409, `POST of an existing id: ${r.text}`);
  assert.match(r.json.error, /e2e-welcome/);

  // a bad document: every problem at once, with line:col and node, nothing stored
  r = await api(s, 'POST', '/v1/journeys', BAD);
  assert.equal(r.status, 400, r.text);
  assert.match(r.json.error, /^the document has 4 error\(s\): unknown channel 'emial'/);
  assert.deepEqual(r.json.errors.map((e) => [e.where, e.node]), [
    ['api:6:22', 'hello'], ['api:7:11', 'hello'], ['api:9:11', 'pause_a_bit'], ['api:13:42', 'check'],
  ]);
  assert.equal(r.json.errors[0].message, "unknown channel 'emial' (did you mean 'email'?)");
  assert.equal(r.json.errors[1].message, "edge to missing node 'missing_node'");
  assert.match(r.json.errors[2].message, /^bad duration '1\.5d' in 'wait'/);
  assert.match(r.json.errors[3].message, /^in 'when': /);
  r = await api(s, 'GET', '/v1/journeys/bad-one');
  assert.equal(r.status, 404, r.text);
  assert.equal(r.json.error, "no journey 'bad-one'");
  r = await api(s, 'POST', '/v1/journeys', 'just text');
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.errors.length, 1);
  assert.match(r.json.errors[0].where, /^api:\d+:\d+$/);

  // content types: JSON is a document too; HTML and form bodies are not
  const jsonDoc = { id: 'e2e-json', entry: { api: true }, nodes: { only: { send: { channel: 'sms', template: 'hi' } } } };
  r = await api(s, 'POST', '/v1/journeys', JSON.stringify(jsonDoc), { contentType: 'application/json; charset=utf-8' });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.id, 'e2e-json');
  for (const ct of ['text/html', 'application/x-www-form-urlencoded']) {
    r = await api(s, 'POST', '/v1/journeys', WELCOME.replace('e2e-welcome', 'e2e-other'), { contentType: ct });
    assert.equal(r.status, 415, `${ct}: ${r.text}`);
    assert.match(r.json.error, new RegExp(`^unsupported content type ${ct}`));
  }

  // one journey with its draft, no versions yet
  r = await api(s, 'GET', '/v1/journeys/e2e-welcome');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.draft, WELCOME);
  assert.deepEqual(r.json.versions, []);

  // publish the draft: version 1
  r = await api(s, 'POST', '/v1/journeys/e2e-welcome/publish');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.version, 1);
  assert.equal(r.json.status, 'active');
  assert.equal(r.json.has_draft, false);
  r = await api(s, 'POST', '/v1/journeys/e2e-welcome/publish');
  assert.equal(r.status, 409, r.text);
  assert.match(r.json.error, /has no draft/);

  // PUT: an id that is not the path's, a bad document, then a change
  r = await api(s, 'PUT', '/v1/journeys/e2e-other', WELCOME);
  assert.equal(r.status, 400, r.text);
  assert.match(r.json.error, /'e2e-welcome'/);
  assert.match(r.json.error, /'e2e-other'/);
  r = await api(s, 'PUT', '/v1/journeys/e2e-welcome', WELCOME.replace('wait: 2d', 'wait: 2 days'));
  assert.equal(r.status, 400, r.text);
  assert.deepEqual(r.json.errors.map((e) => [e.where, e.node]), [['api:11:11', 'later']]);
  const v2 = WELCOME.replace('wait: 2d', 'wait: 3d').replace('Welcome (e2e)', 'Welcome, v2');
  r = await api(s, 'PUT', '/v1/journeys/e2e-welcome', v2);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.version, 1, 'a draft does not change the live version');
  assert.equal(r.json.has_draft, true);
  r = await api(s, 'POST', '/v1/journeys/e2e-welcome/publish', '');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.version, 2);

  // PUT creates, too (create-or-update)
  r = await api(s, 'PUT', '/v1/journeys/e2e-put', WELCOME.replace('e2e-welcome', 'e2e-put'));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, 'draft');
  // publish with the document in the body
  r = await api(s, 'POST', '/v1/journeys/e2e-put/publish', WELCOME.replace('e2e-welcome', 'e2e-put').replace('2d', '5d'));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.version, 1);
  r = await api(s, 'POST', '/v1/journeys/e2e-put/publish', WELCOME);
  assert.equal(r.status, 400, `publish of another id's document: ${r.text}`);

  // versions: both, in order, with their text and document
  r = await api(s, 'GET', '/v1/journeys/e2e-welcome/versions');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.map((v) => v.version), [1, 2]);
  assert.equal(r.json[0].text, WELCOME);
  assert.equal(r.json[1].text, v2);
  assert.equal(r.json[1].document.name, 'Welcome, v2');
  assert.ok(ms(r.json[0].published_at) <= ms(r.json[1].published_at));

  // the list: every journey, without documents
  r = await api(s, 'GET', '/v1/journeys');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.map((j) => j.id).sort(), ['e2e-json', 'e2e-put', 'e2e-welcome']);
  const w = r.json.find((j) => j.id === 'e2e-welcome');
  assert.equal(w.version, 2);
  assert.equal(w.versions[0].text, undefined, 'the list has no documents');

  // pause / resume and their conflicts
  r = await api(s, 'POST', '/v1/journeys/e2e-welcome/pause');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, 'paused');
  r = await api(s, 'POST', '/v1/journeys/e2e-welcome/pause');
  assert.equal(r.status, 409, r.text);
  assert.match(r.json.error, /not active/);
  r = await api(s, 'POST', '/v1/journeys/e2e-welcome/resume');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, 'active');
  r = await api(s, 'POST', '/v1/journeys/e2e-welcome/resume');
  assert.equal(r.status, 409, r.text);
  assert.match(r.json.error, /not paused/);

  // API entry
  r = await api(s, 'POST', '/v1/journeys/e2e-json/enter', {});
  assert.equal(r.status, 400, r.text);
  assert.deepEqual(r.json, { error: 'userId or anonymousId is required' });
  r = await api(s, 'POST', '/v1/journeys/e2e-json/enter', '{"userId":"eve"} trailing', { contentType: 'application/json' });
  assert.equal(r.status, 400, r.text);
  assert.match(r.json.error, /^expected a JSON object/);
  r = await api(s, 'POST', '/v1/journeys/e2e-json/enter', { userId: true });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.at, 'userId');
  r = await api(s, 'POST', '/v1/journeys/e2e-json/enter', { userId: 'eve' });
  assert.equal(r.status, 409, `entry into a draft: ${r.text}`);
  r = await api(s, 'POST', '/v1/journeys/e2e-json/publish');
  assert.equal(r.status, 200, r.text);
  r = await api(s, 'POST', '/v1/journeys/e2e-json/enter', { userId: 'eve' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.entered, true);
  assert.equal(r.json.journey, 'e2e-json');
  r = await api(s, 'POST', '/v1/journeys/e2e-json/enter', { userId: 'eve' });
  assert.equal(r.status, 409, `re-entry is never by default: ${r.text}`);
  r = await api(s, 'POST', '/v1/journeys/e2e-json/enter', { anonymousId: 'anon-eve' });
  assert.equal(r.status, 200, r.text);
  const eve = await pollIntents(s, 'eve', (l) => l.length === 1);
  assert.equal(eve[0].journey, 'e2e-json');
  assert.equal(eve[0].node, 'only');
  assert.equal(eve[0].kind, 'send');
  assert.equal(eve[0].channel, 'sms');
  assert.equal(eve[0].template, 'hi');
  assert.equal(eve[0].version, 1);
  assert.equal(eve[0].person, 'eve');
  const anon = await pollIntents(s, 'anon-eve', (l) => l.length === 1);
  assert.equal(anon[0].person, 'anon-eve');
  assert.notEqual(anon[0].id, eve[0].id);
  r = await api(s, 'GET', '/v1/intents');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.map((i) => i.person).sort(), ['anon-eve', 'eve'], 'everyone, newest first');
  r = await api(s, 'GET', '/v1/intents?limit=1');
  assert.equal(r.json.length, 1);
  for (const bad of ['0', '1001', 'ten', '-1', '']) {
    r = await api(s, 'GET', `/v1/intents?limit=${bad}`);
    assert.equal(r.status, 400, `limit=${bad}: ${r.text}`);
    assert.deepEqual(r.json, { error: 'limit must be a whole number from 1 to 1000', at: 'limit' });
  }
  r = await personJourneys(s, 'eve');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.map((x) => [x.journey, x.state]), [['e2e-json', 'exited']]);
  r = await personJourneys(s, 'nobody');
  assert.equal(r.status, 404, r.text);

  // archive: then nothing changes it any more
  r = await api(s, 'POST', '/v1/journeys/e2e-welcome/archive');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, 'archived');
  for (const [m, p, b] of [['PUT', '/v1/journeys/e2e-welcome', WELCOME], ['POST', '/v1/journeys/e2e-welcome/publish', WELCOME],
    ['POST', '/v1/journeys/e2e-welcome/resume'], ['POST', '/v1/journeys/e2e-welcome/pause'], ['POST', '/v1/journeys/e2e-welcome/archive'],
    ['POST', '/v1/journeys/e2e-welcome/enter', { userId: 'eve' }]]) {
    r = await api(s, m, p, b);
    assert.equal(r.status, 409, `${m} ${p} of an archived journey: ${r.text}`);
    assert.match(r.json.error, /archived|not active/);
  }

  // unknown journeys, unknown actions, methods
  for (const [m, p, b] of [['GET', '/v1/journeys/nope'], ['GET', '/v1/journeys/nope/versions'], ['POST', '/v1/journeys/nope/pause'],
    ['POST', '/v1/journeys/nope/resume'], ['POST', '/v1/journeys/nope/archive'], ['POST', '/v1/journeys/nope/publish'],
    ['POST', '/v1/journeys/nope/enter', { userId: 'eve' }]]) {
    r = await api(s, m, p, b);
    assert.equal(r.status, 404, `${m} ${p}: ${r.text}`);
    assert.equal(r.json.error, "no journey 'nope'");
  }
  for (const [m, p] of [['POST', '/v1/journeys/e2e-put/frobnicate'], ['GET', '/v1/journeys/e2e-put/a/b'], ['PUT', '/v1/journeys/e2e-put/publish']]) {
    r = await api(s, m, p, m === 'GET' ? undefined : '');
    assert.equal(r.status, 404, `${m} ${p}: ${r.text}`);
    assert.match(r.json.error, /^no route for /);
  }
  r = await api(s, 'DELETE', '/v1/journeys/e2e-put');
  assert.equal(r.status, 405, r.text);
  assert.equal(r.headers.allow, 'GET, PUT, POST');

  // one document is at most 1 MiB, whether the body is chunked or declares its length just
  // over the ceiling (read and dropped, then a readable 413 on a connection that stays open).
  const big = WELCOME + `# ${'x'.repeat(1024 * 1024)}\n`;
  for (const declared of [false, true]) {
    r = await chunked(s, 'POST', '/v1/journeys', big, { 'Content-Type': 'application/yaml', Authorization: `Bearer ${ADMIN_TOKEN}` }, declared);
    assert.equal(r.status, 413, r.text);
    assert.deepEqual(r.json, { error: 'request body exceeds 1048576 bytes (JRN_MAX_DOC_BYTES, fixed)' });
  }

  await s.stop();
});

// ---- 2. the examples, driven by the Segment SDK --------------------------------------------------

test('the example journeys (journeys.dir) run on events from @segment/analytics-node', async (t) => {
  const s = await start({ t, args: ['--set', `journeys.dir=${EXAMPLES}`] });
  const a = sdk(s);
  t.after(() => a.close());

  let r = await api(s, 'GET', '/v1/journeys');
  assert.equal(r.status, 200, r.text);
  const byId = Object.fromEntries(r.json.map((j) => [j.id, j]));
  for (const id of ['onboarding-trial', 'cart-abandonment', 'churn-prevention']) {
    assert.ok(byId[id], `${id} is published at start: ${r.text}`);
    assert.equal(byId[id].status, 'active');
    assert.equal(byId[id].version, 1);
  }

  // cart abandonment: waits an hour for the order
  const ana = uid('cart-ana');
  await a.send('identify', { userId: ana, traits: { unsubscribed: false, last_cart_value: 140 } });
  await a.send('track', { userId: ana, event: 'Cart Updated', properties: { cart_value: 140.0 } });
  const anaIn = await pollPerson(s, ana, 'cart-abandonment', (e) => e.state === 'waiting');
  assert.equal(anaIn.node, 'grace_period');
  assert.equal(anaIn.version, 1);
  assert.equal(anaIn.waiting_for, 'event:Order Completed');
  assert.equal(ms(anaIn.timer_at) - ms(anaIn.entered_at), 1 * HOUR, `timer_at = entry + 1h: ${JSON.stringify(anaIn)}`);
  assert.ok(Math.abs(ms(anaIn.entered_at) - Date.now()) < 60 * SECOND, `entered_at is now: ${anaIn.entered_at}`);
  // a second Cart Updated while waiting does not start another instance
  await a.send('track', { userId: ana, event: 'Cart Updated', properties: { cart_value: 150.0 } });
  r = await personJourneys(s, ana);
  assert.equal(r.json.filter((x) => x.journey === 'cart-abandonment').length, 1, r.text);
  assert.equal(r.json[0].instance, anaIn.instance);

  // ordering within the hour: leaves without a message
  const cy = uid('cart-cy');
  await a.send('track', { userId: cy, event: 'Cart Updated', properties: { cart_value: 25.0 } });
  await pollPerson(s, cy, 'cart-abandonment', (e) => e.state === 'waiting');
  await a.send('track', { userId: cy, event: 'Order Completed', properties: { total: 25.0 } });
  const cyOut = await pollPerson(s, cy, 'cart-abandonment', (e) => e.state === 'exited');
  assert.equal(cyOut.last_end, 'goal', `Order Completed with a total is the goal: ${JSON.stringify(cyOut)}`);
  // an empty cart does not enter
  const zed = uid('cart-zed');
  await a.send('track', { userId: zed, event: 'Cart Updated', properties: { cart_value: 0.0 } });

  // onboarding: the welcome email at once, then a day's wait
  const tia = uid('trial-tia');
  await a.send('identify', { userId: tia, traits: { name: 'Tia', company_size: 80, timezone: 'Europe/Paris' } });
  await a.send('track', { userId: tia, event: 'Trial Started', properties: { plan: 'trial' } });
  const tiaSends = await pollIntents(s, tia, (l) => l.length >= 1);
  assert.equal(tiaSends.length, 1, JSON.stringify(tiaSends));
  assert.deepEqual(pick(tiaSends[0], ['journey', 'version', 'node', 'kind', 'channel', 'template', 'category', 'person']),
    { journey: 'onboarding-trial', version: 1, node: 'welcome', kind: 'send', channel: 'email', template: 'trial_welcome', category: 'onboarding', person: tia });
  const tiaIn = await pollPerson(s, tia, 'onboarding-trial', (e) => e.state === 'waiting');
  assert.equal(tiaIn.node, 'day1');
  assert.equal(tiaIn.waiting_for, 'timer');
  assert.equal(ms(tiaIn.timer_at) - ms(tiaIn.entered_at), 1 * DAY);
  assert.equal(ms(tiaSends[0].at), ms(tiaIn.entered_at), 'the welcome intent is at the entry');
  // an invited user (plan is not trial) does not enter; Subscription Started ends the trial journey
  const ivy = uid('trial-ivy');
  await a.send('track', { userId: ivy, event: 'Trial Started', properties: { plan: 'invited' } });
  await a.send('track', { userId: tia, event: 'Subscription Started', properties: { plan: 'pro' } });
  const tiaOut = await pollPerson(s, tia, 'onboarding-trial', (e) => e.state === 'exited');
  assert.equal(tiaOut.last_end, 'exit_rule');

  // churn prevention: a segment entry (not run yet), so people enter through the API
  const ent = uid('churn-ent');
  const pro = uid('churn-pro');
  await a.send('identify', { userId: ent, traits: { plan: 'enterprise', company: 'Acme' } });
  await a.send('identify', { userId: pro, traits: { plan: 'pro', timezone: 'UTC' } });
  r = await api(s, 'POST', '/v1/journeys/churn-prevention/enter', { userId: ent });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.entered, true);
  const entTasks = await pollIntents(s, ent, (l) => l.length >= 1);
  assert.deepEqual(pick(entTasks[0], ['journey', 'node', 'kind', 'queue', 'person']),
    { journey: 'churn-prevention', node: 'csm_task', kind: 'task', queue: 'customer-success', person: ent });
  const entOut = await pollPerson(s, ent, 'churn-prevention', (e) => e.state === 'exited');
  assert.equal(entOut.last_end, 'finished');
  r = await request(s.url, `/v1/profiles/${ent}`, { bearer: ADMIN_TOKEN });
  assert.equal(r.json.traits.churn_risk, true, `the update node set churn_risk: ${r.text}`);
  r = await api(s, 'POST', '/v1/journeys/churn-prevention/enter', { userId: ent });
  assert.equal(r.status, 409, `re-entry within the 30 d cooldown: ${r.text}`);

  r = await api(s, 'POST', '/v1/journeys/churn-prevention/enter', { userId: pro });
  assert.equal(r.status, 200, r.text);
  const proIn = await pollPerson(s, pro, 'churn-prevention', (e) => e.state === 'waiting');
  assert.equal(proIn.node, 'check_in');
  const fire = new Date(ms(proIn.timer_at));
  assert.ok([2, 3, 4].includes(fire.getUTCDay()), `check-in on Tue/Wed/Thu: ${proIn.timer_at}`);
  assert.equal(fire.toISOString().slice(11, 19), '10:00:00', `at 10:00 UTC: ${proIn.timer_at}`);
  assert.ok(ms(proIn.timer_at) > ms(proIn.entered_at) && ms(proIn.timer_at) - ms(proIn.entered_at) <= 7 * DAY);
  // a ticket pauses the journey where it is; closing it resumes
  await a.send('track', { userId: pro, event: 'Ticket Opened' });
  const proPaused = await pollPerson(s, pro, 'churn-prevention', (e) => e.state === 'paused');
  assert.equal(proPaused.node, 'check_in');
  assert.equal(proPaused.waiting_for, 'resume:Ticket Closed');
  await a.send('track', { userId: pro, event: 'Ticket Closed' });
  const proBack = await pollPerson(s, pro, 'churn-prevention', (e) => e.state === 'waiting');
  assert.equal(proBack.node, 'check_in');
  assert.equal(proBack.instance, proIn.instance);

  // nobody above got a message they should not have
  assert.deepEqual(await intents(s, ana), []);
  assert.deepEqual(await intents(s, cy), []);
  assert.deepEqual(await intents(s, pro), []);
  assert.deepEqual(await intents(s, ivy), []);
  for (const who of [zed, ivy]) {
    r = await personJourneys(s, who);
    assert.equal(r.status, 404, `${who} never entered: ${r.text}`);
  }
  await a.close();
  await s.stop();
});

function pick(o, keys) {
  return Object.fromEntries(keys.map((k) => [k, o[k]]));
}

// ---- 3. a real-time wait ------------------------------------------------------------------------

const TIMED = `id: e2e-timed
entry:
  event: Timed Start
nodes:
  pause:
    wait: 2s
    next: ping
  ping:
    send: { channel: email, template: timed_ping }
`;

test('a 2 s wait fires 2 s after the entry, within a couple of seconds', async (t) => {
  const s = await start({ t, args: ['--set', `journeys.dir=${freshDir(t)}`] });
  let r = await api(s, 'POST', `/v1/journeys/e2e-timed/publish`, TIMED);
  assert.equal(r.status, 200, r.text);
  const a = sdk(s);
  t.after(() => a.close());
  const who = uid('timed');
  await a.send('track', { userId: who, event: 'Timed Start' });
  const e = await pollPerson(s, who, 'e2e-timed', (x) => x.state === 'waiting');
  const entered = ms(e.entered_at);
  assert.equal(e.node, 'pause');
  assert.equal(ms(e.timer_at) - entered, 2 * SECOND);
  assert.deepEqual(await intents(s, who), [], 'nothing before the wait is over');
  const got = await pollIntents(s, who, (l) => l.length > 0, { timeoutMs: 2 * SECOND + 4 * SECOND, what: 'intent after the 2 s wait' });
  const seen = Date.now();
  assert.equal(got.length, 1);
  assert.equal(got[0].node, 'ping');
  assert.ok(ms(got[0].at) >= entered + 2 * SECOND, `intent at ${got[0].at} >= entry ${e.entered_at} + 2 s`);
  assert.ok(ms(got[0].at) <= entered + 2 * SECOND + 2500, `intent at ${got[0].at} within 2.5 s of the due time`);
  assert.ok(seen >= entered + 2 * SECOND - 50, 'not seen before it was due');
  r = await personJourneys(s, who);
  assert.equal(r.json[0].state, 'exited');
  assert.equal(r.json[0].last_end, 'finished');
  await a.close();
  await s.stop();
});

// ---- 4. a wait across a restart ---------------------------------------------------------------

const RESTART = `id: e2e-restart
entry:
  api: true
nodes:
  hold:
    wait: 3s
    next: ping
  ping:
    send: { channel: email, template: after_restart }
`;

for (const how of ['SIGTERM', 'SIGKILL']) {
  test(`a 3 s wait survives a restart (${how}) and fires exactly once`, async (t) => {
    // One after-hook, registered first: kill the servers, then remove the folder they write.
    const dataDir = mkdtempSync(join(tmpdir(), 'journeyd-e2e-jrestart-'));
    let s1, s2;
    t.after(async () => {
      await s1?.cleanup();
      await s2?.cleanup();
      if (!process.env.JOURNEYD_KEEP_DATA) rmSync(dataDir, { recursive: true, force: true });
    });
    const args = ['--set', `journeys.dir=${freshDir(t)}`];
    s1 = await start({ dataDir, args });
    let r = await api(s1, 'POST', '/v1/journeys/e2e-restart/publish', RESTART);
    assert.equal(r.status, 200, r.text);
    const who = uid(`restart-${how.toLowerCase()}`);
    r = await api(s1, 'POST', '/v1/journeys/e2e-restart/enter', { userId: who });
    assert.equal(r.status, 200, r.text);
    const before = await pollPerson(s1, who, 'e2e-restart', (x) => x.state === 'waiting');
    assert.equal(before.node, 'hold');
    const due = ms(before.timer_at);
    assert.equal(due - ms(before.entered_at), 3 * SECOND);

    if (how === 'SIGTERM') await s1.stop('SIGTERM');
    else await s1.kill9();
    s2 = await start({ dataDir, args });

    // before it fires: the same instance, waiting at the same node for the same time
    const asked = Date.now();
    assert.ok(asked < due - 100, `the restart took until ${asked - due} ms from the due time: the test cannot see the wait`);
    r = await personJourneys(s2, who);
    assert.equal(r.status, 200, r.text);
    const after = r.json.find((x) => x.journey === 'e2e-restart');
    assert.deepEqual(pick(after, ['state', 'node', 'instance', 'timer_at', 'entered_at', 'version']),
      pick(before, ['state', 'node', 'instance', 'timer_at', 'entered_at', 'version']));
    assert.deepEqual(await intents(s2, who), []);

    const got = await pollIntents(s2, who, (l) => l.length > 0, { timeoutMs: due - Date.now() + 4 * SECOND, what: 'intent after the restart' });
    assert.ok(ms(got[0].at) >= due, `intent at ${got[0].at} >= due ${before.timer_at}`);
    await sleep(1500);           // more clock records: it must not fire again
    const again = await intents(s2, who);
    assert.equal(again.length, 1, JSON.stringify(again));
    assert.equal(again[0].id, got[0].id);
    assert.equal(again[0].node, 'ping');
    r = await personJourneys(s2, who);
    assert.equal(r.json[0].state, 'exited', r.text);
    assert.equal((await api(s2, 'GET', '/v1/journeys/e2e-restart')).json.version, 1);
    await s2.stop();
  });
}

// The feedback loop end to end: a send node's webhook carries the signed links its template
// asked for (open pixel, one-click unsubscribe, a click wrapped with ?to=); fetching them
// records Email Opened / Email Link Clicked / Unsubscribed on the person, the click redirects
// only to the signed target, the unsubscribe refuses consent so the next send is skipped, and
// a provider's signed receipt records a bounce and suppresses the channel.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { start, request, uid } from './lib/journeyd.mjs';
import { api, sdk } from './lib/clients.mjs';

const SECRET = 'whsec_track';
const BASE = 'https://links.example.test';   // links.base_url: what the links start with
const TARGET = 'https://acme.example/pricing?plan=pro&ref=mail';

async function receiver(t) {
  const bodies = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => { bodies.push(JSON.parse(body)); res.writeHead(200); res.end('{}'); });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => { srv.closeAllConnections?.(); srv.close(r); }));
  return { url: `http://127.0.0.1:${srv.address().port}/hook`, bodies };
}

function setup(t, hookUrl) {
  const dir = mkdtempSync(join(tmpdir(), 'journeyd-e2e-track-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const d of ['j', 's', 'templates']) mkdirSync(join(dir, d));
  writeFileSync(join(dir, 'templates', 'promo.yaml'), `id: promo
kind: webhook
body: |
  {"user": "{{ profile.userId }}", "message": "{{ message.id }}",
   "pixel": "{{ message.open_pixel_url }}", "unsubscribe": "{{ message.unsubscribe_url }}",
   "click": "{{ message.click_url }}?to={{ '${TARGET}' | url_encode }}",
   "bare": "{{ message.click_url }}"}
`);
  writeFileSync(join(dir, 'journeyd.yaml'), `
journeys: { dir: ${join(dir, 'j')} }
segments: { dir: ${join(dir, 's')} }
templates: { dir: ${join(dir, 'templates')} }
links: { base_url: "${BASE}/" }
channels:
  hook:
    kind: webhook
    url: "${hookUrl}"
    secret: "${SECRET}"
    retry: { max_attempts: 2, backoff: 20ms }
`);
  return join(dir, 'journeyd.yaml');
}

const JOURNEY = `id: promo
entry: { event: Promo }
reentry: always
nodes:
  mail: { send: { channel: hook, template: promo, category: marketing } }
`;

async function until(fn, what, ms = 15_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const skipped = async (s) => Number(/journeyd_deliveries_total\{outcome="skipped"\} (\d+)/.exec((await request(s.url, '/metrics', {})).text)?.[1] ?? NaN);

test('opens, clicks, one-click unsubscribe and provider receipts become events; links are signed', async (t) => {
  const rx = await receiver(t);
  const s = await start({ t, args: ['--config', setup(t, rx.url)] });
  let r = await api(s, 'POST', '/v1/journeys', JOURNEY);
  assert.equal(r.status, 201, r.text);
  r = await api(s, 'POST', '/v1/journeys/promo/publish');
  assert.equal(r.status, 200, r.text);
  const who = uid('reader');
  r = await api(s, 'POST', '/v1/consent', { userId: who, consent: { 'hook/marketing': true }, source: 'signup' });
  assert.equal(r.status, 200, r.text);
  const a = sdk(s);
  await a.send('track', { userId: who, event: 'Promo' });

  const msg = await until(() => rx.bodies[0], 'the webhook');
  for (const k of ['pixel', 'unsubscribe', 'click', 'bare']) assert.ok(msg[k].startsWith(`${BASE}/t/`), `${k}: ${msg[k]}`);
  assert.ok(!msg.click.includes('?to='), 'the click link is sealed: its target is inside the signed token');
  // the links point at links.base_url (a proxy in production); here the test calls the server
  const local = (u) => { const x = new URL(u); return x.pathname + x.search; };
  const profile = async () => (await api(s, 'GET', `/v1/profiles/${who}`)).json;

  // open: a 1x1 GIF, every fetch counted
  for (let i = 0; i < 2; i++) {
    r = await request(s.url, local(msg.pixel));
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'image/gif');
    assert.match(r.headers['cache-control'], /no-store/);
  }
  // click: 302 to the signed target, exactly
  r = await request(s.url, local(msg.click));
  assert.equal(r.status, 302, r.text);
  assert.equal(r.headers.location, TARGET);
  let p = await until(async () => { const j = await profile(); return j?.events?.['Email Link Clicked'] === 1 && j.events['Email Opened'] === 2 && j; }, 'opens and the click');
  assert.ok(p.timeline.some((e) => e.name === 'Email Link Clicked'));

  // refused: a tampered token, an unsigned target, a sealed link with another target, wrong kinds
  const tok = local(msg.click).split('/').pop();
  const flip = (s2, i) => s2.slice(0, i) + (s2[i] === 'A' ? 'B' : 'A') + s2.slice(i + 1);
  r = await request(s.url, `/t/c/${flip(tok, 20)}`);
  assert.equal(r.status, 404, r.text);
  assert.equal(r.json.error, "the link's signature does not match");
  assert.equal(r.headers.location, undefined);
  r = await request(s.url, `${local(msg.bare)}?to=${encodeURIComponent('https://evil.example/')}`);
  assert.equal(r.status, 400, r.text);
  assert.equal(r.headers.location, undefined);
  r = await request(s.url, `${local(msg.click)}?to=${encodeURIComponent('https://evil.example/')}`);
  assert.equal(r.status, 400, r.text);
  r = await request(s.url, `/t/u/${tok}`, { method: 'POST', body: 'List-Unsubscribe=One-Click' });
  assert.equal(r.status, 404, 'a click token is no unsubscribe token');
  r = await request(s.url, `/t/o/${tok}`);
  assert.equal(r.status, 404);

  // unsubscribe: GET shows a page and changes nothing; the one-click POST (RFC 8058) refuses consent
  r = await request(s.url, local(msg.unsubscribe));
  assert.equal(r.status, 200);
  assert.match(r.text, /<form method="post" action="\/t\/u\/[A-Za-z0-9_-]+">/);
  assert.equal((await profile()).consent['hook/marketing'].granted, true);
  r = await request(s.url, local(msg.unsubscribe), {
    method: 'POST', body: 'List-Unsubscribe=One-Click', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
  });
  assert.equal(r.status, 200, r.text);
  p = await profile();
  assert.equal(p.consent['hook/marketing'].granted, false);
  assert.equal(p.consent['hook/marketing'].source, 'unsubscribe');
  assert.equal(p.events.Unsubscribed, 1);

  // the next send of that category is skipped
  const before = await skipped(s);
  await a.send('track', { userId: who, event: 'Promo' });
  await until(async () => (await skipped(s)) === before + 1, 'the skipped send');
  assert.equal(rx.bodies.length, 1, 'no second message');

  // provider receipts: signed with the channel's secret like journeyd's own webhooks
  const receipt = { message_id: msg.message, event: 'bounced', reason: '550 5.1.1 no such user', userId: who };
  const body = JSON.stringify(receipt);
  const ts = String(Math.floor(Date.now() / 1000));
  const sign = (secret) => 'sha256=' + createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex');
  const send = (sig, path = '/v1/webhooks/hook') => request(s.url, path, {
    method: 'POST', body, headers: { 'Content-Type': 'application/json', 'X-Journeyd-Timestamp': ts, 'X-Journeyd-Signature': sig },
  });
  r = await send(sign('not the secret'));
  assert.equal(r.status, 401, r.text);
  r = await send(sign(SECRET), '/v1/webhooks/nope');
  assert.equal(r.status, 404, r.text);
  r = await send(sign(SECRET));
  assert.equal(r.status, 200, r.text);
  p = await profile();
  assert.equal(p.events['Email Bounced'], 1);
  assert.equal(p.consent.hook.granted, false);
  assert.equal(p.consent.hook.source, 'bounce');
  r = await send(sign(SECRET));   // the provider retries: recorded once
  assert.equal(r.status, 200, r.text);
  assert.equal((await profile()).events['Email Bounced'], 1);
  await a.close();
});

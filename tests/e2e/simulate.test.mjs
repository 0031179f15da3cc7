// tests/e2e/simulate.test.mjs -- `journeyd simulate`: replays a generated NDJSON
// fixture through journeys/cart-abandonment.yaml on a virtual clock and checks
// the intents (who, which node, when relative to the cart event), the holdout,
// conversion, byte-identical output across runs, and refused input (a bad line,
// events out of time order) named by line number.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = process.env.JOURNEYD_BIN || join(root, 'build', 'asan', 'journeyd');
const journey = join(root, 'journeys', 'cart-abandonment.yaml');

const HOUR = 3600e3, MIN = 60e3, DAY = 24 * HOUR;
const T0 = Date.parse('2026-01-05T10:00:00Z');   // a Monday
const iso = (ms) => new Date(ms).toISOString();

function run(args, input) {
  return spawnSync(bin, ['simulate', ...args], { encoding: 'utf8', timeout: 60000, cwd: root, input });
}

function tmp(t) {
  const d = mkdtempSync(join(tmpdir(), 'jd-sim-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

// buyer orders 20 minutes after the cart; shopper-0..N never order. Every person
// identifies first (the journey's exit rule reads profile.traits.unsubscribed).
const SHOPPERS = 40;
function fixture() {
  const lines = [];
  const cartAt = {};
  const ident = (id, at, traits) => lines.push({ type: 'identify', userId: id, traits, timestamp: iso(at) });
  const track = (id, at, event, properties) => lines.push({ type: 'track', userId: id, event, properties, timestamp: iso(at) });
  ident('buyer', T0, { unsubscribed: false, last_cart_value: 50 });
  for (let i = 0; i < SHOPPERS; i++)
    ident(`shopper-${i}`, T0, { unsubscribed: false, last_cart_value: 150, timezone: 'UTC' });
  track('buyer', T0 + MIN, 'Cart Updated', { cart_value: 50.0 });
  cartAt.buyer = T0 + MIN;
  for (let i = 0; i < SHOPPERS; i++) {
    const at = T0 + 2 * MIN + i * MIN;
    track(`shopper-${i}`, at, 'Cart Updated', { cart_value: 150.0 });
    cartAt[`shopper-${i}`] = at;
  }
  track('buyer', T0 + 21 * MIN, 'Order Completed', { total: 50.0 });
  lines.sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp));   // stable: ties keep their order
  return { text: lines.map((l) => JSON.stringify(l)).join('\n') + '\n', cartAt };
}

test('replays carts: the buyer converts without a message, the others get reminders, the holdout none', (t) => {
  const dir = tmp(t);
  const { text, cartAt } = fixture();
  const events = join(dir, 'events.ndjson');
  writeFileSync(events, text);
  const r = run(['--journey', journey, '--events', events, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.journey, 'cart-abandonment');
  assert.equal(out.events, 2 * (SHOPPERS + 1) + 1);
  assert.equal(out.people_entered, SHOPPERS + 1);

  const people = Object.fromEntries(out.people.map((p) => [p.person, p]));
  assert.equal(people.buyer.end, 'goal');
  assert.equal(out.intents.filter((x) => x.person === 'buyer').length, 0, 'the buyer gets nothing');
  assert.equal(out.converted, 1);

  const byVariant = { A: [], B: [], holdout: [] };
  for (let i = 0; i < SHOPPERS; i++) byVariant[people[`shopper-${i}`].variant].push(`shopper-${i}`);
  assert.ok(byVariant.A.length > 0 && byVariant.B.length > 0 && byVariant.holdout.length > 0, JSON.stringify(byVariant));
  for (const who of byVariant.holdout) {
    assert.equal(people[who].end, 'control');
    assert.equal(out.intents.filter((x) => x.person === who).length, 0, `${who} is in the holdout`);
  }
  // A and B (no phone: B falls back to email): reminder 1h after the cart, then
  // (cart worth >= 100) the discount at 09:30 UTC the morning after the day's wait.
  const reminded = [...byVariant.A, ...byVariant.B];
  assert.equal(out.intents.length, 2 * reminded.length);
  for (const who of reminded) {
    const mine = out.intents.filter((x) => x.person === who);
    assert.equal(mine.length, 2, who);
    assert.equal(mine[0].node, 'reminder_email');
    assert.equal(mine[0].template, 'cart_reminder_a');
    assert.equal(Date.parse(mine[0].at) - cartAt[who], HOUR);
    assert.equal(mine[1].node, 'discount_email');
    const dayLater = cartAt[who] + HOUR + DAY;
    const morning = new Date(dayLater); morning.setUTCHours(9, 30, 0, 0);
    if (morning.getTime() < dayLater) morning.setUTCDate(morning.getUTCDate() + 1);
    assert.equal(mine[1].at, morning.toISOString(), who);
    assert.equal(people[who].end, 'finished');
    assert.match(mine[0].intent, /^[0-9a-f]{16}$/);
  }
  // intents are sorted by time
  const times = out.intents.map((x) => Date.parse(x.at));
  assert.deepEqual(times, [...times].sort((a, b) => a - b));
  // funnel: everyone reached the grace period; the split saw the shoppers
  const fun = Object.fromEntries(out.funnel.map((n) => [n.node, n]));
  assert.equal(fun.grace_period.entered, SHOPPERS + 1);
  assert.equal(fun.grace_period.exits.goal, 1);
  assert.equal(fun.reminder_test.entered, SHOPPERS);
  assert.equal(fun.reminder_test.exits.control, byVariant.holdout.length);
  assert.deepEqual(out.funnel.map((n) => n.node).slice(0, 3), ['grace_period', 'completed', 'reminder_test']);
});

test('the text output lists intents and the funnel, identical across runs, and stdin works', (t) => {
  const dir = tmp(t);
  const { text } = fixture();
  const events = join(dir, 'events.ndjson');
  writeFileSync(events, text);
  const a = run(['--journey', journey, '--events', events]);
  const b = run(['--journey', journey, '--events', '-'], text);
  assert.equal(a.status, 0, a.stderr);
  assert.equal(b.status, 0, b.stderr);
  assert.equal(a.stdout, b.stdout);
  assert.match(a.stdout, /^journey cart-abandonment: 83 events read, 41 people entered/);
  assert.match(a.stdout, /\n2026-01-05T11:02:00\.000Z {2}shopper-0 {2}reminder_email {2}send email\/cart_reminder_a {2}\(intent [0-9a-f]{16}\)\n/);
  assert.match(a.stdout, /\nfunnel:\n/);
  assert.match(a.stdout, /\ngrace_period +41 /);
  const j1 = run(['--journey', journey, '--events', events, '--json']);
  const j2 = run(['--journey', journey, '--events', events, '--json']);
  assert.equal(j1.stdout, j2.stdout);
});

test('--until stops the clock: later waits stay pending', (t) => {
  const dir = tmp(t);
  const { text } = fixture();
  const events = join(dir, 'events.ndjson');
  writeFileSync(events, text);
  const r = run(['--journey', journey, '--events', events, '--json', '--until', '2026-01-05T12:00:00Z']);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.ok(out.intents.length > 0);
  for (const x of out.intents) assert.equal(x.node, 'reminder_email');
  const waiting = out.people.filter((p) => p.end === 'waiting').map((p) => p.person);
  assert.equal(waiting.length, out.intents.length);
});

test('a bad event line stops with exit 1 naming the line and the field', (t) => {
  const dir = tmp(t);
  const events = join(dir, 'bad.ndjson');
  writeFileSync(events, [
    JSON.stringify({ type: 'track', userId: 'u', event: 'Cart Updated', properties: { cart_value: 1.0 }, timestamp: '2026-01-05T10:00:00Z' }),
    '',
    JSON.stringify({ type: 'track', event: 'Cart Updated', timestamp: '2026-01-05T10:01:00Z' }),
  ].join('\n') + '\n');
  const r = run(['--journey', journey, '--events', events]);
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, new RegExp(`^${events.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: .*userId`));
  writeFileSync(events, '{"type":"track", nope\n');
  const j = run(['--journey', journey, '--events', events]);
  assert.equal(j.status, 1);
  assert.match(j.stderr, /bad\.ndjson:1: invalid JSON at byte 17 /);
});

test('events out of time order stop with exit 1 naming the line', (t) => {
  const dir = tmp(t);
  const events = join(dir, 'unordered.ndjson');
  writeFileSync(events, [
    { type: 'track', userId: 'u', event: 'Cart Updated', properties: { cart_value: 1.0 }, timestamp: '2026-01-05T10:00:00Z' },
    { type: 'track', userId: 'u', event: 'Cart Updated', properties: { cart_value: 1.0 }, timestamp: '2026-01-05T11:00:00Z' },
    { type: 'track', userId: 'v', event: 'Cart Updated', properties: { cart_value: 1.0 }, timestamp: '2026-01-05T10:30:00Z' },
  ].map((l) => JSON.stringify(l)).join('\n') + '\n');
  const r = run(['--journey', journey, '--events', events]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /unordered\.ndjson:3: .*before the previous event/);
});

test('an invalid journey prints its diagnostics; usage errors exit 2', (t) => {
  const dir = tmp(t);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'id: x\nentry: { event: Go }\nnodes:\n  a:\n    send: { channel: pigeon, template: t }\n');
  const events = join(dir, 'e.ndjson');
  writeFileSync(events, '');
  const r = run(['--journey', bad, '--events', events]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /bad\.yaml:\d+:\d+: node 'a': /);
  assert.equal(run(['--events', events]).status, 2);
  assert.equal(run(['--journey', journey]).status, 2);
  assert.equal(run(['--journey', journey, '--events', events, '--until', 'soon']).status, 2);
  assert.equal(run(['--nope']).status, 2);
  const h = run(['--help']);
  assert.equal(h.status, 0);
  assert.match(h.stdout, /--until/);
});

// The human task queue end to end (docs/api.md "Tasks"): a journey's task node creates a task
// in the queue, a person claims and completes it through the API, and the outcome comes back
// as a `Task Completed` event the journey waits for and branches on. Events go in through the
// real Segment SDK. Sends are skipped here (no channels configured), so the journey's progress
// is read from GET /v1/profiles/{id}/journeys.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { start, uid } from './lib/journeyd.mjs';
import { api, sdk } from './lib/clients.mjs';

const sleep = (n) => new Promise((r) => setTimeout(r, n));

const JOURNEY = `id: e2e-tasks
name: Trial follow-up (e2e)
entry:
  event: Trial Started
nodes:
  call:
    task: { queue: sales, title: "Call {{ profile.traits.name }} about the trial" }
    next: outcome
  outcome:
    wait: { event: Task Completed }
    next: route
  route:
    branch:
      - { when: "event.properties.outcome == 'won'", next: welcome }
      - { else: nurture }
  welcome:
    send: { channel: email, template: customer_welcome }
    next: won_settle
  won_settle:
    wait: 30d
  nurture:
    send: { channel: email, template: nurture }
    next: lost_settle
  lost_settle:
    wait: 30d
`;

async function setup(t, dataDir) {
  const s = await start({ t, dataDir });
  return s;
}

async function publish(s) {
  let r = await api(s, 'POST', '/v1/journeys', JOURNEY);
  assert.equal(r.status, 201, r.text);
  r = await api(s, 'POST', '/v1/journeys/e2e-tasks/publish');
  assert.equal(r.status, 200, r.text);
}

async function poll(what, fn, pred, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (pred(last)) return last;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms; last: ${last.status} ${last.text}`);
    await sleep(50);
  }
}

const queue = (s, q, extra = '') => api(s, 'GET', `/v1/tasks?queue=${q}${extra}`);
const taskOf = (s, person) => poll(`a task for ${person}`, () => queue(s, 'sales'),
  (r) => r.status === 200 && r.json.tasks.some((x) => x.person === person))
  .then((r) => r.json.tasks.find((x) => x.person === person));
const inJourney = (s, person, pred) => poll(`${person} in e2e-tasks`,
  () => api(s, 'GET', `/v1/profiles/${person}/journeys`),
  (r) => r.status === 200 && r.json.some((x) => x.journey === 'e2e-tasks' && pred(x)))
  .then((r) => r.json.find((x) => x.journey === 'e2e-tasks'));

test('a task node queues a task; claim, complete, and the journey goes on with the outcome', { timeout: 60_000 }, async (t) => {
  const s = await setup(t);
  await publish(s);
  const a = sdk(s);
  const ann = uid('task-ann'), bob = uid('task-bob');
  await a.send('identify', { userId: ann, traits: { name: 'Ann' } });
  await a.send('track', { userId: ann, event: 'Trial Started' });
  await a.send('identify', { userId: bob, traits: { name: 'Bob' } });
  await a.send('track', { userId: bob, event: 'Trial Started' });

  // the queue: both tasks, newest first, open, with the title rendered
  const ta = await taskOf(s, ann), tb = await taskOf(s, bob);
  assert.match(ta.id, /^\d+-[0-9a-f]{16}$/);
  assert.equal(ta.title, 'Call Ann about the trial');
  assert.equal(tb.title, 'Call Bob about the trial');
  assert.deepEqual({ ...ta, id: 0, created_at: 0 }, {
    id: 0, queue: 'sales', title: 'Call Ann about the trial', status: 'open', person: ann, journey: 'e2e-tasks',
    version: 1, node: 'call', created_at: 0, assignee: null, claimed_at: null, outcome: null, note: null,
    completed_at: null,
  });
  assert.ok(Math.abs(Date.parse(ta.created_at) - Date.now()) < 60_000, ta.created_at);
  let r = await queue(s, 'sales');
  const mine = r.json.tasks.filter((x) => x.person === ann || x.person === bob).map((x) => x.person);
  assert.deepEqual(mine, [bob, ann], `newest first: ${r.text}`);
  r = await queue(s, 'sales', '&limit=1');
  assert.equal(r.json.tasks.length, 1, r.text);
  r = await queue(s, 'support');
  assert.deepEqual(r.json, { queue: 'support', tasks: [] });
  const w = await inJourney(s, ann, (x) => x.state === 'waiting');
  assert.equal(w.node, 'outcome');
  assert.equal(w.waiting_for, 'event:Task Completed');

  // GET one; claim; a second claim by someone else is 409; the same assignee again is fine
  r = await api(s, 'GET', `/v1/tasks/${ta.id}`);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, ta);
  r = await api(s, 'POST', `/v1/tasks/${ta.id}/claim`, { assignee: 'carol' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, 'claimed');
  assert.equal(r.json.assignee, 'carol');
  assert.ok(r.json.claimed_at, r.text);
  r = await api(s, 'POST', `/v1/tasks/${ta.id}/claim`, { assignee: 'dave' });
  assert.equal(r.status, 409, r.text);
  assert.deepEqual(r.json, { error: `task ${ta.id} is claimed by 'carol'`, at: 'assignee' });
  r = await api(s, 'POST', `/v1/tasks/${ta.id}/claim`, { assignee: 'carol' });
  assert.equal(r.status, 200, r.text);
  r = await queue(s, 'sales', '&status=claimed');
  assert.deepEqual(r.json.tasks.map((x) => x.id), [ta.id], r.text);
  r = await queue(s, 'sales', '&status=open');
  assert.ok(r.json.tasks.some((x) => x.id === tb.id) && !r.json.tasks.some((x) => x.id === ta.id), r.text);
  // someone else may not complete a claimed task
  r = await api(s, 'POST', `/v1/tasks/${ta.id}/complete`, { outcome: 'won', assignee: 'dave' });
  assert.equal(r.status, 409, r.text);

  // complete: won -> the journey takes the won arm
  r = await api(s, 'POST', `/v1/tasks/${ta.id}/complete`, { outcome: 'won', note: 'signed the annual plan' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, 'done');
  assert.equal(r.json.outcome, 'won');
  assert.equal(r.json.note, 'signed the annual plan');
  assert.equal(r.json.assignee, 'carol');
  assert.ok(r.json.completed_at, r.text);
  r = await api(s, 'POST', `/v1/tasks/${ta.id}/complete`, { outcome: 'lost' });
  assert.equal(r.status, 409, r.text);
  assert.deepEqual(r.json, { error: `task ${ta.id} is done`, at: 'status' });
  r = await api(s, 'POST', `/v1/tasks/${ta.id}/claim`, { assignee: 'carol' });
  assert.equal(r.status, 409, r.text);
  let j = await inJourney(s, ann, (x) => x.node === 'won_settle');
  assert.equal(j.state, 'waiting', JSON.stringify(j));

  // an unclaimed task completes too: lost -> the other arm
  r = await api(s, 'POST', `/v1/tasks/${tb.id}/complete`, { outcome: 'lost', assignee: 'erin' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.assignee, 'erin');
  j = await inJourney(s, bob, (x) => x.node === 'lost_settle');
  assert.equal(j.state, 'waiting');

  // the event is on the profile's timeline, with the task's properties in the log's event
  r = await poll('the timeline', () => api(s, 'GET', `/v1/profiles/${ann}`),
    (x) => x.status === 200 && (x.json.timeline ?? []).some((e) => e.name === 'Task Completed'));
  assert.ok(r.json.timeline.find((e) => e.name === 'Task Completed').type === 'track', r.text);
  r = await queue(s, 'sales', '&status=done');
  assert.deepEqual(r.json.tasks.filter((x) => x.id === ta.id || x.id === tb.id).map((x) => [x.id, x.outcome]),
    [[tb.id, 'lost'], [ta.id, 'won']]);
  await a.close();
  await s.stop();
});

test('bad requests are 400 naming the field; unknown ids are 404; the admin token is required', async (t) => {
  const s = await setup(t);
  await publish(s);
  const a = sdk(s);
  const cy = uid('task-cy');
  await a.send('track', { userId: cy, event: 'Trial Started' });
  await a.close();
  const tk = await taskOf(s, cy);
  assert.equal(tk.title, 'Call  about the trial');   // a missing trait renders empty (Liquid)

  const cases = [
    ['GET', '/v1/tasks', undefined, 400, { error: 'queue is required (GET /v1/tasks?queue=sales)', at: 'queue' }],
    ['GET', '/v1/tasks?queue=a%20b', undefined, 400, { error: "queue must be 1 to 64 letters, digits, '_' or '-'", at: 'queue' }],
    ['GET', '/v1/tasks?queue=sales&status=lost', undefined, 400, { error: 'status must be open, claimed or done', at: 'status' }],
    ['GET', '/v1/tasks?queue=sales&limit=0', undefined, 400, { error: 'limit must be a whole number from 1 to 1000', at: 'limit' }],
    ['POST', `/v1/tasks/${tk.id}/claim`, {}, 400, { error: 'assignee is required', at: 'assignee' }],
    ['POST', `/v1/tasks/${tk.id}/claim`, { assignee: 7 }, 400, { error: 'assignee must be a string of 1 to 256 bytes', at: 'assignee' }],
    ['POST', `/v1/tasks/${tk.id}/complete`, { note: 'x' }, 400, { error: 'outcome is required', at: 'outcome' }],
    ['POST', `/v1/tasks/${tk.id}/complete`, { outcome: 'won', note: 'n'.repeat(4097) }, 400,
      { error: 'note must be a string of 1 to 4096 bytes', at: 'note' }],
    ['POST', `/v1/tasks/${tk.id}/complete`, '[1]', 400, { error: 'expected a JSON object {"outcome": "..."}' }],
    ['GET', '/v1/tasks/0-0000000000000000', undefined, 404, { error: "no task '0-0000000000000000'", at: 'id' }],
    ['GET', '/v1/tasks/nope', undefined, 404, { error: "no task 'nope'", at: 'id' }],
    ['GET', '/v1/tasks/99999-0000000000000000', undefined, 404, { error: "no task '99999-0000000000000000'", at: 'id' }],
    ['POST', '/v1/tasks/0-0000000000000000/claim', { assignee: 'x' }, 404, { error: "no task '0-0000000000000000'", at: 'id' }],
    ['POST', `/v1/tasks/${tk.id}/reopen`, {}, 404, { error: `no route for POST /v1/tasks/${tk.id}/reopen` }],
  ];
  for (const [method, path, body, status, json] of cases) {
    const r = await api(s, method, path, body, typeof body === 'string' ? 'application/json' : undefined);
    assert.equal(r.status, status, `${method} ${path}: ${r.text}`);
    assert.deepEqual(r.json, json, `${method} ${path}`);
  }
  const { request } = await import('./lib/journeyd.mjs');
  const r = await request(s.url, '/v1/tasks?queue=sales', { method: 'GET' });
  assert.equal(r.status, 401, r.text);
  // the task is untouched
  const g = await api(s, 'GET', `/v1/tasks/${tk.id}`);
  assert.equal(g.json.status, 'open', g.text);
  await s.stop();
});

test('tasks survive a restart (snapshot, then log replay) and complete afterwards', { timeout: 90_000 }, async (t) => {
  const s1 = await setup(t);
  await publish(s1);
  let a = sdk(s1);
  const dee = uid('task-dee'), eve = uid('task-eve');
  await a.send('identify', { userId: dee, traits: { name: 'Dee' } });
  await a.send('track', { userId: dee, event: 'Trial Started' });
  await a.close();
  const td = await taskOf(s1, dee);
  let r = await api(s1, 'POST', `/v1/tasks/${td.id}/claim`, { assignee: 'fay' });
  assert.equal(r.status, 200, r.text);
  const claimed = r.json;
  await s1.stop();   // SIGTERM: a snapshot holds the claimed task

  const s2 = await setup(t, s1.dataDir);
  r = await api(s2, 'GET', `/v1/tasks/${td.id}`);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, claimed);
  // a task made after the snapshot comes back by replaying the log (kill -9: no new snapshot)
  a = sdk(s2);
  await a.send('track', { userId: eve, event: 'Trial Started' });
  await a.close();
  const te = await taskOf(s2, eve);
  await s2.kill9();

  const s3 = await setup(t, s1.dataDir);
  r = await api(s3, 'GET', `/v1/tasks/${te.id}`);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, te);
  r = await api(s3, 'GET', `/v1/tasks/${td.id}`);
  assert.deepEqual(r.json, claimed);
  r = await api(s3, 'POST', `/v1/tasks/${td.id}/claim`, { assignee: 'gus' });
  assert.equal(r.status, 409, r.text);
  r = await api(s3, 'POST', `/v1/tasks/${td.id}/complete`, { outcome: 'won' });
  assert.equal(r.status, 200, r.text);
  await inJourney(s3, dee, (x) => x.node === 'won_settle');
  await s3.stop();

  // and the completion itself survives
  const s4 = await setup(t, s1.dataDir);
  r = await api(s4, 'GET', `/v1/tasks/${td.id}`);
  assert.equal(r.json.status, 'done', r.text);
  assert.equal(r.json.outcome, 'won');
  const j = await inJourney(s4, dee, (x) => x.node === 'won_settle');
  assert.equal(j.state, 'waiting');
  await s4.stop();
});

test('tasks.max_open bounds open tasks per partition: the next is dropped and named in the log', async (t) => {
  const s = await start({ t, args: ['--set', 'engine.partitions=1', '--set', 'tasks.max_open=1'] });
  await publish(s);
  const a = sdk(s);
  const gil = uid('task-gil'), hal = uid('task-hal'), ivy = uid('task-ivy');
  await a.send('track', { userId: gil, event: 'Trial Started' });
  await a.send('track', { userId: hal, event: 'Trial Started' });
  const tg = await taskOf(s, gil);
  await inJourney(s, hal, (x) => x.node === 'outcome');   // hal's turn ran: no task for them
  let r = await queue(s, 'sales');
  assert.deepEqual(r.json.tasks.map((x) => x.person), [gil], r.text);
  assert.match(s.stderrText(), /tasks: partition 0 has 1 open tasks \(tasks\.max_open\); task 0-[0-9a-f]{16} of task-hal\S* \(e2e-tasks\/call\) dropped, 1 so far/);
  // a completed task frees its place
  r = await api(s, 'POST', `/v1/tasks/${tg.id}/complete`, { outcome: 'won' });
  assert.equal(r.status, 200, r.text);
  await a.send('track', { userId: ivy, event: 'Trial Started' });
  await a.close();
  await taskOf(s, ivy);
  await s.stop();
});

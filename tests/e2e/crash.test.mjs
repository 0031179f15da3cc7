// kill -9 under load: every acknowledged event survives exactly once, every unacknowledged
// batch is all-or-nothing, and dedupe of messageIds survives the crash.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { start, request, post, getProfile, barrier, pool } from './lib/journeyd.mjs';

const SENDERS = 16;
const PER_BATCH = 10;
const KILL_AFTER_MS = 1500;
const KILL_AFTER_ACKS = 2000; // batches; whichever comes first (after at least one ack)

test('kill -9 under 16 concurrent senders loses no acknowledged event and tears no batch', { timeout: 180_000 }, async (t) => {
  const s1 = await start({ t });
  const agents = [];
  const batches = []; // { id, body, status: 'pending'|'acked'|'refused'|'error', code }
  let next = 0;
  let acked = 0;
  let killed = false;

  function makeBatch() {
    const b = next++;
    const batch = [];
    for (let i = 0; i < PER_BATCH; i++) {
      batch.push({
        type: 'track',
        userId: `crash-${b * PER_BATCH + i}`,
        event: 'Crash Test',
        messageId: randomUUID(),
        properties: { batch: b, i, pad: 'c'.repeat(120) },
      });
    }
    const rec = { id: b, body: { batch }, status: 'pending', code: 0 };
    batches.push(rec);
    return rec;
  }

  async function sender(k) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    while (!killed) {
      const rec = makeBatch();
      try {
        const r = await request(s1.url, '/v1/batch', { method: 'POST', auth: 'basic', body: rec.body, agent, timeout: 30_000 });
        rec.code = r.status;
        if (r.status === 200) {
          assert.deepEqual(r.json, { success: true });
          rec.status = 'acked';
          acked++;
        } else {
          rec.status = 'refused';
          rec.text = r.text;
        }
      } catch (err) {
        rec.status = 'error';
        rec.error = err.code || String(err);
      }
    }
  }

  const t0 = Date.now();
  const senders = Array.from({ length: SENDERS }, (_, k) => sender(k));
  while (!((Date.now() - t0 >= KILL_AFTER_MS && acked > 0) || acked >= KILL_AFTER_ACKS)) {
    if (Date.now() - t0 > 30_000) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  const inFlightAtKill = batches.filter((b) => b.status === 'pending').length;
  killed = true;
  await s1.kill9();
  await Promise.all(senders);
  for (const a of agents) a.destroy();
  s1.assertNoSanitizerReport();

  const ackedBatches = batches.filter((b) => b.status === 'acked');
  const refused = batches.filter((b) => b.status === 'refused');
  const other = batches.filter((b) => b.status !== 'acked');
  t.diagnostic(`${batches.length} batches sent in ${Date.now() - t0} ms: ${ackedBatches.length} acknowledged, ` +
    `${refused.length} refused, ${inFlightAtKill} in flight at kill -9`);
  assert.ok(ackedBatches.length > 0, 'some batches were acknowledged before the kill');
  assert.deepEqual(refused.map((b) => `${b.code} ${b.text}`), [], 'no batch was refused while the server was healthy');

  // restart on the same data directory
  const s2 = await start({ t, dataDir: s1.dataDir });
  assert.match(s2.stderrText(), /recover/i, `the restart reports recovery in its log:\n${s2.stderrText()}`);
  await barrier(s2);

  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  t.after(() => agent.destroy());
  const trackCount = async (userId) => {
    const r = await getProfile(s2, userId, { agent });
    if (r.status === 404) return 0;
    assert.equal(r.status, 200, `GET profile ${userId}: ${r.status} ${r.text}`);
    assert.equal(r.json.counts.total, r.json.counts.track, `${userId} has only track events`);
    return r.json.counts.track;
  };
  const batchCounts = (rec) => Promise.all(rec.body.batch.map((m) => trackCount(m.userId)));

  // 1. every acknowledged event is there exactly once
  const lost = [];
  const doubled = [];
  await pool(ackedBatches, 16, async (rec) => {
    const counts = await batchCounts(rec);
    counts.forEach((c, i) => {
      if (c === 0) lost.push(rec.body.batch[i].userId);
      if (c > 1) doubled.push(`${rec.body.batch[i].userId}=${c}`);
    });
  });
  assert.deepEqual(lost, [], `acknowledged events lost after kill -9 (${lost.length})`);
  assert.deepEqual(doubled, [], 'acknowledged events counted more than once after recovery');

  // 2. every unacknowledged batch is all or nothing
  const torn = [];
  let storedUnacked = 0;
  await pool(other, 16, async (rec) => {
    const counts = await batchCounts(rec);
    const present = counts.filter((c) => c > 0).length;
    if (present !== 0 && present !== PER_BATCH) torn.push(`batch ${rec.id} (${rec.status}): ${present}/${PER_BATCH} stored`);
    if (counts.some((c) => c > 1)) torn.push(`batch ${rec.id}: counts ${counts}`);
    if (present === PER_BATCH) storedUnacked++;
  });
  assert.deepEqual(torn, [], 'an unacknowledged batch was partly stored');
  t.diagnostic(`${storedUnacked} of ${other.length} unacknowledged batches were stored whole, the rest not at all`);

  // 3. re-send everything: 200 each time, and dedupe keeps every count at exactly 1
  const resendCodes = await pool(batches, 16, async (rec) => {
    const r = await post(s2, '/v1/batch', rec.body, { agent });
    return r.status === 200 ? 200 : `${r.status} ${r.text}`;
  });
  assert.deepEqual(resendCodes.filter((c) => c !== 200), [], 're-sent batches are acknowledged');
  await barrier(s2);
  const wrong = [];
  await pool(batches, 16, async (rec) => {
    const counts = await batchCounts(rec);
    counts.forEach((c, i) => {
      const ackedBefore = rec.status === 'acked';
      if (c !== 1) wrong.push(`${rec.body.batch[i].userId}=${c}${ackedBefore ? ' (acknowledged before the crash)' : ''}`);
    });
  });
  assert.deepEqual(wrong.slice(0, 50), [], `after re-sending, every event counts exactly once (${wrong.length} wrong)`);

  await s2.stop();
});

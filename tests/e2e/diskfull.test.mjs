// Disk full, simulated with a file-size rlimit (journeyd ignores SIGXFSZ, so writes past the
// limit fail with EFBIG): ingest answers 503 and acknowledges nothing it has not stored, reads
// keep working, and a restart without the limit holds exactly the acknowledged events.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { start, request, post, getProfile, waitForProfile, barrier, listFiles, pool } from './lib/journeyd.mjs';

const PER_BATCH = 20;

const havePrlimit = spawnSync('prlimit', ['--version']).status === 0;

test('disk full: 503, reads keep serving, restart holds exactly the acknowledged events', { skip: !havePrlimit && 'prlimit (util-linux) not installed', timeout: 180_000 }, async (t) => {
  // How big are a fresh data directory's files? The limit goes a bit above the largest.
  const probe = await start({ t });
  await barrier(probe, { n: 8 });
  const freshMax = Math.max(0, ...listFiles(probe.dataDir).map((f) => f.size));
  await probe.stop();
  const limit = Math.max(300 * 1024, freshMax + 200 * 1024);
  t.diagnostic(`largest file of a fresh data dir: ${freshMax} bytes; RLIMIT_FSIZE ${limit} bytes`);

  const s1 = await start({ t, fsizeLimit: limit });
  const results = []; // { batch, status, text }
  let b = 0;
  const mkBatch = () => {
    const n = b++;
    return Array.from({ length: PER_BATCH }, (_, i) => ({
      type: 'track', userId: `df-${n}-${i}`, event: 'Disk Fill', messageId: randomUUID(),
      properties: { pad: 'd'.repeat(400), n, i },
    }));
  };
  let first503 = null;
  const maxBatches = Math.ceil((limit * 40) / (PER_BATCH * 500)); // far more than the limit can hold
  while (b < maxBatches) {
    const batch = mkBatch();
    const r = await post(s1, '/v1/batch', { batch }, { timeout: 30_000 });
    results.push({ batch, status: r.status, text: r.text, json: r.json });
    assert.ok(r.status === 200 || r.status === 503, `only 200 or 503 while filling the disk, got ${r.status} ${r.text}`);
    if (r.status === 503) { first503 = r; break; }
  }
  assert.ok(first503, `no 503 after ${b} batches (${b * PER_BATCH} events) with RLIMIT_FSIZE ${limit}`);
  t.diagnostic(`first 503 after ${results.length - 1} acknowledged batches: ${first503.text}`);
  assert.equal(typeof first503.json?.error, 'string', `503 body is {"error":...}: ${first503.text}`);
  assert.match(first503.json.error, /disk|space|storage|write|full|EFBIG|too large|I\/O|durab/i, 'the 503 names the problem');

  // a few more attempts, concurrently: each is either stored (200) or refused (503), nothing else
  const extra = await pool(Array.from({ length: 6 }, mkBatch), 3, async (batch) => {
    const r = await post(s1, '/v1/batch', { batch }, { timeout: 30_000 });
    return { batch, status: r.status, text: r.text, json: r.json };
  });
  for (const r of extra) assert.ok(r.status === 200 || r.status === 503, `${r.status} ${r.text}`);
  results.push(...extra);

  // reads keep serving
  const acked = results.filter((r) => r.status === 200);
  const refused = results.filter((r) => r.status === 503);
  assert.ok(acked.length > 0, 'some batches were acknowledged before the disk filled');
  const someAcked = acked[acked.length - 1].batch[PER_BATCH - 1].userId;
  const pr = await waitForProfile(s1, someAcked);
  assert.equal(pr.json.counts.track, 1);
  const h = await request(s1.url, '/healthz');
  assert.ok(h.status === 200 || h.status === 503, `/healthz answers: ${h.status} ${h.text}`);
  assert.ok(h.json?.status !== 'ok' || /disk|storage|write|full|degraded|read.?only/i.test(h.text),
    `/healthz reports the storage problem: ${h.status} ${h.text}`);
  const m = await request(s1.url, '/metrics');
  assert.equal(m.status, 200, 'metrics keep serving');
  s1.assertNoSanitizerReport();
  await s1.kill9();

  // restart without the limit
  const s2 = await start({ t, dataDir: s1.dataDir });
  await barrier(s2);
  const problems = [];
  await pool(results, 8, async (r) => {
    for (const msg of r.batch) {
      const p = await getProfile(s2, msg.userId);
      if (r.status === 200) {
        if (p.status !== 200) problems.push(`acknowledged ${msg.userId} missing (${p.status})`);
        else if (p.json.counts.track !== 1) problems.push(`acknowledged ${msg.userId} counted ${p.json.counts.track} times`);
      } else if (p.status !== 404) {
        problems.push(`${msg.userId} from a refused (503) request is stored (${p.status} ${p.text.slice(0, 120)})`);
      }
    }
  });
  assert.deepEqual(problems.slice(0, 20), [], `${problems.length} problems after restart (${acked.length} acknowledged, ${refused.length} refused batches)`);

  // and it ingests again
  const u = `df-after-${randomUUID()}`;
  const r = await post(s2, '/v1/track', { userId: u, event: 'After Disk Full' });
  assert.equal(r.status, 200, r.text);
  await waitForProfile(s2, u);
  const h2 = await request(s2.url, '/healthz');
  assert.equal(h2.status, 200);
  assert.equal(h2.json?.status, 'ok', h2.text);
  await s2.stop();
});

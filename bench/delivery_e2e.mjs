// bench/delivery_e2e.mjs -- from an acknowledged event to the webhook it causes, end to end.
//
// A release journeyd (JOURNEYD_BIN, default build/journeyd) with one journey (entry 'Signed Up',
// then a send on a signed webhook channel) and a receiver in this process. K single POST
// /v1/track requests at a steady rate; for each event: t_send, t_ack (the 200 arrived: the event
// is durable) and t_recv (the receiver got the webhook it caused, matched by the seq the template
// renders into the body). Printed: p50/p99 of ack -> webhook (a webhook that arrives before the
// ack counts 0), and, as the reference measured in the same run, p50/p99 of send -> ack (the
// ingest round trip alone). Medians over BENCH_RUNS runs (3).
// Target (issue 'Delivery'): p99 ack -> webhook under 10 ms when no wait is involved.
// Knobs: DBENCH_EVENTS (2000), DBENCH_RATE (500 a second), BENCH_RUNS (3), TMPDIR.
//
// Run from the repository root: node bench/delivery_e2e.mjs (bench/run does, after make all).

import http from 'node:http';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = process.env.JOURNEYD_BIN || join(ROOT, 'build/journeyd');
const K = Number(process.env.DBENCH_EVENTS || 2000);
const RATE = Number(process.env.DBENCH_RATE || 500);
const RUNS = Number(process.env.BENCH_RUNS || 3);
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

const pct = (v, p) => { const s = [...v].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
const median = (v) => pct(v, 0.5);

function req(port, method, path, body, headers = {}) {
  return new Promise((res, rej) => {
    const data = typeof body === 'string' ? body : body ? JSON.stringify(body) : undefined;
    const r = http.request({ host: '127.0.0.1', port, method, path, agent, headers: { ...headers, ...(data ? { 'Content-Length': Buffer.byteLength(data) } : {}) } }, (rs) => {
      let t = '';
      rs.on('data', (c) => { t += c; });
      rs.on('end', () => res({ status: rs.statusCode, text: t }));
    });
    r.on('error', rej);
    if (data) r.write(data);
    r.end();
  });
}

async function run() {
  const recv = new Map();
  const rx = http.createServer((q, s) => {
    let b = '';
    q.on('data', (c) => { b += c; });
    q.on('end', () => { const t = performance.now(); recv.set(JSON.parse(b).seq, t); s.writeHead(200); s.end('{}'); });
  });
  await new Promise((r) => rx.listen(0, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'journeyd-dbench-'));
  for (const d of ['j', 's', 'templates', 'data']) mkdirSync(join(dir, d));
  writeFileSync(join(dir, 'templates', 'hook.yaml'), 'id: hook\nkind: webhook\nbody: \'{"seq":{{ event.properties.seq }}}\'\n');
  writeFileSync(join(dir, 'j', 'welcome.yaml'), 'id: welcome\nentry: { event: Signed Up }\nreentry: always\nnodes:\n  hi: { send: { channel: hook, template: hook, category: transactional } }\n');
  writeFileSync(join(dir, 'c.yaml'), `journeys: { dir: ${join(dir, 'j')} }\nsegments: { dir: ${join(dir, 's')} }\ntemplates: { dir: ${join(dir, 'templates')} }\nconsent: { exempt: [transactional] }\nchannels:\n  hook: { kind: webhook, url: "http://127.0.0.1:${rx.address().port}/", secret: bench }\n`);
  const child = spawn(BIN, ['serve', '--config', join(dir, 'c.yaml'), '--data', join(dir, 'data'), '--listen', '127.0.0.1:0',
    '--write-key', 'bk', '--admin-token', 'bt'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const port = await new Promise((res, rej) => {
    let err = '';
    child.stderr.on('data', (c) => { err += c; const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(err); if (m) res(Number(m[1])); });
    child.on('exit', () => rej(new Error(`journeyd exited: ${err}`)));
    setTimeout(() => rej(new Error('journeyd did not start')), 15000);
  });
  const auth = { Authorization: 'Basic ' + Buffer.from('bk:').toString('base64'), 'Content-Type': 'application/json' };
  const sent = new Array(K), acked = new Array(K);
  const t0 = performance.now();
  const inflight = [];
  for (let i = 0; i < K; i++) {
    const due = t0 + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    sent[i] = performance.now();
    inflight.push(req(port, 'POST', '/v1/track', { userId: `u${i}`, event: 'Signed Up', properties: { seq: i } }, auth)
      .then((r) => { if (r.status !== 200) throw new Error(r.text); acked[i] = performance.now(); }));
  }
  await Promise.all(inflight);
  const deadline = performance.now() + 30000;
  while (recv.size < K && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  rx.close();
  rmSync(dir, { recursive: true, force: true });
  if (recv.size < K) throw new Error(`only ${recv.size} of ${K} webhooks arrived`);
  const e2e = [], ack = [];
  for (let i = 0; i < K; i++) { e2e.push(Math.max(0, recv.get(i) - acked[i])); ack.push(acked[i] - sent[i]); }
  return { p50: pct(e2e, 0.5), p99: pct(e2e, 0.99), ack50: pct(ack, 0.5), ack99: pct(ack, 0.99) };
}

const rs = [];
for (let r = 0; r < RUNS; r++) {
  const x = await run();
  rs.push(x);
  console.log(`  run ${r + 1}: ack -> webhook p50 ${x.p50.toFixed(2)} ms, p99 ${x.p99.toFixed(2)} ms; reference send -> ack p50 ${x.ack50.toFixed(2)} ms, p99 ${x.ack99.toFixed(2)} ms`);
}
const p99 = median(rs.map((x) => x.p99)), p50 = median(rs.map((x) => x.p50));
const a99 = median(rs.map((x) => x.ack99));
console.log(`delivery end to end: ${K} events at ${RATE}/s, medians of ${RUNS} runs`);
console.log(`  ack -> webhook received   p50 ${p50.toFixed(2)} ms   p99 ${p99.toFixed(2)} ms   target p99 < 10 ms: ${p99 < 10 ? 'met' : 'not met'}`);
console.log(`  reference: send -> ack     p99 ${a99.toFixed(2)} ms   ratio ${(p99 / a99).toFixed(2)}x`);
agent.destroy();

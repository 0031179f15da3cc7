// Ingest N distinct userIds into journeyd as /v1/batch requests of `per` track events, over
// `conc` keep-alive connections, and report the rate. Used by bench/ingest.sh for the memory
// figure (RSS after 1,000,000 distinct users).
// Usage: node bench/fill.mjs <url> <write-key> [users=1000000] [per=100] [conc=16]
import http from 'node:http';

const [url, key, usersArg, perArg, concArg] = process.argv.slice(2);
const users = Number(usersArg ?? 1_000_000);
const per = Number(perArg ?? 100);
const conc = Number(concArg ?? 16);
const agent = new http.Agent({ keepAlive: true, maxSockets: conc });
const auth = 'Basic ' + Buffer.from(`${key}:`).toString('base64');
const target = new URL('/v1/batch', url);
const run = Date.now().toString(36);

function body(start) {
  const parts = [];
  for (let u = start; u < Math.min(start + per, users); u++) {
    parts.push(`{"type":"track","userId":"fill-${u}","event":"Signed Up","messageId":"${run}-${u}",` +
      `"properties":{"plan":"free","n":${u}},"timestamp":"2026-01-01T00:00:00.000Z"}`);
  }
  return Buffer.from(`{"batch":[${parts.join(',')}]}`);
}

function post(buf) {
  return new Promise((resolve, reject) => {
    const req = http.request(target, {
      method: 'POST', agent,
      headers: { Authorization: auth, 'Content-Type': 'application/json', 'Content-Length': buf.length },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(buf);
  });
}

let next = 0;
let failed = 0;
const t0 = process.hrtime.bigint();
await Promise.all(Array.from({ length: conc }, async () => {
  while (next < users) {
    const start = next;
    next += per;
    for (let attempt = 0; ; attempt++) {
      const r = await post(body(start));
      if (r.status === 200) break;
      if (attempt >= 3) { failed++; console.error(`batch at ${start}: ${r.status} ${r.text}`); break; }
    }
  }
}));
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
agent.destroy();
console.log(`FILL users=${users} seconds=${secs.toFixed(2)} events_per_s=${Math.round(users / secs)} failed_batches=${failed}`);
process.exit(failed ? 1 : 0);

// Helpers for the journeyd end-to-end tests: start/stop a real journeyd process,
// talk HTTP to it, poll the profile API with a deadline.
//
// The binary is $JOURNEYD_BIN, default build/asan/journeyd (relative to the repo root).
// Every server is spawned directly (no shell in between) so `pid` is journeyd's own PID,
// and it is stopped by that PID only.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import { gzipSync } from 'node:zlib';
import { randomUUID } from 'node:crypto';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const BIN = resolve(REPO_ROOT, process.env.JOURNEYD_BIN || 'build/asan/journeyd');
export const WRITE_KEY = 'e2e-write-key';
export const ADMIN_TOKEN = 'e2e-admin-token';

const STARTUP_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 20_000;

// Sanitizer reports that must never appear in a server's stderr.
const SANITIZER_RE = /(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer)/;

/** A fresh temporary directory; removed by t.after when a test context is given. */
export function freshDir(t, prefix = 'journeyd-e2e-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (t && !process.env.JOURNEYD_KEEP_DATA) t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Start journeyd.
 * opts: {
 *   t            test context (node:test) whose after-hook kills the server if still running
 *                and removes the data directory if start() created it
 *   dataDir      reuse this data directory (restart); default: a fresh mkdtemp dir
 *   writeKeys    array (default [WRITE_KEY]);  adminTokens: array (default [ADMIN_TOKEN])
 *   shards       --shards N
 *   args         extra arguments after `serve ...`
 *   fsizeLimit   run under `prlimit --fsize=<bytes> --` (prlimit execs, so the PID is journeyd's)
 *   env          extra environment
 *   bin          override the binary
 * }
 * Returns { port, url, pid, dataDir, stop(signal), kill9(), stderrText(), exited, child }.
 */
export async function start(opts = {}) {
  const bin = opts.bin ? resolve(REPO_ROOT, opts.bin) : BIN;
  if (!existsSync(bin)) throw new Error(`journeyd binary not found: ${bin} (set JOURNEYD_BIN or build it)`);
  let ownDir = false;
  let dataDir = opts.dataDir;
  if (!dataDir) {
    dataDir = mkdtempSync(join(tmpdir(), 'journeyd-e2e-data-'));
    ownDir = true;
  }
  const args = ['serve', '--data', dataDir, '--listen', '127.0.0.1:0'];
  for (const k of opts.writeKeys ?? [WRITE_KEY]) args.push('--write-key', k);
  for (const k of opts.adminTokens ?? [ADMIN_TOKEN]) args.push('--admin-token', k);
  if (opts.shards) args.push('--shards', String(opts.shards));
  if (opts.args) args.push(...opts.args);

  let cmd = bin;
  let argv = args;
  if (opts.fsizeLimit) {
    cmd = 'prlimit';
    argv = [`--fsize=${opts.fsizeLimit}`, '--', bin, ...args];
  }
  const env = { ...process.env, ...(opts.env || {}) };
  // LeakSanitizer needs ptrace-like access that containers may deny; keep leak checks on
  // unless the caller set ASAN_OPTIONS themselves.
  if (!env.ASAN_OPTIONS) env.ASAN_OPTIONS = 'abort_on_error=0:halt_on_error=1';
  if (!env.UBSAN_OPTIONS) env.UBSAN_OPTIONS = 'print_stacktrace=1:halt_on_error=1';

  const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'], env });
  const pid = child.pid;
  let stderr = '';
  let exitInfo = null;
  const exited = new Promise((res) => {
    child.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      res(exitInfo);
    });
  });
  child.stderr.setEncoding('utf8');

  const port = await new Promise((res, rej) => {
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      try { process.kill(pid, 'SIGKILL'); } catch {}
      rej(new Error(`journeyd did not report "listening on" within ${STARTUP_TIMEOUT_MS} ms.\n` +
        `command: ${cmd} ${argv.join(' ')}\n--- stderr ---\n${stderr}`));
    }, STARTUP_TIMEOUT_MS);
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      if (done) return;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(stderr);
      if (m) {
        done = true;
        clearTimeout(timer);
        res(Number(m[1]));
      }
    });
    exited.then(({ code, signal }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      // let the last stderr bytes arrive
      setImmediate(() => rej(new Error(`journeyd exited before listening (code ${code}, signal ${signal}).\n` +
        `command: ${cmd} ${argv.join(' ')}\n--- stderr ---\n${stderr}`)));
    });
    child.on('error', (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      rej(err);
    });
  });

  const alive = () => exitInfo === null;
  const server = {
    port,
    url: `http://127.0.0.1:${port}`,
    pid,
    dataDir,
    child,
    exited,
    stderrText: () => stderr,
    alive,
    /** Send `signal` (default SIGTERM) and require a clean exit 0 with no sanitizer report. */
    async stop(signal = 'SIGTERM') {
      if (alive()) process.kill(pid, signal);
      const info = await withTimeout(exited, STOP_TIMEOUT_MS, () => {
        try { process.kill(pid, 'SIGKILL'); } catch {}
        return new Error(`journeyd (pid ${pid}) did not exit within ${STOP_TIMEOUT_MS} ms of ${signal}\n--- stderr ---\n${tail(stderr)}`);
      });
      await new Promise((r) => setImmediate(r));
      if (info.code !== 0 || SANITIZER_RE.test(stderr)) {
        throw new Error(`journeyd exited with code ${info.code} signal ${info.signal} after ${signal}` +
          `\n--- stderr ---\n${tail(stderr)}`);
      }
      return info;
    },
    /** SIGKILL and wait for the process to be gone. */
    async kill9() {
      if (alive()) process.kill(pid, 'SIGKILL');
      return exited;
    },
    /** Throws if a sanitizer report is in stderr (call at any time). */
    assertNoSanitizerReport() {
      if (SANITIZER_RE.test(stderr)) throw new Error(`sanitizer report in journeyd stderr:\n${tail(stderr)}`);
    },
  };

  /** Kill if still running; remove the data directory if start() created it. */
  server.cleanup = async () => {
    if (alive()) {
      try { process.kill(pid, 'SIGKILL'); } catch {}
      await exited;
    }
    if (ownDir && !process.env.JOURNEYD_KEEP_DATA) rmSync(dataDir, { recursive: true, force: true });
  };
  if (opts.t) opts.t.after(server.cleanup);
  return server;
}

function tail(s, n = 8000) {
  return s.length > n ? '...\n' + s.slice(-n) : s;
}

function withTimeout(promise, ms, onTimeout) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, rej) => { timer = setTimeout(() => rej(onTimeout()), ms); }),
  ]);
}

// ---------------------------------------------------------------------------------------------
// HTTP

/**
 * One HTTP request. Returns { status, headers, text, json } (json undefined if not JSON).
 * opts: { method, headers, body (string|Buffer|object -> JSON), gzip, auth: 'basic'|'none'|string key,
 *         bearer, agent, timeout }
 */
export function request(url, path, opts = {}) {
  const method = opts.method || (opts.body !== undefined ? 'POST' : 'GET');
  const headers = { ...(opts.headers || {}) };
  let body = opts.body;
  if (body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) {
    body = JSON.stringify(body);
    if (!('content-type' in lower(headers))) headers['Content-Type'] = 'application/json';
  }
  if (typeof body === 'string') body = Buffer.from(body);
  if (body !== undefined && opts.gzip) {
    body = gzipSync(body);
    headers['Content-Encoding'] = 'gzip';
  }
  if (opts.auth !== undefined && opts.auth !== 'none') {
    const key = opts.auth === 'basic' ? WRITE_KEY : opts.auth;
    headers.Authorization = 'Basic ' + Buffer.from(`${key}:`).toString('base64');
  }
  if (opts.bearer) headers.Authorization = `Bearer ${opts.bearer}`;
  if (body !== undefined) headers['Content-Length'] = String(body.length);
  const u = new URL(path, url);
  return new Promise((res, rej) => {
    let gotResponse = false;
    const req = http.request(u, { method, headers, agent: opts.agent ?? false }, (resp) => {
      gotResponse = true;
      const chunks = [];
      resp.on('data', (c) => chunks.push(c));
      resp.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch {}
        res({ status: resp.statusCode, headers: resp.headers, text, json, socket: req.socket });
      });
      resp.on('error', rej);
    });
    // a server may answer (e.g. 413) and close before it has read the whole body: once the
    // response has arrived, a write error on the request side is not the test's concern
    req.on('error', (err) => { if (!gotResponse) rej(err); });
    if (opts.timeout) req.setTimeout(opts.timeout, () => req.destroy(new Error(`request timeout after ${opts.timeout} ms`)));
    if (opts.onSocket) req.on('socket', opts.onSocket);
    if (body !== undefined) req.end(body); else req.end();
  });
}

function lower(h) {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
}

/** POST a Tracking API call with the write key as Basic auth. */
export function post(server, path, body, opts = {}) {
  return request(server.url, path, { auth: 'basic', ...opts, method: 'POST', body });
}

/** GET /v1/profiles/{id} with the admin token. */
export function getProfile(server, id, opts = {}) {
  return request(server.url, `/v1/profiles/${encodeURIComponent(id)}`, { bearer: ADMIN_TOKEN, ...opts });
}

/**
 * Poll GET /v1/profiles/{id} until `pred(json)` holds (default: 200). Returns the last response.
 * Throws with the last response on the deadline.
 */
export async function waitForProfile(server, id, pred = () => true, { timeoutMs = 10_000, agent } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (let i = 0; ; i++) {
    last = await getProfile(server, id, { agent });
    if (last.status === 200 && last.json && pred(last.json)) return last;
    if (Date.now() > deadline) {
      throw new Error(`profile ${JSON.stringify(id)} did not reach the expected state within ${timeoutMs} ms; ` +
        `last: ${last.status} ${last.text}`);
    }
    await new Promise((r) => setTimeout(r, Math.min(5 * (i + 1), 50)));
  }
}

/** Run `fn` over `items` with at most `n` in flight; returns results in order. */
export async function pool(items, n, fn) {
  const out = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  });
  await Promise.all(workers);
  return out;
}

/**
 * Barrier: POST one batch of `n` track events for fresh users (enough to hit every shard with
 * overwhelming probability) and wait until every one of them is visible. After it returns,
 * anything posted before it has been processed by every shard (shards process in order).
 */
export async function barrier(server, { n = 64, timeoutMs = 15_000, agent } = {}) {
  const tag = randomUUID().slice(0, 8);
  const batch = [];
  for (let i = 0; i < n; i++) batch.push({ type: 'track', userId: `barrier-${tag}-${i}`, event: 'Barrier', messageId: `barrier-${tag}-${i}` });
  const r = await post(server, '/v1/batch', { batch });
  if (r.status !== 200) throw new Error(`barrier batch refused: ${r.status} ${r.text}`);
  await pool(batch, 16, (m) => waitForProfile(server, m.userId, () => true, { timeoutMs, agent }));
}

/** Parse Prometheus text into a Map of "name{labels}" -> number. */
export function parseMetrics(text) {
  const m = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const mm = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)/.exec(line);
    if (mm) m.set(mm[1], Number(mm[2]));
  }
  return m;
}

/** Sum of all samples of metric `name` whose label set contains every `labels` pair. */
export function metricSum(map, name, labels = {}) {
  let sum = 0;
  let found = false;
  for (const [k, v] of map) {
    const mm = /^([^{]+)(?:\{(.*)\})?$/.exec(k);
    if (!mm || mm[1] !== name) continue;
    const ls = mm[2] || '';
    if (Object.entries(labels).every(([lk, lv]) => ls.includes(`${lk}="${lv}"`))) {
      sum += v;
      found = true;
    }
  }
  return found ? sum : undefined;
}

/** Sizes of all files under dir (recursive): [{path, size}]. */
export function listFiles(dir) {
  const out = [];
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p));
    else if (e.isFile()) out.push({ path: p, size: statSync(p).size });
  }
  return out;
}

export function uid(prefix = 'u') {
  return `${prefix}-${randomUUID().slice(0, 12)}`;
}

// tests/e2e/cli.test.mjs -- the command line: help, one-line start-up errors,
// generated credentials, and a clean stop on SIGINT.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = process.env.JOURNEYD_BIN || join(root, 'build', 'asan', 'journeyd');

function run(args) {
  return spawnSync(bin, args, { encoding: 'utf8', timeout: 20000 });
}

function tmp(t) {
  const d = mkdtempSync(join(tmpdir(), 'jd-cli-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('--help lists the commands and serve --help every option', () => {
  const top = run(['--help']);
  assert.equal(top.status, 0);
  for (const cmd of ['serve', 'version', 'help']) assert.match(top.stdout, new RegExp(`\\b${cmd}\\b`));
  const serve = run(['serve', '--help']);
  assert.equal(serve.status, 0);
  for (const opt of ['--config', '--data', '--listen', '--write-key', '--admin-token', '--shards', '--set'])
    assert.ok(serve.stdout.includes(opt), `serve --help mentions ${opt}`);
  for (const key of ['dedupe.window', 'limits.max_batch_bytes', 'engine.partitions'])
    assert.ok(serve.stdout.includes(key), `serve --help lists ${key}`);
  assert.equal(run(['help', 'serve']).stdout, serve.stdout);
});

test('a bad option or value stops start-up with one line naming it', (t) => {
  const data = tmp(t);
  const cases = [
    [['serve', '--nope'], /'--nope'/],
    [['serve', '--data', data, '--shards', 'two'], /--shards: engine\.shards: expected a whole number, got 'two'/],
    [['serve', '--data', data, '--listen', 'localhost'], /listen: expected HOST:PORT, got 'localhost'/],
    [['serve', '--data', data, '--set', 'engine.partitions=48'], /engine\.partitions must be a power of two, got 48/],
    [['serve', '--data', data, '--set', 'no.such=1'], /unknown setting 'no\.such'/],
    [['frobnicate'], /unknown command 'frobnicate'/],
  ];
  for (const [args, re] of cases) {
    const r = run(args);
    assert.equal(r.status, 2, `${args.join(' ')} exits 2`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line for ${args.join(' ')}: ${r.stderr}`);
    assert.match(lines[0], re);
  }
  const cfg = join(data, 'bad.yaml');
  writeFileSync(cfg, 'engine:\n  shards: 2\n  partitons: 64\n');
  const r = run(['serve', '--config', cfg, '--data', data]);
  assert.equal(r.status, 2);
  assert.equal(r.stderr.trim(), `journeyd: ${cfg}:3:3: unknown setting 'engine.partitons'`);
});

function startServe(args) {
  const p = spawn(bin, ['serve', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line:\n${err}`)), 15000);
    p.stderr.on('data', (d) => {
      err += d;
      const m = err.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    p.on('exit', (code) => { clearTimeout(timer); reject(new Error(`exited ${code}:\n${err}`)); });
  });
  const exited = new Promise((resolve) => p.on('exit', (code) => resolve(code)));
  return { p, ready, exited, stderr: () => err };
}

test('without configured keys, credentials are created once, kept, and printed', async (t) => {
  const data = tmp(t);
  const a = startServe(['--data', data, '--listen', '127.0.0.1:0']);
  const port = await a.ready;
  const wk = a.stderr().match(/write key: ([0-9a-f]{32})/)[1];
  const at = a.stderr().match(/admin token: ([0-9a-f]{32})/)[1];
  assert.equal(statSync(join(data, 'credentials')).mode & 0o777, 0o600);
  assert.match(readFileSync(join(data, 'credentials'), 'utf8'), new RegExp(wk));
  // The printed key is the one that works.
  const ok = await fetch(`http://127.0.0.1:${port}/v1/track`, {
    method: 'POST',
    headers: { authorization: 'Basic ' + Buffer.from(`${wk}:`).toString('base64'), 'content-type': 'application/json' },
    body: JSON.stringify({ userId: 'cli-1', event: 'Tried CLI' }),
  });
  assert.equal(ok.status, 200);
  // The example segment and journeys are validated at start, then defined and published (records 1-4).
  assert.match(a.stderr(), /segments: churn-risk \(segments\/churn-risk.yaml\) is at version 1/);
  assert.match(a.stderr(), /journeys: 3 valid in journeys \(cart-abandonment, churn-prevention, onboarding-trial\)/);
  assert.match(a.stderr(), /journeys: cart-abandonment \(journeys\/cart-abandonment.yaml\) is at version 1/);
  const prof = await fetch(`http://127.0.0.1:${port}/v1/profiles/cli-1`, { headers: { authorization: `Bearer ${at}` } });
  assert.equal(prof.status, 200);
  a.p.kill('SIGINT');
  assert.equal(await a.exited, 0);
  assert.match(a.stderr(), /shutting down \(SIGINT\)/);
  assert.match(a.stderr(), /snapshot written at lsn 5/);   /* the segment, 3 journey records, then the event */
  assert.match(a.stderr(), /stopped/);

  const b = startServe(['--data', data, '--listen', '127.0.0.1:0']);
  await b.ready;
  assert.match(b.stderr(), new RegExp(`write key: ${wk}`));
  assert.match(b.stderr(), new RegExp(`admin token: ${at}`));
  assert.match(b.stderr(), /recovered: snapshot at lsn 5, replayed 0 records, 1 profiles/);
  // unchanged files publish nothing new
  assert.match(b.stderr(), /journeys: onboarding-trial \(journeys\/onboarding-trial.yaml\) is at version 1/);
  b.p.kill('SIGTERM');
  assert.equal(await b.exited, 0);
});

test('a bad journey document stops start-up with every diagnostic', (t) => {
  const data = tmp(t);
  const dir = join(data, 'journeys');
  spawnSync('mkdir', ['-p', dir]);
  writeFileSync(join(dir, 'bad.yaml'), 'id: x\nentry: {event: A}\nnodes:\n  a: {send: {channel: fax, template: t}, next: b}\n');
  const r = run(['serve', '--data', data, '--listen', '127.0.0.1:0', '--write-key', 'k', '--admin-token', 'a',
                 '--set', `journeys.dir=${dir}`]);
  assert.equal(r.status, 2, r.stderr);
  assert.ok(r.stderr.includes(`${dir}/bad.yaml:4:23: node 'a': unknown channel 'fax'`), r.stderr);
  assert.ok(r.stderr.includes(`${dir}/bad.yaml:4:48: node 'a': edge to missing node 'b'`), r.stderr);
  assert.doesNotMatch(r.stderr, /listening on/);
});

#!/usr/bin/env bash
# Journeys benchmark over HTTP: journeyd running journeys while it ingests, on loopback, with wrk.
#
#   (d) POST /v1/batch (100 'Viewed Product' events a request) into a journeyd with 100 active
#       journeys, all entered on 'Viewed Product', each with its own entry condition
#       (event.properties.price > k.0 && event.properties.category == "c<k%7>"), so every event
#       has 100 conditions evaluated. References in the same run, runs alternated:
#         - the same events into a journeyd with no journeys;
#         - the foundation's ingest benchmark (bench/batch.lua, as bench/ingest.sh (b)) into it.
#       target: >= 200,000 events/s, and >= 0.8x the foundation's ingest-only rate
#   (e) latency from acknowledgement (durable commit) to delivery intent: one journey (entry
#       'Signed Up', then a send), K single POST /v1/track at a steady rate; the server measures
#       each intent's delay_us (monotonic clock, record durable -> intent produced), read back
#       from GET /v1/intents. p50 / p99.
#
# Ingest acknowledges a request once it is durable; the shards apply it afterwards, so under load
# the journeys can lag behind the acknowledgements. Two rates are printed for (d): "acked" (wrk's
# requests/s x 100) and "applied" (events accepted during the run / time from the start of the run
# until every shard queue is empty again, i.e. ingest plus engine). The figure that counts for
# the targets is "applied". After each run the script also waits until the server is idle again
# (snapshots of millions of instances take seconds of CPU) before the next run starts.
#
# Environment: JOURNEYD_BIN (default build/journeyd), JBENCH_DURATION (8s), BENCH_RUNS (3),
#   BENCH_THREADS (2), BENCH_CONN_BATCH (16), JBENCH_JOURNEYS (100), JBENCH_LAT_EVENTS (2000),
#   JBENCH_LAT_RATE (500 a second), TMPDIR (data dirs; must be a real disk for fsync to count).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${JOURNEYD_BIN:-$ROOT/build/journeyd}
DURATION=${JBENCH_DURATION:-8s}
RUNS=${BENCH_RUNS:-3}
THREADS=${BENCH_THREADS:-2}
CONN_BATCH=${BENCH_CONN_BATCH:-16}
NJOURNEYS=${JBENCH_JOURNEYS:-100}
LAT_EVENTS=${JBENCH_LAT_EVENTS:-2000}
LAT_RATE=${JBENCH_LAT_RATE:-500}
WRITE_KEY=bench-write-key
ADMIN_TOKEN=bench-admin-token
AUTH="Authorization: Basic $(printf '%s:' "$WRITE_KEY" | base64 -w0)"

for tool in wrk node; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is not installed" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "bench: $BIN not found (make all)" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/journeyd-jbench.XXXXXX")
PIDS=()

# stop_pid PID [grace-seconds]: SIGTERM, wait, then SIGKILL. Only PIDs this script started.
stop_pid() {
  local pid=$1 grace=${2:-30} i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "bench: pid $pid did not exit within ${grace}s of SIGTERM; SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" != "$pid" ] && keep+=("$p"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}

cleanup() {
  local p
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do stop_pid "$p" 10; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_journeyd NAME JOURNEYS_DIR [extra args...]: sets JPID and JURL
start_journeyd() {
  local name=$1 jdir=$2 i port=
  shift 2
  mkdir -p "$TMP/$name"
  "$BIN" serve --data "$TMP/$name" --listen 127.0.0.1:0 --write-key "$WRITE_KEY" \
    --admin-token "$ADMIN_TOKEN" --set "journeys.dir=$jdir" --set "segments.dir=$TMP/no-segments" "$@" 2>"$TMP/$name.log" &
  JPID=$!
  PIDS+=("$JPID")
  for ((i = 0; i < 600; i++)); do
    port=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$TMP/$name.log" | head -1 | sed 's/.*://' || true)
    [ -n "$port" ] && break
    if ! kill -0 "$JPID" 2>/dev/null; then
      echo "bench: journeyd exited during startup:" >&2; cat "$TMP/$name.log" >&2; exit 1
    fi
    sleep 0.05
  done
  [ -n "$port" ] || { echo "bench: journeyd did not listen within 30 s:" >&2; cat "$TMP/$name.log" >&2; exit 1; }
  JURL="http://127.0.0.1:$port"
}

# CPU accounting in clock ticks (100 a second a core), as bench/ingest.sh does
machine_ticks() { # prints "busy total"
  local l
  read -r -a l < /proc/stat
  echo "$(( l[1] + l[2] + l[3] + l[6] + l[7] + l[8] )) $(( l[1] + l[2] + l[3] + l[4] + l[5] + l[6] + l[7] + l[8] ))"
}
server_ticks() { [ -r "/proc/$1/stat" ] && awk '{print $14 + $15}' "/proc/$1/stat" || echo 0; }

metric() { # metric URL NAME: sum of all samples of a metric
  node -e '
    fetch(process.argv[1] + "/metrics").then(r => r.text()).then(t => {
      let s = 0; for (const l of t.split("\n")) { const m = /^(\w+)(\{[^}]*\})?\s+(\S+)/.exec(l); if (m && m[1] === process.argv[2]) s += Number(m[3]); }
      console.log(s);
    }, () => console.log(-1));' "$1" "$2"
}

now_s() { date +%s.%N; }

busy_pct() {
  local a b
  a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
  local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=0 i
  for ((i = 1; i < ${#a[@]}; i++)); do total=$(( total + b[i] - a[i] )); done
  echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}

# one_run URL PID SCRIPT LABEL: one wrk run, then waits until the shards caught up; prints the line
# and sets ACKED, APPLIED (events/s), OK (1 if non2xx=0 socket_errors=0)
one_run() {
  local url=$1 spid=$2 script=$3 label=$4 a0 a1 t0 t1 t2 s0 s1 m0 m1 wt line depth i cpu
  a0=$(metric "$url" journeyd_events_accepted_total)
  read -r -a m0 <<<"$(machine_ticks)"
  s0=$(server_ticks "$spid")
  t0=$(now_s)
  wt=$( { TIMEFORMAT='%U %S'; time wrk -t"$THREADS" -c"$CONN_BATCH" -d"$DURATION" --latency -H "$AUTH" \
          -s "$ROOT/bench/$script" "$url" -- "$label-$$" >"$TMP/wrk.out" 2>&1; } 2>&1 ) || {
    cat "$TMP/wrk.out" >&2; exit 1; }
  t1=$(now_s)
  for ((i = 0; i < 3000; i++)); do   # at most 5 minutes of catching up
    depth=$(metric "$url" journeyd_shard_queue_depth)
    [ "$depth" = 0 ] && break
    sleep 0.1
  done
  t2=$(now_s)
  # then until the server is idle (snapshots, timers): the next run must not share the CPUs with it
  local q0 q1 t3
  for ((i = 0; i < 120; i++)); do
    q0=$(server_ticks "$spid"); sleep 0.5; q1=$(server_ticks "$spid")
    [ $((q1 - q0)) -le 3 ] && break
  done
  t3=$(now_s)
  s1=$(server_ticks "$spid")
  read -r -a m1 <<<"$(machine_ticks)"
  a1=$(metric "$url" journeyd_events_accepted_total)
  cpu=$(awk -v b0="${m0[0]}" -v t0="${m0[1]}" -v b1="${m1[0]}" -v t1="${m1[1]}" -v s0="$s0" -v s1="$s1" -v w="$wt" \
            -v n="$(nproc)" 'BEGIN { split(w, x, " "); secs = (t1 - t0) / 100 / n; wrk = (x[1] + x[2]) * 100; srv = s1 - s0;
              oth = (b1 - b0) - srv - wrk; if (oth < 0) oth = 0;
              printf "cpu_cores server=%.2f wrk=%.2f others+softirq=%.2f", srv / 100 / secs, wrk / 100 / secs, oth / 100 / secs }')
  line=$(grep '^RESULT' "$TMP/wrk.out" | sed 's/^RESULT //')
  ACKED=$(sed 's/.* rps=\([0-9.]*\) .*/\1/' <<<"$line" | awk '{ printf "%.0f", $1 * 100 }')
  APPLIED=$(awk -v a0="$a0" -v a1="$a1" -v t0="$t0" -v t2="$t2" 'BEGIN { printf "%.0f", (a1 - a0) / (t2 - t0) }')
  OK=0
  grep -q 'non2xx=0 socket_errors=0' <<<"$line" && OK=1
  printf '    %-28s acked=%s/s applied=%s/s catch-up=%.1fs then-idle-after=%.1fs %s %s\n' "$label:" "$ACKED" \
    "$APPLIED" "$(awk -v a="$t1" -v b="$t2" 'BEGIN { print b - a }')" "$(awk -v a="$t2" -v b="$t3" 'BEGIN { print b - a }')" \
    "$line" "$cpu"
  [ "$OK" = 1 ] || echo "    WARNING: non-2xx answers or socket errors in this run: it does not count"
}

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
fmt() { awk -v v="$1" 'BEGIN { printf "%\047.0f", v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
verdict() { # verdict VALUE OP TARGET
  if awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN { exit !((op == ">=") ? (v >= t) : (v < t)) }'; then echo PASS; else echo FAIL; fi
}

echo "== journeyd journeys benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "   host: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), data on $(df -T "$TMP" | awk 'NR==2 {print $2}') ($TMP)"
echo "   journeyd: $BIN, built $(date -u -r "$BIN" +%Y-%m-%dT%H:%M:%SZ), durability default (ack after fsync)"
echo "   wrk -t$THREADS -c$CONN_BATCH -d$DURATION, $RUNS runs of each, alternated; median shown"
BUSY=$(busy_pct)
echo "   CPU busy before starting (other processes): ${BUSY}%, load average $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$BUSY" -gt 10 ] && echo "   WARNING: the machine is not idle; the figures below are depressed by whatever else is running"
echo

# ---- the journeys ------------------------------------------------------------
mkdir -p "$TMP/j100" "$TMP/j0" "$TMP/jlat"
for ((k = 0; k < NJOURNEYS; k++)); do
  cat >"$TMP/j100/viewed-$k.yaml" <<EOF
id: viewed-$k
entry:
  event: Viewed Product
  when: 'event.properties.price > $k.0 && event.properties.category == "c$((k % 7))"'
nodes:
  later:
    wait: 1d
    next: hello
  hello:
    send: { channel: email, template: product_$k }
EOF
done
cat >"$TMP/jlat/welcome.yaml" <<EOF
id: bench-latency
entry:
  event: Signed Up
nodes:
  hello:
    send: { channel: email, template: welcome }
EOF

# ---- (d) throughput -------------------------------------------------------------
echo "(d) POST /v1/batch, 100 events a request, $CONN_BATCH connections"
start_journeyd j100 "$TMP/j100"
P100=$JPID U100=$JURL
start_journeyd j0 "$TMP/j0"
P0=$JPID U0=$JURL
echo "   with $NJOURNEYS journeys: pid $P100 at $U100 ($(grep -c 'journeys: viewed-' "$TMP/j100.log") published); no journeys: pid $P0 at $U0"
A100=() P100A=() A0=() P0A=() AF=() PFA=() BAD=0
for ((r = 1; r <= RUNS; r++)); do
  echo "  run $r:"
  one_run "$U100" "$P100" journeys_batch.lua "$NJOURNEYS journeys, r$r"; A100+=("$ACKED"); P100A+=("$APPLIED"); [ "$OK" = 1 ] || BAD=1
  one_run "$U0" "$P0" journeys_batch.lua "0 journeys, r$r"; A0+=("$ACKED"); P0A+=("$APPLIED"); [ "$OK" = 1 ] || BAD=1
  one_run "$U0" "$P0" batch.lua "foundation batch.lua, r$r"; AF+=("$ACKED"); PFA+=("$APPLIED"); [ "$OK" = 1 ] || BAD=1
done
INST=$(metric "$U100" journeyd_journey_instances)
SNAPS=$(metric "$U100" journeyd_snapshots_total)
SNAPS0=$(metric "$U0" journeyd_snapshots_total)
WAITS=$(metric "$U100" journeyd_journey_waits)
RSS100=$(awk '/^VmRSS:/ { print $2 }' "/proc/$P100/status")
RSS0=$(awk '/^VmRSS:/ { print $2 }' "/proc/$P0/status")
echo "  at the end: $NJOURNEYS-journey server: $(fmt "$INST") live instances, $(fmt "$WAITS") waits armed, VmRSS $((RSS100 / 1024)) MiB, $SNAPS snapshots;"
echo "              no-journey server: VmRSS $((RSS0 / 1024)) MiB, $SNAPS0 snapshots"
echo "              (RSS difference / live instances: $(awk -v a="$RSS100" -v b="$RSS0" -v n="$INST" 'BEGIN { printf "%.0f", (n > 0 ? (a - b) * 1024 / n : 0) }') bytes; both hold ~100,000 profiles)"
stop_pid "$P100" 120
stop_pid "$P0" 60
M_A100=$(median "${A100[@]}") M_P100=$(median "${P100A[@]}")
M_A0=$(median "${A0[@]}") M_P0=$(median "${P0A[@]}")
M_AF=$(median "${AF[@]}") M_PF=$(median "${PFA[@]}")
echo

# ---- (e) latency ------------------------------------------------------------------
echo "(e) acknowledgement -> intent: one journey (entry 'Signed Up', send), $LAT_EVENTS single /v1/track at $LAT_RATE/s"
start_journeyd jlat "$TMP/jlat"
LAT_RC=0
node --input-type=module - "$JURL" "$WRITE_KEY" "$ADMIN_TOKEN" "$LAT_EVENTS" "$LAT_RATE" >"$TMP/lat.out" <<'EOF' || LAT_RC=$?
import http from 'node:http';
const [url, key, admin, nArg, rateArg] = process.argv.slice(2);
const n = Number(nArg), rate = Number(rateArg);
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
const auth = 'Basic ' + Buffer.from(`${key}:`).toString('base64');
const run = Date.now().toString(36);
function req(method, path, headers, body) {
  return new Promise((resolve, reject) => {
    const r = http.request(new URL(path, url), { method, agent, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }));
    });
    r.on('error', reject);
    r.end(body);
  });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const delays = new Map();   // intent id -> delay_us
let failed = 0;
const acks = [];
async function send(i) {
  const body = Buffer.from(JSON.stringify({ type: 'track', event: 'Signed Up', userId: `lat-${run}-${i}`,
    messageId: `lat-${run}-${i}`, properties: { plan: 'free' } }));
  const t = process.hrtime.bigint();
  const r = await req('POST', '/v1/track', { Authorization: auth, 'Content-Type': 'application/json',
    'Content-Length': body.length }, body);
  acks.push(Number(process.hrtime.bigint() - t) / 1000);
  if (r.status !== 200) failed++;
}
async function collect() {
  const r = await req('GET', '/v1/intents?limit=1000', { Authorization: `Bearer ${admin}` });
  if (r.status !== 200) throw new Error(`GET /v1/intents: ${r.status} ${r.text}`);
  const j = JSON.parse(r.text);
  for (const it of (Array.isArray(j) ? j : j.intents ?? [])) delays.set(String(it.id), it.delay_us);
}
// in chunks of at most 1000 (the limit of one GET /v1/intents), reading back after each
const t0 = Date.now();
for (let start = 0; start < n; start += 1000) {
  const end = Math.min(n, start + 1000), pending = [];
  for (let i = start; i < end; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
    pending.push(send(i));
  }
  await Promise.all(pending);
  await sleep(300);   // the shards apply after the acknowledgement
  await collect();
}
agent.destroy();
const pct = (v, p) => { const s = [...v].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.ceil(p / 100 * s.length) - 1)] : NaN; };
const d = [...delays.values()].filter((x) => typeof x === 'number');
console.log(`LAT sent=${n} failed=${failed} intents=${d.length} p50_us=${pct(d, 50)} p99_us=${pct(d, 99)} max_us=${Math.max(...d)} ` +
  `ack_p50_us=${pct(acks, 50).toFixed(0)} ack_p99_us=${pct(acks, 99).toFixed(0)} seconds=${((Date.now() - t0) / 1000).toFixed(1)}`);
process.exit(failed || d.length < n ? 1 : 0);
EOF
LAT=$(cat "$TMP/lat.out")
echo "  $LAT"
[ "$LAT_RC" = 0 ] || echo "  WARNING: not every event was acknowledged or produced an intent"
stop_pid "$JPID" 60
LAT_P50=$(sed 's/.* p50_us=\([0-9]*\).*/\1/' <<<"$LAT")
LAT_P99=$(sed 's/.* p99_us=\([0-9]*\).*/\1/' <<<"$LAT")
echo

R_FOUND=$(ratio "$M_P100" "$M_PF")
R_SAME=$(ratio "$M_P100" "$M_P0")
echo "== results (median of $RUNS x $DURATION; applied = accepted events / (run + shard catch-up))"
printf '%-44s %14s %14s   %s\n' "figure" "acked ev/s" "applied ev/s" "target"
printf '%-44s %14s %14s   %s\n' "(d) $NJOURNEYS journeys, conditions on every event" "$(fmt "$M_A100")" "$(fmt "$M_P100")" \
  ">= 200,000 events/s   $(verdict "$M_P100" '>=' 200000)"
printf '%-44s %14s %14s\n' "    same events, no journeys" "$(fmt "$M_A0")" "$(fmt "$M_P0")"
printf '%-44s %14s %14s\n' "    foundation's batch.lua, no journeys" "$(fmt "$M_AF")" "$(fmt "$M_PF")"
printf '%-44s %14s %14s   %s\n' "    ratio to the foundation's ingest-only" "$(ratio "$M_A100" "$M_AF")x" "${R_FOUND}x" \
  ">= 0.8x   $(verdict "$R_FOUND" '>=' 0.8)"
printf '%-44s %14s %14s\n' "    ratio to the same events, no journeys" "$(ratio "$M_A100" "$M_A0")x" "${R_SAME}x"
printf '%-44s %14s %14s   %s\n' "(e) durable commit -> intent, p50 / p99" "" "${LAT_P50} / ${LAT_P99} us" "(server's monotonic clock)"
[ "$BAD" = 1 ] && echo "WARNING: some runs had non-2xx answers or socket errors (see the run lines)"
exit 0

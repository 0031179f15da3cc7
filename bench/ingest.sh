#!/usr/bin/env bash
# Ingest benchmark of journeyd against nginx `return 200` (the reference), on loopback, with wrk.
#
#   (a) POST /v1/track, one ~300-byte event per request, keep-alive        target: >= 0.5x nginx req/s
#   (b) POST /v1/batch, 100 events per request                              target: >= 300,000 events/s
#   (c) 1,000,000 distinct userIds ingested into a fresh journeyd, then VmRSS  target: < 1 GiB
#
# journeyd runs with its default durability (an event is acknowledged after fsync) on a data
# directory on the real disk. Each wrk figure is the median of BENCH_RUNS runs.
# Everything started here is stopped by its PID; the temp dir is removed on exit.
#
# Environment: JOURNEYD_BIN (default build/journeyd), BENCH_DURATION (10s), BENCH_RUNS (3),
#   BENCH_THREADS (2), BENCH_CONN_TRACK (64), BENCH_CONN_BATCH (16), BENCH_FILL_USERS (1000000),
#   BENCH_FILL_CONN (16), TMPDIR (where the data dirs go; must be a real disk for fsync to count).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${JOURNEYD_BIN:-$ROOT/build/journeyd}
DURATION=${BENCH_DURATION:-10s}
RUNS=${BENCH_RUNS:-3}
THREADS=${BENCH_THREADS:-2}
CONN_TRACK=${BENCH_CONN_TRACK:-64}
CONN_BATCH=${BENCH_CONN_BATCH:-16}
FILL_USERS=${BENCH_FILL_USERS:-1000000}
FILL_CONN=${BENCH_FILL_CONN:-16}
WRITE_KEY=bench-write-key
ADMIN_TOKEN=bench-admin-token
AUTH="Authorization: Basic $(printf '%s:' "$WRITE_KEY" | base64 -w0)"

for tool in wrk nginx node; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is not installed" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "bench: $BIN not found (make all)" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/journeyd-bench.XXXXXX")
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

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# start_journeyd NAME: sets JPID and JURL
start_journeyd() {
  local name=$1 i port=
  mkdir -p "$TMP/$name"
  "$BIN" serve --data "$TMP/$name" --listen 127.0.0.1:0 --write-key "$WRITE_KEY" \
    --admin-token "$ADMIN_TOKEN" --set "journeys.dir=$TMP/no-journeys" --set "segments.dir=$TMP/no-segments" 2>"$TMP/$name.log" &
  JPID=$!
  PIDS+=("$JPID")
  for ((i = 0; i < 300; i++)); do
    port=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$TMP/$name.log" | head -1 | sed 's/.*://' || true)
    [ -n "$port" ] && break
    if ! kill -0 "$JPID" 2>/dev/null; then
      echo "bench: journeyd exited during startup:" >&2; cat "$TMP/$name.log" >&2; exit 1
    fi
    sleep 0.05
  done
  [ -n "$port" ] || { echo "bench: journeyd did not listen within 15 s:" >&2; cat "$TMP/$name.log" >&2; exit 1; }
  JURL="http://127.0.0.1:$port"
}

start_nginx() {
  local port
  port=$(free_port)
  mkdir -p "$TMP/nginx/tmp"
  sed "s/__PORT__/$port/" "$ROOT/bench/nginx.conf" >"$TMP/nginx/nginx.conf"
  nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" -g 'daemon off;' &
  NPID=$!
  PIDS+=("$NPID")
  local i code=
  for ((i = 0; i < 100; i++)); do
    code=$(node -e 'fetch(process.argv[1],{method:"POST",body:"{}"}).then(r=>console.log(r.status),()=>console.log(0))' "http://127.0.0.1:$port/v1/track")
    [ "$code" = 200 ] && break
    sleep 0.1
  done
  [ "$code" = 200 ] || { echo "bench: nginx does not answer POST with 200 (got $code)" >&2; cat "$TMP/nginx/error.log" >&2; exit 1; }
  NURL="http://127.0.0.1:$port"
}

# CPU accounting, in clock ticks (100 a second a core): the whole machine from /proc/stat,
# the server from /proc/PID/stat (all its threads; nginx: master and workers), wrk from bash's `time`.
machine_ticks() { # prints "busy total irq+softirq"
  local l
  read -r -a l < /proc/stat
  echo "$(( l[1] + l[2] + l[3] + l[6] + l[7] + l[8] )) $(( l[1] + l[2] + l[3] + l[4] + l[5] + l[6] + l[7] + l[8] )) $(( l[6] + l[7] ))"
}
server_ticks() {
  local t=0 p
  for p in "$@" $(pgrep -P "$1" 2>/dev/null); do
    [ -r "/proc/$p/stat" ] && t=$(( t + $(awk '{print $14 + $15}' "/proc/$p/stat") ))
  done
  echo "$t"
}

# wrk_median URL SCRIPT CONNS LABEL SERVER_PID: runs wrk RUNS times; prints each run with the CPU
# (in cores) of the server, of wrk and of everything else on the machine; sets MED_RPS, MED_P50,
# MED_P99, MED_CPU (the median run's CPU line) and BAD
wrk_median() {
  local url=$1 script=$2 conns=$3 label=$4 spid=$5 r out line m0 m1 s0 s1 wt cpu
  local lines=()
  BAD=0
  for ((r = 1; r <= RUNS; r++)); do
    read -r -a m0 <<<"$(machine_ticks)"
    s0=$(server_ticks "$spid")
    wt=$( { TIMEFORMAT='%U %S'; time wrk -t"$THREADS" -c"$conns" -d"$DURATION" --latency -H "$AUTH" \
            -s "$ROOT/bench/$script" "$url" -- "$label-$r-$$" >"$TMP/wrk.out" 2>&1; } 2>&1 ) || {
      cat "$TMP/wrk.out" >&2; exit 1; }
    s1=$(server_ticks "$spid")
    read -r -a m1 <<<"$(machine_ticks)"
    cpu=$(awk -v b0="${m0[0]}" -v t0="${m0[1]}" -v q0="${m0[2]}" -v b1="${m1[0]}" -v t1="${m1[1]}" -v q1="${m1[2]}" \
              -v s0="$s0" -v s1="$s1" -v w="$wt" -v n="$(nproc)" '
      BEGIN { split(w, x, " "); secs = (t1 - t0) / 100 / n; wrk = (x[1] + x[2]) * 100; srv = s1 - s0; irq = q1 - q0;
              oth = (b1 - b0) - srv - wrk - irq; if (oth < 0) oth = 0;
              printf "cpu_cores server=%.2f wrk=%.2f softirq=%.2f others=%.2f of %d",
                     srv / 100 / secs, wrk / 100 / secs, irq / 100 / secs, oth / 100 / secs, n }')
    line="$(grep '^RESULT' "$TMP/wrk.out") $cpu"
    printf '    run %d: %s\n' "$r" "${line#RESULT }"
    lines+=("$line")
    if ! grep -q 'non2xx=0 socket_errors=0' <<<"$line"; then BAD=1; fi
  done
  # median by rps; p50/p99 of the median run
  local med
  med=$(printf '%s\n' "${lines[@]}" | sed 's/.* rps=\([0-9.]*\) .*/\1 &/' | sort -n | awk -v n="$RUNS" 'NR == int((n + 1) / 2) { $1 = ""; print }')
  MED_RPS=$(sed 's/.* rps=\([0-9.]*\).*/\1/' <<<"$med")
  MED_P50=$(sed 's/.* p50_ms=\([0-9.]*\).*/\1/' <<<"$med")
  MED_P99=$(sed 's/.* p99_ms=\([0-9.]*\).*/\1/' <<<"$med")
  MED_CPU=$(sed 's/.*cpu_cores //' <<<"$med")
}

verdict() { # verdict VALUE OP TARGET
  if awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN { exit !((op == ">=") ? (v >= t) : (v < t)) }'; then echo PASS; else echo FAIL; fi
}

metric() { # metric URL NAME: sum of all samples of a metric
  node -e '
    fetch(process.argv[1] + "/metrics").then(r => r.text()).then(t => {
      let s = 0; for (const l of t.split("\n")) { const m = /^(\w+)(\{[^}]*\})?\s+(\S+)/.exec(l); if (m && m[1] === process.argv[2]) s += Number(m[3]); }
      console.log(s);
    }, () => console.log(-1));' "$1" "$2"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# CPU already in use by other processes: the figures below are only meaningful on an idle machine
busy_pct() {
  local a b
  a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
  local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=0 i
  for ((i = 1; i < ${#a[@]}; i++)); do total=$(( total + b[i] - a[i] )); done
  echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}

echo "== journeyd ingest benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "   host: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), data on $(df -T "$TMP" | awk 'NR==2 {print $2}') ($TMP)"
echo "   journeyd: $BIN, built $(date -u -r "$BIN" +%Y-%m-%dT%H:%M:%SZ) (tree at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo no-git)), durability default (ack after fsync)"
echo "   wrk -t$THREADS -d$DURATION --latency, $RUNS runs each, median shown; load generator and servers share the same CPUs"
BUSY=$(busy_pct)
echo "   CPU busy before starting (other processes): ${BUSY}%, load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$BUSY" -gt 10 ]; then
  echo "   WARNING: the machine is not idle; the figures below are depressed by whatever else is running"
fi
echo

start_journeyd bench
start_nginx
echo "   journeyd pid $JPID at $JURL; nginx master pid $NPID at $NURL (worker_processes 2)"
echo

echo "(a) POST /v1/track, one event per request, keep-alive, $CONN_TRACK connections"
echo "  journeyd:"
acc0=$(metric "$JURL" journeyd_events_accepted_total)
wrk_median "$JURL" track.lua "$CONN_TRACK" track "$JPID"
J_TRACK=$MED_RPS J_TRACK_P50=$MED_P50 J_TRACK_P99=$MED_P99 J_TRACK_BAD=$BAD J_TRACK_CPU=$MED_CPU
acc1=$(metric "$JURL" journeyd_events_accepted_total)
echo "  nginx:"
wrk_median "$NURL" track.lua "$CONN_TRACK" ntrack "$NPID"
N_TRACK=$MED_RPS N_TRACK_P50=$MED_P50 N_TRACK_P99=$MED_P99 N_TRACK_CPU=$MED_CPU
echo "  journeyd_events_accepted_total moved by $(awk -v a="$acc0" -v b="$acc1" 'BEGIN{printf "%d", b-a}') during the journeyd runs"
echo

echo "(b) POST /v1/batch, 100 events per request, $CONN_BATCH connections"
echo "  journeyd:"
wrk_median "$JURL" batch.lua "$CONN_BATCH" batch "$JPID"
J_BATCH=$MED_RPS J_BATCH_P50=$MED_P50 J_BATCH_P99=$MED_P99 J_BATCH_BAD=$BAD J_BATCH_CPU=$MED_CPU
echo "  nginx:"
wrk_median "$NURL" batch.lua "$CONN_BATCH" nbatch "$NPID"
N_BATCH=$MED_RPS N_BATCH_P50=$MED_P50 N_BATCH_P99=$MED_P99 N_BATCH_CPU=$MED_CPU
echo

BENCH_RSS=$(rss_kib "$JPID")
stop_pid "$NPID"
stop_pid "$JPID" 60

echo "(c) $FILL_USERS distinct userIds into a fresh journeyd (batches of 100, $FILL_CONN connections)"
start_journeyd fill
RSS0=$(rss_kib "$JPID")
node "$ROOT/bench/fill.mjs" "$JURL" "$WRITE_KEY" "$FILL_USERS" 100 "$FILL_CONN" | sed 's/^/  /'
# wait until every event is applied: the last user's profile exists and the shard queues are empty
last="fill-$((FILL_USERS - 1))"
for ((i = 0; i < 600; i++)); do
  code=$(node -e 'fetch(process.argv[1],{headers:{authorization:"Bearer "+process.argv[2]}}).then(r=>console.log(r.status),()=>console.log(0))' \
    "$JURL/v1/profiles/$last" "$ADMIN_TOKEN")
  depth=$(metric "$JURL" journeyd_shard_queue_depth)
  [ "$code" = 200 ] && [ "$depth" = 0 ] && break
  sleep 0.1
done
[ "$code" = 200 ] || echo "  WARNING: profile $last not visible (HTTP $code)"
RSS1=$(rss_kib "$JPID")
ACC=$(metric "$JURL" journeyd_events_accepted_total)
echo "  accepted events: $ACC; VmRSS before $((RSS0 / 1024)) MiB, after $((RSS1 / 1024)) MiB"
stop_pid "$JPID" 120
echo

fmt() { awk -v v="$1" 'BEGIN { printf "%\047.0f", v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
R_TRACK=$(ratio "$J_TRACK" "$N_TRACK")
J_BATCH_EV=$(awk -v r="$J_BATCH" 'BEGIN { printf "%.0f", r * 100 }')
N_BATCH_EV=$(awk -v r="$N_BATCH" 'BEGIN { printf "%.0f", r * 100 }')
R_BATCH=$(ratio "$J_BATCH" "$N_BATCH")
RSS_MIB=$((RSS1 / 1024))

echo "== results (median of $RUNS x $DURATION; latency of the median run)"
printf '%-34s %14s %12s %10s %10s   %s\n' "figure" "events/s" "req/s" "p50 ms" "p99 ms" "target"
printf '%-34s %14s %12s %10s %10s   %s\n' "(a) /v1/track journeyd (-c$CONN_TRACK)" "$(fmt "$J_TRACK")" "$(fmt "$J_TRACK")" "$J_TRACK_P50" "$J_TRACK_P99" ""
printf '%-34s %14s %12s %10s %10s   %s\n' "    /v1/track nginx" "-" "$(fmt "$N_TRACK")" "$N_TRACK_P50" "$N_TRACK_P99" ""
printf '%-34s %14s %12s %10s %10s   %s\n' "    ratio journeyd / nginx" "" "${R_TRACK}x" "" "" ">= 0.5x   $(verdict "$R_TRACK" '>=' 0.5)"
printf '%-34s %14s %12s %10s %10s   %s\n' "(b) /v1/batch journeyd (-c$CONN_BATCH)" "$(fmt "$J_BATCH_EV")" "$(fmt "$J_BATCH")" "$J_BATCH_P50" "$J_BATCH_P99" ">= 300,000 events/s   $(verdict "$J_BATCH_EV" '>=' 300000)"
printf '%-34s %14s %12s %10s %10s   %s\n' "    /v1/batch nginx" "$(fmt "$N_BATCH_EV")" "$(fmt "$N_BATCH")" "$N_BATCH_P50" "$N_BATCH_P99" ""
printf '%-34s %14s %12s %10s %10s   %s\n' "    ratio journeyd / nginx" "" "${R_BATCH}x" "" "" ""
printf '%-34s %14s %12s %10s %10s   %s\n' "(c) RSS after $FILL_USERS users" "" "" "" "" "$RSS_MIB MiB < 1024 MiB   $(verdict "$RSS_MIB" '<' 1024)"
echo "    (RSS of the (a)+(b) instance at its end: $((BENCH_RSS / 1024)) MiB)"
echo "CPU of the median runs, in cores: (a) journeyd $J_TRACK_CPU; nginx $N_TRACK_CPU"
echo "                                  (b) journeyd $J_BATCH_CPU; nginx $N_BATCH_CPU"
echo "(softirq: the kernel's loopback TCP and disk completions; others: everything else on the machine,"
echo " kernel threads such as the ext4 journal included: well above ~0.1 means something else ran and the figures are depressed)"
if [ "$J_TRACK_BAD" = 1 ] || [ "$J_BATCH_BAD" = 1 ]; then
  echo "WARNING: journeyd answered non-2xx or dropped sockets during a run (see the run lines): those figures do not count"
fi

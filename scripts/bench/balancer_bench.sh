#!/usr/bin/env bash
# Benchmarks the balancer's playlist path on this machine, in one run, next to nginx and
# Varnish in front of the same test_origin:
#   (1) freshness: a live media playlist rewritten on disk every 2 s (sliding window of
#       10 segments, media sequence +1 each time) is polled every ~50 ms for 20 s directly
#       from origin, through the balancer, through nginx micro-caches and through Varnish
#       (1 s TTL); for every media sequence number, the time each peer first showed it
#       minus the time origin first showed it (lag), plus origin requests per peer; then,
#       after an idle period, one request per peer (is an old copy served?);
#   (2) throughput: wrk on the balancer's per-viewer rewritten live media playlist (10
#       segments, signed chunk URLs to a real cache node; rewritten at origin every 2 s like
#       the one of (1), origin answering 200 ms late: a distant origin), 1000 distinct viewers,
#       at 50, 500, 6,000 and 20,000 connections (a count the open-file limit cannot hold is
#       lowered to what it can, and logged; above 8,000 wrk connects from one loopback address
#       per 5,000 connections, lib.sh's spread_sources), against nginx serving the same source playlist as
#       a static file (at its best: lib.sh, start_nginx_in); the balancer with threads: 1 and
#       threads: 2, each event loop's busy share, and the viewers who waited for a refresh of
#       the playlist (balancer_playlist_refresh_waits_total during the run); BENCH_ROUNDS rounds
#       per count, the servers' order reversed every other round (ABBA), and the median of the
#       rounds' ratios. A run in which any server had errors (wrk: connect, read or write errors,
#       timeouts, responses >= 400) is INVALID: no ratio, listed at the end, exit status 3;
#   (3) memory: 100,000 distinct viewers driven through a fresh balancer; VmRSS before
#       and after, bytes per admitted viewer.
# Prints a table and writes a JSON results file. Not run in CI.
#
# Usage: scripts/bench/balancer_bench.sh [--build DIR] [--out FILE] [--quick]
#   --build DIR  build tree with src/balancer/balancer, src/cache_node/cache_node and
#                tests/support/test_origin (default: build, or $BUILD_DIR)
#   --out FILE   JSON results (default: bench-results/balancer-<time>.json)
#   --quick      freshness 8 s, wrk 3 s, idle 12 s (a smoke run, about a minute)
# Environment: BENCH_FRESH_SECONDS (20), BENCH_WRK_SECONDS (10), BENCH_IDLE_SECONDS (15),
# BENCH_UPDATE_MS (2000: playlist update interval; e.g. 2050 sweeps the update phase
# against the caches' refresh cycles within one run), BENCH_ORIGIN_DELAY_MS (200: how late
# origin answers the balancer's fetches of the playlist of (2); 0 for a near origin),
# BENCH_PEERS ("nginx varnish"),
# BENCH_CONNECTIONS ("50 500 6000 20000"), BENCH_ROUNDS (1), BENCH_VIEWERS (1000), BENCH_THREADS ("1 2": the balancer's
# threads in (2); the last one also serves (1)), BENCH_NGINX_WORKERS (the last of
# BENCH_THREADS: one worker per balancer loop), BENCH_WRK_THREADS
# (2), BENCH_BACKLOG (4096: every server's listen backlog; the kernel caps it at
# net.core.somaxconn), BENCH_RSS_VIEWERS (100000; 0 skips (3)), BENCH_RSS_THREADS (2), BENCH_MEMORY_CONNECTIONS ("6000": N of
# (4), a list; 0 skips; needs tests/support/herd), BENCH_KEEP=1 keeps the temp dir
# with the server logs, BENCH_PERF=DIR samples each balancer during its measured wrk runs
# (perf record -e cpu-clock -g; the data and a flat report per run into DIR),
# BENCH_SYSCALLS=1 counts every server's system calls during its measured wrk runs (perf stat)
# and lists the ten most frequent per response, beside the table.
# A missing peer (nginx, varnishd, wrk) is reported and skipped; the script still exits 0.
#
# Everything listens on 127.0.0.1 (ephemeral or free ports), lives in one temp dir and is
# stopped by pid on exit. Whole run: about 5 minutes.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
OUT_FILE=""
QUICK=0
FRESH_SECONDS=${BENCH_FRESH_SECONDS:-20}
WRK_SECONDS=${BENCH_WRK_SECONDS:-10}
IDLE_SECONDS=${BENCH_IDLE_SECONDS:-15}
WANTED_PEERS=${BENCH_PEERS:-"nginx varnish"}
CONNECTIONS=${BENCH_CONNECTIONS:-"50 500 6000 20000"}
ROUNDS=${BENCH_ROUNDS:-1}
VIEWERS=${BENCH_VIEWERS:-1000}
BAL_THREAD_COUNTS=${BENCH_THREADS:-"1 2"}
NGINX_WORKERS=${BENCH_NGINX_WORKERS:-}  # default: the last balancer thread count (one worker a loop)
WRK_THREADS=${BENCH_WRK_THREADS:-2}
NGINX_WORKERS=${NGINX_WORKERS:-${BAL_THREAD_COUNTS##* }}
RSS_VIEWERS=${BENCH_RSS_VIEWERS:-100000}
RSS_THREADS=${BENCH_RSS_THREADS:-2}
MEMORY_CONNECTIONS=${BENCH_MEMORY_CONNECTIONS:-"6000"}
PERF_DIR=${BENCH_PERF:-}
COUNT_SYSCALLS=${BENCH_SYSCALLS:-0}
if [[ $PERF_DIR || $COUNT_SYSCALLS = 1 ]]; then
  command -v perf >/dev/null || { echo "BENCH_PERF and BENCH_SYSCALLS need perf (apt-get install linux-perf)" >&2; exit 1; }
  [[ $PERF_DIR ]] && mkdir -p "$PERF_DIR"
fi
POLL_PER_S=20          # ~50 ms between polls
ORIGIN_DELAY_MS=${BENCH_ORIGIN_DELAY_MS:-200}
UPDATE_US=$(( ${BENCH_UPDATE_MS:-2000} * 1000 ))  # the live playlist changes every 2 s
WINDOW=10              # segments in every playlist

while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD_DIR=$2; shift 2 ;;
    --out) OUT_FILE=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $BUILD_DIR = /* ]] || BUILD_DIR="$ROOT_DIR/$BUILD_DIR"
if [[ $QUICK = 1 ]]; then
  FRESH_SECONDS=8
  WRK_SECONDS=3
  IDLE_SECONDS=12
fi

if [[ -z ${EPOCHREALTIME:-} ]]; then
  echo "bash 5 or later is required (EPOCHREALTIME)" >&2
  exit 1
fi
BALANCER="$BUILD_DIR/src/balancer/balancer"
CACHE_NODE="$BUILD_DIR/src/cache_node/cache_node"
TEST_ORIGIN="$BUILD_DIR/tests/support/test_origin"
HERD="$BUILD_DIR/tests/support/herd"  # (4) only
for bin in "$BALANCER" "$CACHE_NODE" "$TEST_ORIGIN"; do
  if [[ ! -x $bin ]]; then
    echo "missing $bin; build it first: cmake --build $BUILD_DIR --target balancer cache_node test_origin" >&2
    exit 1
  fi
done
for tool in curl timeout grep; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done
CURL_RATE=1
curl --help all 2>/dev/null | grep -q -- '--rate' || CURL_RATE=0

RUN_ID="$(date +%Y%m%d-%H%M%S)-$$"
if [[ -z $OUT_FILE ]]; then
  mkdir -p bench-results
  OUT_FILE="bench-results/balancer-$RUN_ID.json"
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/balancer-bench.XXXXXX")
PIDS=()

# shellcheck source=scripts/bench/lib.sh
source "$ROOT_DIR/scripts/bench/lib.sh"
# Processes watched for an early death: name -> pid, log file; deaths recorded in DIED.
declare -A WATCH_PID=() WATCH_LOG=() DIED=()
watch() { WATCH_PID[$1]=$2; WATCH_LOG[$1]=$3; }
# check_alive PHASE: records (once) every watched process found dead, with its exit
# status (128 + signal when killed) and the tail of its log.
check_alive() {
  local name pid status
  for name in "${!WATCH_PID[@]}"; do
    [[ -n ${DIED[$name]:-} ]] && continue
    pid=${WATCH_PID[$name]}
    kill -0 "$pid" 2>/dev/null && continue
    wait "$pid" 2>/dev/null && status=0 || status=$?
    DIED[$name]="found dead after $1: exit status $status; log tail: $(tail -n 3 "${WATCH_LOG[$name]}" 2>/dev/null | tr '\n' ' ')"
    log "$name DIED: ${DIED[$name]}"
  done
}

origin_count() {  # origin_count PATH[?QUERY]
  local body
  body=$(curl -sS --max-time 10 "$ORIGIN_URL/__stats?path=$(sed 's/%/%25/g; s/?/%3F/g; s/&/%26/g; s/=/%3D/g' <<<"$1")" || true)
  sed -n 's/.*"count":\([0-9][0-9]*\).*/\1/p' <<<"$body"
}

LOAD_START=$(loadavg)
log "work dir $WORK; load average $LOAD_START on $(nproc) cores"

# ---------------------------------------------------------------- content
# live/index.m3u8: rewritten every 2 s by the writer below (temp file + mv, so a reader
# sees the old or the new version, never half of one). vod/: 10 segments + ENDLIST.
# static/: a live playlist (no ENDLIST) that never changes. far/: the playlist of (2),
# rewritten like live/ by a writer of its own.
mkdir -p "$WORK/root/live" "$WORK/root/vod" "$WORK/root/static" "$WORK/root/far"
media_playlist() {  # media_playlist FIRST_MSN ENDLIST(0|1)
  local i
  printf '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:%d\n' "$1"
  for ((i = $1; i < $1 + WINDOW; i++)); do printf '#EXTINF:2.000,\nseg%05d.ts\n' "$i"; done
  [[ $2 = 1 ]] && printf '#EXT-X-ENDLIST\n'
  return 0
}
media_playlist 1 1 >"$WORK/root/vod/index.m3u8"
media_playlist 500 0 >"$WORK/root/static/index.m3u8"

# The writer: prints "W <unix µs> <msn>" right after each mv. Updates are scheduled on an
# absolute 2 s grid from its start, so they do not drift.
cat >"$WORK/writer.sh" <<'EOF'
set -eu
dir=$1 interval_us=$2 msn=$3 window=$4
start=${EPOCHREALTIME/./}
k=0
while :; do
  {
    printf '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:%d\n' "$msn"
    for ((i = msn; i < msn + window; i++)); do printf '#EXTINF:2.000,\nseg%05d.ts\n' "$i"; done
  } >"$dir/.index.m3u8.tmp"
  mv -f "$dir/.index.m3u8.tmp" "$dir/index.m3u8"
  echo "W ${EPOCHREALTIME/./} $msn"
  k=$((k + 1))
  msn=$((msn + 1))
  d=$((start + k * interval_us - ${EPOCHREALTIME/./}))
  if ((d > 0)); then sleep "$(printf '%d.%06d' $((d / 1000000)) $((d % 1000000)))"; fi
done
EOF
spawn "$WORK/writer.log" bash "$WORK/writer.sh" "$WORK/root/live" "$UPDATE_US" 1000 "$WINDOW"
watch writer "$SPAWNED" "$WORK/writer.log"
spawn "$WORK/writer-far.log" bash "$WORK/writer.sh" "$WORK/root/far" "$UPDATE_US" 500 "$WINDOW"
watch writer_far "$SPAWNED" "$WORK/writer-far.log"
for ((i = 0; i < 100; i++)); do [[ -s $WORK/writer.log && -s $WORK/writer-far.log ]] && break; sleep 0.05; done

# ---------------------------------------------------------------- origin, cache node, balancer
spawn "$WORK/origin.out" "$TEST_ORIGIN" --host 127.0.0.1 --port 0 --root "$WORK/root"
watch test_origin "$SPAWNED" "$WORK/origin.out"
ORIGIN_PORT=$(wait_listening "$WORK/origin.out" 10 "$SPAWNED") || {
  echo "test_origin did not start:" >&2; cat "$WORK/origin.out" >&2; exit 1; }
ORIGIN_URL="http://127.0.0.1:$ORIGIN_PORT"
log "test_origin on port $ORIGIN_PORT"

# conf/*.json are relative to the project root.
# conf/*.json are relative to the project root.
cd "$ROOT_DIR"
mkdir -p "$WORK/cache_node/data"
spawn "$WORK/cache_node/log" "$CACHE_NODE" --config conf/cache_node.json --set listen.port=0 \
  --set data_dir="$WORK/cache_node/data" --set origins.demo.url="$ORIGIN_URL" \
  --set server.access_log=false --set server.max_connections=100000000 --set server.max_connections_per_address=0
watch cache_node "$SPAWNED" "$WORK/cache_node/log"
CACHE_PORT=$(wait_listening "$WORK/cache_node/log" 15 "$SPAWNED") || {
  echo "cache_node did not start:" >&2; tail -n 20 "$WORK/cache_node/log" >&2; exit 1; }
cd - >/dev/null
log "cache_node on port $CACHE_PORT"

mkdir -p "$WORK/balancer"
# (2)'s playlist: origin answers ORIGIN_DELAY_MS late (test_origin's delay_ms).
FAR_QUERY=""
((ORIGIN_DELAY_MS > 0)) && FAR_QUERY="?delay_ms=$ORIGIN_DELAY_MS"
cat >"$WORK/balancer/channels.json" <<JSON
{"channels":[
  {"id":"bench","origin":"demo","source":"/files/live/index.m3u8","free":true},
  {"id":"vod","origin":"demo","source":"/files/vod/index.m3u8","free":true},
  {"id":"static","origin":"demo","source":"/files/static/index.m3u8","free":true},
  {"id":"far","origin":"demo","source":"/files/far/index.m3u8$FAR_QUERY","free":true}
]}
JSON
cat >"$WORK/balancer/caches.json" <<JSON
{"caches":[{"id":"venue-a","site":"venue","url":"http://127.0.0.1:$CACHE_PORT","networks":[]}]}
JSON

# start_balancer NAME THREADS [--set key=value]...: a balancer from conf/balancer.json on an
# ephemeral port with the bench's channels and cache, access log off, room for a million
# viewers, no traffic limit and no per-address bound (every bench viewer comes from loopback
# and is admitted: a 503 "queued" or a 429 would be an
# error, not throughput). Waits until it lists the cache node as usable (signed links need
# it). Sets BAL_URL[NAME] and BAL_PID[NAME].
declare -A BAL_URL=() BAL_PID=()
MEDIA_PLAYLIST_SETS=$(media_playlist_sets "$BALANCER")
CACHE_USABLE=true
start_balancer() {
  local name=$1 threads=$2 port i
  shift 2
  cd "$ROOT_DIR"
  spawn "$WORK/balancer/$name.log" "$BALANCER" --config conf/balancer.json --set listen.port=0 \
    --set threads="$threads" --set channels_file="$WORK/balancer/channels.json" \
    --set caches_file="$WORK/balancer/caches.json" --set origins.demo.url="$ORIGIN_URL" \
    --set server.access_log=false --set server.max_connections=100000000 --set server.max_connections_per_address=0 --set limits.max_streams=1000000 --set playback.allow_anonymous=true \
    --set limits.max_traffic_mbps=0 --set limits.max_anonymous_per_address=0 \
    --set server.listen_backlog="$PEER_BACKLOG" $MEDIA_PLAYLIST_SETS "$@"
  cd - >/dev/null
  BAL_PID[$name]=$SPAWNED
  watch "$name" "$SPAWNED" "$WORK/balancer/$name.log"
  port=$(wait_listening "$WORK/balancer/$name.log" 15 "$SPAWNED") || {
    echo "$name did not start:" >&2; tail -n 20 "$WORK/balancer/$name.log" >&2; exit 1; }
  BAL_URL[$name]="http://127.0.0.1:$port"
  # The cache node becomes usable after health.up_after polls (1 s apart).
  for ((i = 0; i < 200; i++)); do
    curl -sS --max-time 2 "${BAL_URL[$name]}/health" 2>/dev/null | grep -q '"usable":true' && break
    sleep 0.05
  done
  if ((i == 200)); then
    CACHE_USABLE=false
    log "WARNING: $name never listed the cache node as usable: $(curl -sS --max-time 2 "${BAL_URL[$name]}/health" || true)"
  fi
  log "$name (threads: $threads) on port $port"
}
# Admitted viewers of a balancer, from its /health (the first "viewers" is the process total).
admitted() { curl -sS --max-time 5 "$1/health" 2>/dev/null | grep -o '"viewers":[0-9]*' | head -n1 | cut -d: -f2; }

BAL_NAMES=()
for t in $BAL_THREAD_COUNTS; do
  start_balancer "balancer_t$t" "$t"
  BAL_NAMES+=("balancer_t$t")
done
# The freshness part polls the last one (threads: 2 by default, one loop per core here).
FRESH_BAL=${BAL_NAMES[-1]}
BAL_URL_FRESH=${BAL_URL[$FRESH_BAL]}
conf_value() { sed -n "s/.*\"$1\": *\\([0-9]*\\).*/\\1/p" "$ROOT_DIR/conf/balancer.json"; }
BAL_NOTE="conf/balancer.json (live_max_lag_ms $(conf_value live_max_lag_ms), live_refresh_ms $(conf_value live_refresh_ms)) with threads ${BAL_THREAD_COUNTS// /, }, limits.max_streams 1000000, limits.max_traffic_mbps 0, access log off, listen_backlog $PEER_BACKLOG (somaxconn $(cat /proc/sys/net/core/somaxconn 2>/dev/null || echo '?')); one cache node (conf/cache_node.json)"

# ---------------------------------------------------------------- peers
declare -A PEER_SKIP=() PEER_NOTE=()
NGINX_URL="" VARNISH_URL=""
MICRO_CONF='proxy_cache_valid 200 1s; proxy_cache_lock on; proxy_ignore_headers Cache-Control Expires;'
SWR_CONF="$MICRO_CONF proxy_cache_use_stale updating error timeout; proxy_cache_background_update on;"

# One nginx, worker_processes auto (one per core): playlist micro-caches for (1), the
# source playlists as static files for (2).
start_nginx() {
  local port
  port=$(free_port)
  start_nginx_in "$WORK/nginx" "$NGINX_WORKERS" "$port" "
  proxy_cache_path cache levels=1:2 keys_zone=micro:8m max_size=64m inactive=60m use_temp_path=off;
  upstream origin {
    server 127.0.0.1:$ORIGIN_PORT;
    keepalive 32;
  }
  server {
    listen 127.0.0.1:$port $NGINX_LISTEN;
    # A typical playlist micro-cache. origin sends \"Cache-Control: no-cache\", which nginx
    # would obey (no caching at all), hence proxy_ignore_headers.
    location /files/ {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_cache micro;
      $MICRO_CONF
      add_header X-Cache-Status \$upstream_cache_status;
    }
    # The same with stale-while-revalidate.
    location /swr/ {
      proxy_pass http://origin/;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_cache micro;
      $SWR_CONF
      add_header X-Cache-Status \$upstream_cache_status;
    }
    # The source playlists as static files.
    location /static/ {
      alias $WORK/root/;
    }
  }" || { PEER_SKIP[nginx]=$NGINX_ERROR; return; }
  NGINX_URL="http://127.0.0.1:$port"
  watch nginx "$NGINX_PID" "$WORK/nginx/error.log"
  PEER_NOTE[nginx]="$NGINX_VERSION ($(nproc) cores): $NGINX_TUNING"
}

start_varnish() {
  local varnishd dir port
  varnishd=$(find_bin varnishd)
  if [[ -z $varnishd ]]; then
    PEER_SKIP[varnish]="varnishd not installed (apt-get install varnish)"
    return
  fi
  dir="$WORK/varnish"
  port=$(free_port)
  mkdir -p "$dir"
  cat >"$dir/bench.vcl" <<EOF
vcl 4.1;
backend origin { .host = "127.0.0.1"; .port = "$ORIGIN_PORT"; }
sub vcl_backend_response {
  # 1 s micro-cache whatever origin says: return (deliver) skips the built-in rule that
  # makes "Cache-Control: no-cache" responses uncacheable. Grace stays at its default.
  set beresp.ttl = 1s;
  return (deliver);
}
EOF
  # -j none: no privilege separation, so it runs the same as root or not. Tuned as lib.sh's
  # varnish_tuning says (one pool per balancer loop; it serves the freshness polls only).
  varnish_tuning "${BAL_THREAD_COUNTS##* }" 1000
  spawn "$dir/out" "$varnishd" -F -j none -a "127.0.0.1:$port" -f "$dir/bench.vcl" \
    -n "$dir/n" -s malloc,64m "${VARNISH_TUNING[@]}"
  if ! wait_tcp "$port" 30 "$SPAWNED"; then
    PEER_SKIP[varnish]="failed to start: $(tail -n 5 "$dir/out" | tr '\n' ' ')"
    return
  fi
  VARNISH_URL="http://127.0.0.1:$port"
  watch varnish "$SPAWNED" "$dir/out"
  PEER_NOTE[varnish]="$("$varnishd" -V 2>&1 | head -n1 | sed 's/^varnishd (\(varnish-[^ ]*\).*/\1/'), VCL: beresp.ttl = 1s + return (deliver) (origin's no-cache ignored), default grace (10 s), -s malloc,64m, $VARNISH_TUNING_NOTE"
}

for peer in $WANTED_PEERS; do
  case "$peer" in
    nginx) start_nginx ;;
    varnish) start_varnish ;;
    *) echo "unknown peer $peer in BENCH_PEERS" >&2; exit 2 ;;
  esac
  if [[ -n ${PEER_SKIP[$peer]:-} ]]; then
    log "SKIP $peer: ${PEER_SKIP[$peer]}"
  else
    log "$peer ready (${PEER_NOTE[$peer]})"
  fi
done

# ---------------------------------------------------------------- (1) freshness
LIVE_PATH=/files/live/index.m3u8
# name|url|origin path+query it causes (empty: the balancer, whose requests are
# counted as the rest)|config
FRESH_PEERS=()
FRESH_PEERS+=("origin|$ORIGIN_URL$LIVE_PATH?via=direct|$LIVE_PATH?via=direct|direct, no cache")
FRESH_PEERS+=("balancer|$BAL_URL_FRESH/hls/bench$LIVE_PATH?cache=venue-a&viewer=fresh||background refresh")
if [[ -n $NGINX_URL ]]; then
  FRESH_PEERS+=("nginx|$NGINX_URL$LIVE_PATH?via=nginx|$LIVE_PATH?via=nginx|$MICRO_CONF")
  FRESH_PEERS+=("nginx_swr|$NGINX_URL/swr$LIVE_PATH?via=nginx_swr|$LIVE_PATH?via=nginx_swr|$SWR_CONF")
fi
if [[ -n $VARNISH_URL ]]; then
  FRESH_PEERS+=("varnish|$VARNISH_URL$LIVE_PATH?via=varnish|$LIVE_PATH?via=varnish|beresp.ttl = 1s, no-cache ignored, default grace 10 s")
fi

# poll.sh URL SECONDS PER_S CONFIG: GETs URL PER_S times a second (curl --rate, one
# keep-alive connection) for SECONDS; prints "<unix µs> #EXT-X-MEDIA-SEQUENCE:N" for
# every body and "<unix µs> @@ <status>" after every response, stamped on arrival.
cat >"$WORK/poll.sh" <<'EOF'
set -u
url=$1 seconds=$2 per_s=$3 cfg=$4 use_rate=$5
stamp() { while IFS= read -r line; do printf '%s %s\n' "${EPOCHREALTIME/./}" "$line"; done; }
if [[ $use_rate = 1 ]]; then
  n=$(((seconds + 5) * per_s))
  for ((i = 0; i < n; i++)); do printf 'url = "%s"\n' "$url"; done >"$cfg"
  timeout "$seconds" curl -sS -N --rate "$per_s/s" --max-time 5 -K "$cfg" -w '\n@@ %{http_code}\n' |
    grep --line-buffered -E '^(#EXT-X-MEDIA-SEQUENCE:|@@ )' | stamp
else
  # Old curl without --rate: one process per poll (more overhead, same output).
  end=$((${EPOCHREALTIME/./} + seconds * 1000000)) gap=$((1000000 / per_s))
  while ((${EPOCHREALTIME/./} < end)); do
    t=${EPOCHREALTIME/./}
    curl -sS --max-time 5 -w '\n@@ %{http_code}\n' "$url" | grep -E '^(#EXT-X-MEDIA-SEQUENCE:|@@ )' | stamp
    d=$((t + gap - ${EPOCHREALTIME/./}))
    ((d > 0)) && sleep "0.$(printf '%06d' "$d")"
  done
fi
exit 0
EOF

# lag.awk: writer log, origin poll log, peer poll log -> one line of key=value.
# An update counts if it was written in [t0, t1 - 2 s] (every peer had time to show it).
cat >"$WORK/lag.awk" <<'EOF'
function sort(a, n,    i, j, v) {
  for (i = 2; i <= n; i++) { v = a[i]; for (j = i - 1; j >= 1 && a[j] > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
}
function pct(a, n, p,    k) { if (n == 0) return "n/a"; k = int(n * p / 100); if (k < n * p / 100) k++; if (k < 1) k = 1; return sprintf("%.0f", a[k]) }
FNR == 1 { fi++ }
fi == 1 { if ($1 == "W") w[$3 + 0] = $2; next }
$2 ~ /^#EXT-X-MEDIA-SEQUENCE:/ {
  m = substr($2, 23) + 0
  if (fi == 2) { if (!(m in o)) o[m] = $1 }
  else { if (!(m in p)) p[m] = $1; if (m > pmax) pmax = m }
  next
}
fi == 3 && $2 == "@@" { polls++; if ($3 != "200") errors++ }
END {
  for (m in w) {
    if (w[m] < t0 || w[m] > t1 - interval || !(m in o)) continue
    considered++
    if (m in p) {
      observed++
      lag[observed] = (p[m] - o[m]) / 1000
      wlag[observed] = (p[m] - w[m]) / 1000
    } else if (pmax > m) skipped++
    else unseen++
  }
  sort(lag, observed); sort(wlag, observed)
  printf "considered=%d observed=%d skipped=%d unseen=%d lag_p50=%s lag_max=%s wlag_p50=%s wlag_max=%s polls=%d errors=%d\n",
    considered, observed, skipped, unseen, pct(lag, observed, 50), pct(lag, observed, 100),
    pct(wlag, observed, 50), pct(wlag, observed, 100), polls, errors
}
EOF

# Warm-up: one request each (starts the balancer's background refresh, fills caches).
for entry in "${FRESH_PEERS[@]}"; do
  IFS='|' read -r name url _ _ <<<"$entry"
  status=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$url" || echo 000)
  [[ $status = 200 ]] || log "WARNING: warm-up of $name answered $status"
done
sleep 0.3

# Origin requests for the live playlist: the balancer's are the total minus the others'
# (every peer but the balancer adds its own ?via= query, counted separately by test_origin).
# Prints "name=N ..." (nothing after "=" when origin did not answer).
origin_counts() {
  local total others=0 entry name opath c
  total=$(origin_count "$LIVE_PATH")
  for entry in "${FRESH_PEERS[@]}"; do
    IFS='|' read -r name _ opath _ <<<"$entry"
    [[ -n $opath ]] || continue
    c=""
    [[ -n $total ]] && c=$(origin_count "$opath")
    printf '%s=%s ' "$name" "$c"
    others=$((others + ${c:-0}))
  done
  [[ -n $total ]] && printf 'balancer=%s\n' $((total - others)) || printf 'balancer=\n'
}
COUNTS_BEFORE=$(origin_counts)
LOAD_FRESH=$(loadavg)
log "(1) freshness: polling ${#FRESH_PEERS[@]} peers every $((1000 / POLL_PER_S)) ms for ${FRESH_SECONDS}s (load $LOAD_FRESH)"
POLL_PIDS=()
T0=$(now_us)
for entry in "${FRESH_PEERS[@]}"; do
  IFS='|' read -r name url _ _ <<<"$entry"
  spawn "$WORK/poll-$name.log" bash "$WORK/poll.sh" "$url" "$FRESH_SECONDS" "$POLL_PER_S" \
    "$WORK/poll-$name.curl" "$CURL_RATE"
  POLL_PIDS+=("$SPAWNED")
done
for pid in "${POLL_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
T1=$((T0 + FRESH_SECONDS * 1000000))
FRESH_END=$SECONDS
check_alive "the freshness run"
# Where in the wall-clock second the updates land (nginx's cache validity counts whole
# seconds, so its lag depends on it).
UPDATE_PHASE_MS=$(awk -v t0="$T0" '$1 == "W" && $2 >= t0 { printf "%d", ($2 % 1000000) / 1000; exit }' "$WORK/writer.log")
COUNTS_AFTER=$(origin_counts)

count_of() { sed -n "s/.*\\b$2=\\([-0-9]*\\).*/\\1/p" <<<"$1" | head -n1; }
T_FRESH=()
J_FRESH=()
BAL_LAG_MAX=""
for entry in "${FRESH_PEERS[@]}"; do
  IFS='|' read -r name url opath conf <<<"$entry"
  stats=$(awk -v t0="$T0" -v t1="$T1" -v interval="$UPDATE_US" -f "$WORK/lag.awk" \
    "$WORK/writer.log" "$WORK/poll-origin.log" "$WORK/poll-$name.log")
  declare -A S=()
  for kv in $stats; do S[${kv%%=*}]=${kv#*=}; done
  before=$(count_of "$COUNTS_BEFORE" "$name")
  after=$(count_of "$COUNTS_AFTER" "$name")
  oreq=n/a
  [[ -n $before && -n $after ]] && oreq=$((after - before))
  [[ $name = balancer ]] && BAL_LAG_MAX=${S[lag_max]}
  T_FRESH+=("$(printf '%-10s %5s/%-3s %5s %8s %8s %9s %9s %6s %6s %8s' "$name" "${S[observed]}" \
    "${S[considered]}" "$((S[skipped] + S[unseen]))" "${S[lag_p50]}" "${S[lag_max]}" \
    "${S[wlag_p50]}" "${S[wlag_max]}" "${S[polls]}" "${S[errors]}" "$oreq")")
  J_FRESH+=("{\"peer\":\"$name\",\"config\":$(json_str "$conf"),\"updates_considered\":${S[considered]},\"updates_observed\":${S[observed]},\"updates_skipped\":${S[skipped]},\"updates_unseen\":${S[unseen]},\"lag_vs_origin_ms\":{\"p50\":$(num_or_null "${S[lag_p50]}"),\"max\":$(num_or_null "${S[lag_max]}")},\"lag_vs_write_ms\":{\"p50\":$(num_or_null "${S[wlag_p50]}"),\"max\":$(num_or_null "${S[wlag_max]}")},\"polls\":${S[polls]},\"non_200\":${S[errors]},\"origin_requests\":$(num_or_null "$oreq")}")
  unset S
done

# Balancer's own timeline of the update with the largest lag, for the report: when was
# it written, when did origin and the balancer first show it.
BAL_DETAIL=$(awk -v t0="$T0" -v t1="$T1" -v interval="$UPDATE_US" '
  FNR == 1 { fi++ }
  fi == 1 { if ($1 == "W") w[$3 + 0] = $2; next }
  $2 ~ /^#EXT-X-MEDIA-SEQUENCE:/ { m = substr($2, 23) + 0
    if (fi == 2) { if (!(m in o)) o[m] = $1 } else { if (!(m in p)) p[m] = $1 } }
  END { best = -1
    for (m in w) if (w[m] >= t0 && w[m] <= t1 - interval && (m in o) && (m in p) && p[m] - o[m] > best) { best = p[m] - o[m]; bm = m }
    if (best >= 0) printf "msn %d: written +%.0f ms, origin showed it +%.0f ms, balancer +%.0f ms (from the start of polling)", bm, (w[bm] - t0) / 1000, (o[bm] - t0) / 1000, (p[bm] - t0) / 1000 }' \
  "$WORK/writer.log" "$WORK/poll-origin.log" "$WORK/poll-balancer.log")

# ---------------------------------------------------------------- (2) throughput
WRK=$(command -v wrk || true)
WRK_NOTE=""
T_WRK=()
J_WRK=()
T_CHECK=()
T_SYSCALLS=()
J_CHECK=()
declare -A VS=() RWAIT_SUM=()
CONNS_FITTED=()
J_MEDIAN=()
# viewers.lua: wrk -s viewers.lua URL -- COUNT PREFIX [THREADS], URL ending in "viewer=".
# Without THREADS: every wrk thread goes round the ids PREFIX1 .. PREFIX<COUNT> (COUNT
# distinct viewers), each from its own starting point. With THREADS (wrk's -t): thread t
# asks for PREFIX<t>-1, PREFIX<t>-2, ... up to its share, ceil(COUNT / THREADS), then goes
# round its own ids again: each id a new viewer the first time, a refresh after that.
cat >"$WORK/viewers.lua" <<'LUA'
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  count, prefix, per_thread = tonumber(args[1]), args[2], args[3] ~= nil
  if per_thread then
    count = math.ceil(count / tonumber(args[3]))
    prefix = prefix .. tid .. "-"
    n = 0
  else
    n = ((tid - 1) * 389) % count
  end
end
function request()
  n = n % count + 1
  return wrk.format(nil, wrk.path .. prefix .. n)
end
LUA
# (3), (4): an unchanging live media playlist (10 segments, no ENDLIST), which the
# balancer serves from its background-refreshed copy; nginx serves the same file.
BAL_PLAYLIST="/hls/static/files/static/index.m3u8?cache=venue-a&viewer="
NGINX_PLAYLIST="/static/static/index.m3u8?viewer="
# (2): the same shape rewritten every BENCH_UPDATE_MS, at an origin ORIGIN_DELAY_MS away.
FAR_PLAYLIST="/hls/far/files/far/index.m3u8${FAR_QUERY:-?}${FAR_QUERY:+&}cache=venue-a&viewer="
NGINX_FAR_PLAYLIST="/static/far/index.m3u8?viewer="
SOURCE_BYTES=$(wc -c <"$WORK/root/far/index.m3u8")
# Viewers who waited for an origin fetch of a live copy the balancer had (its /metrics).
refresh_waits() {
  curl -sS --max-time 5 "$1/metrics" 2>/dev/null |
    sed -n 's/^balancer_playlist_refresh_waits_total \([0-9.e+]*\)$/\1/p' | head -n1
}

if [[ -z $WRK ]]; then
  WRK_NOTE="wrk not installed (apt-get install wrk): throughput and memory skipped"
  log "SKIP (2), (3): $WRK_NOTE"
else
  # Check each balancer's answer once: status, size, signed links to the cache node.
  for name in "${BAL_NAMES[@]}"; do
    check=$(curl -sS --max-time 10 -D "$WORK/check-$name.h" -o "$WORK/check-$name.body" \
      -w '%{http_code} %{size_download}' "${BAL_URL[$name]}${FAR_PLAYLIST}check" || echo "000 0")
    status=${check% *}
    bytes=${check#* }
    signed=$(grep -c "^http://127.0.0.1:$CACHE_PORT/o/demo/files/.*bsig=" "$WORK/check-$name.body" 2>/dev/null || true)
    choice=$(sed -n 's/^[Xx]-[Cc]ache-[Cc]hoice: *\([^[:space:]]*\).*/\1/p' "$WORK/check-$name.h" | head -n1)
    ((${signed:-0} == WINDOW)) || log "WARNING: $name: not the rewritten playlist with $WINDOW signed cache-node links (status $status, X-Cache-Choice: ${choice:-none})"
    T_CHECK+=("$(printf '    %-12s status %s, %s bytes (source %s), %s signed links to the cache node' "$name" "$status" "$bytes" "$SOURCE_BYTES" "${signed:-0}")")
    J_CHECK+=("{\"balancer\":\"$name\",\"status\":$((10#$status)),\"response_bytes\":$bytes,\"source_bytes\":$SOURCE_BYTES,\"signed_links\":${signed:-0},\"cache_choice\":$(json_str "$choice")}")
  done

  # name|balancer threads (empty: nginx)|url
  ROWS=()
  [[ -n $NGINX_URL ]] && ROWS+=("nginx_static||$NGINX_URL$NGINX_FAR_PLAYLIST")
  for name in "${BAL_NAMES[@]}"; do
    ROWS+=("$name|${name#balancer_t}|${BAL_URL[$name]}$FAR_PLAYLIST")
  done
  # throughput_run NAME THREADS URL CONNS ROUND: one measured wrk run after a 1 s warm-up;
  # its figures go to R_* (keyed NAME/CONNS/ROUND), the ratio is made once the round is over.
  declare -A R_RPS=() R_PROBLEM=() R_LINE=() R_JSON=()
  throughput_run() {
    local name=$1 threads=$2 url=$3 conns=$4 round=$5 load bal_cpu=- adm=- us_per_req=- \
      user_kernel=- rwait=- server_pid rwait0="" rwait1 cpu0 user0 kernel0 loops0="" loops=- \
      t_start perf_pid="" user_us=n/a kernel_us=n/a key=$1/$4/$5
    # 1 s warm-up (connections, allocator, admission of the viewers), not measured.
    run_wrk 1 "$conns" "$url" "$WORK/viewers.lua" "$VIEWERS" v >/dev/null
    load=$(loadavg)
    log "(2) round $round: wrk $name, $conns connections, for ${WRK_SECONDS}s (load $load)"
    server_pid=${BAL_PID[$name]:-$NGINX_PID}
    [[ -n $threads ]] && rwait0=$(refresh_waits "${BAL_URL[$name]}")
    cpu0=$(tree_cpu_ticks "$server_pid")
    read -r user0 kernel0 < <(tree_user_kernel_ticks "$server_pid")
    [[ -n $threads ]] && loops0=$(loop_ticks "$server_pid")
    t_start=$(now_us)
    if [[ -n $threads && $PERF_DIR ]]; then
      perf record -q -e cpu-clock -F 999 -g -p "${BAL_PID[$name]}" -o "$PERF_DIR/$name-c$conns-r$round.data" \
        -- sleep "$WRK_SECONDS" >/dev/null 2>&1 &
      perf_pid=$!
    fi
    [[ $COUNT_SYSCALLS = 1 ]] && syscall_count_start "$server_pid" "$WORK/syscalls.csv" "$WRK_SECONDS"
    run_wrk "$WRK_SECONDS" "$conns" "$url" "$WORK/viewers.lua" "$VIEWERS" v
    if [[ $COUNT_SYSCALLS = 1 ]]; then
      wait "$SYSCALL_COUNT_PID" 2>/dev/null || true
      [[ ${W_RPS:-0} =~ ^[0-9.]+$ ]] && T_SYSCALLS+=("$(printf '    %-13s %5s %3s  %s' "$name" "$conns" "$round" \
        "$(syscalls_per_response "$WORK/syscalls.csv" "$(awk -v r="$W_RPS" -v s="$WRK_SECONDS" 'BEGIN { print r * s }')")")")
    fi
    if [[ $perf_pid ]]; then
      wait "$perf_pid" 2>/dev/null || true
      perf report -i "$PERF_DIR/$name-c$conns-r$round.data" --no-children --sort dso,sym --stdio 2>/dev/null \
        | grep -v '^$' | head -n 400 >"$PERF_DIR/$name-c$conns-r$round.txt" || true
    fi
    check_alive "wrk $name c$conns round $round"
    # The server's CPU time during the run, in % of one core, and per good response.
    bal_cpu=$(awk -v a="$cpu0" -v b="$(tree_cpu_ticks "$server_pid")" -v hz="$CLK_TCK" \
      -v us=$(($(now_us) - t_start)) 'BEGIN { printf "%.0f", (b - a) / hz * 100 / (us / 1000000) }')
    user_kernel=$(user_kernel_us "$server_pid" "$user0" "$kernel0" "${W_RPS:-0}" "$t_start")
    [[ -n $loops0 ]] && loops=$(loop_busy "$loops0" "$(loop_ticks "$server_pid")" $(($(now_us) - t_start)))
    [[ ${W_RPS:-0} =~ ^[0-9.]+$ ]] && awk -v r="$W_RPS" 'BEGIN { exit !(r > 0) }' &&
      us_per_req=$(awk -v c="$bal_cpu" -v r="$W_RPS" 'BEGIN { printf "%.1f", c / 100 * 1e6 / r }')
    [[ $user_kernel = */* ]] && user_us=${user_kernel%/*} kernel_us=${user_kernel#*/}
    if [[ -n $threads ]]; then
      adm=$(admitted "${BAL_URL[$name]}")
      rwait1=$(refresh_waits "${BAL_URL[$name]}")
      rwait=n/a
      [[ -n $rwait0 && -n $rwait1 ]] && rwait=$(awk -v a="$rwait0" -v b="$rwait1" 'BEGIN { printf "%.0f", b - a }')
    fi
    [[ $W_FLAG = ok ]] || log "WARNING: $name c$conns round $round: INVALID run, $W_PROBLEM"
    R_RPS[$key]=$W_RPS
    R_PROBLEM[$key]=$W_PROBLEM
    RWAIT[$key]=$rwait
    # The row, with %VS% standing for the ratio, filled in after the round.
    R_LINE[$key]=$(printf '%-13s %5s %3s %10s %8s %8s %9s %8s %6s %8s %8s %8s %11s %9s %5s  %s' "$name" "$conns" "$round" "${W_RPS:-n/a}" \
      "$W_P50" "$W_P99" "${W_NON2XX}/${W_SOCKERR}" "%VS%" "$rwait" "${adm:-?}" "$bal_cpu" "$us_per_req" "$user_kernel" "$loops" "${load%% *}" "$W_FLAG")
    R_JSON[$key]="{\"row\":\"$name\",\"round\":$round,\"balancer_threads\":$(num_or_null "$threads"),\"connections\":$conns,\"viewers\":$VIEWERS,$(wrk_json),\"problem\":$(json_str "$W_PROBLEM"),\"ratio_to_nginx_static\":%VSJ%,\"refresh_waits\":$(num_or_null "${rwait/-/}"),\"admitted_viewers_after\":$(num_or_null "${adm/-/}"),\"server_cpu_pct_of_one_core\":$(num_or_null "${bal_cpu/-/}"),\"server_cpu_us_per_response\":$(num_or_null "${us_per_req/-/}"),\"server_user_us_per_response\":$(num_or_null "$user_us"),\"server_kernel_us_per_response\":$(num_or_null "$kernel_us"),\"loop_busy_pct\":$(json_str "${loops/#-/}"),\"loadavg_before\":$(json_str "$load")}"
  }

  declare -A RWAIT=() MEDIAN=()
  for asked in $CONNECTIONS; do
    conns=$(fit_connections "$asked")
    ((conns == asked)) || log "(2) $asked connections do not fit the open-file limit ($(ulimit -n)): $conns instead"
    CONNS_FITTED+=("$conns")
    for ((round = 1; round <= ROUNDS; round++)); do
      order=("${ROWS[@]}")
      if ((round % 2 == 0)); then  # ABBA: the servers' order reversed every other round
        order=()
        for ((i = ${#ROWS[@]} - 1; i >= 0; i--)); do order+=("${ROWS[i]}"); done
      fi
      for entry in "${order[@]}"; do
        IFS='|' read -r name threads url <<<"$entry"
        throughput_run "$name" "$threads" "$url" "$conns" "$round"
      done
      # The round's ratios, in the table's order (nginx_static first).
      for entry in "${ROWS[@]}"; do
        IFS='|' read -r name threads url <<<"$entry"
        key=$name/$conns/$round
        vs=- vsj=null
        if [[ -n $threads && -n $NGINX_URL ]]; then
          checked_ratio "c$conns round $round, $name vs nginx_static" "$name" "${R_RPS[$key]}" "${R_PROBLEM[$key]}" \
            nginx_static "${R_RPS[nginx_static/$conns/$round]}" "${R_PROBLEM[nginx_static/$conns/$round]}"
          vs=$CHECKED_RATIO
          [[ $vs =~ ^[0-9.]+$ ]] && vsj=$vs
          VS[$key]=$vs
        fi
        T_WRK+=("${R_LINE[$key]/\%VS\%/$(printf '%8s' "$vs")}")
        J_WRK+=("${R_JSON[$key]/\%VSJ\%/$vsj}")
      done
    done
    # The median of the rounds' ratios, when every round was valid.
    for entry in "${ROWS[@]}"; do
      IFS='|' read -r name threads url <<<"$entry"
      [[ -n $threads && -n $NGINX_URL ]] || continue
      vals=() bad=0 waits=0
      for ((round = 1; round <= ROUNDS; round++)); do
        v=${VS[$name/$conns/$round]:-n/a}
        [[ $v =~ ^[0-9.]+$ ]] && vals+=("$v") || bad=$((bad + 1))
        w=${RWAIT[$name/$conns/$round]:-0}
        [[ $w =~ ^[0-9]+$ ]] && waits=$((waits + w))
      done
      if ((bad > 0)); then
        MEDIAN[$name/$conns]="INVALID ($bad of $ROUNDS rounds without a ratio)"
      else
        MEDIAN[$name/$conns]=$(printf '%s\n' "${vals[@]}" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : sprintf("%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2) }')
      fi
      RWAIT_SUM[$name/$conns]=$waits
      J_MEDIAN+=("{\"row\":\"$name\",\"connections\":$conns,\"rounds\":$ROUNDS,\"median_ratio_to_nginx_static\":$(num_or_null "$(awk -v m="${MEDIAN[$name/$conns]}" 'BEGIN { if (m ~ /^[0-9.]+$/) print m }')"),\"verdict\":$(json_str "${MEDIAN[$name/$conns]}"),\"refresh_waits_all_rounds\":$waits}")
    done
  done
fi
# ---------------------------------------------------------------- (1b) after an idle period
# Nobody asked for the live playlist since the freshness run ended: the balancer stopped
# refreshing (playlists.live_idle_s), caches hold an old copy. One request each.
wait_idle=$((IDLE_SECONDS - (SECONDS - FRESH_END)))
((wait_idle > 0)) && { log "(1b) waiting ${wait_idle}s more of idle time"; sleep "$wait_idle"; }
IDLE_FOR=$((SECONDS - FRESH_END))
COUNTS_IDLE=$(origin_counts)
T_IDLE=()
J_IDLE=()
probe() {  # probe URL -> "<msn> <status> <ms>"
  local r msn
  rm -f "$WORK/probe.body"
  r=$(curl -sS --max-time 10 -o "$WORK/probe.body" -w '%{http_code} %{time_total}' "$1" 2>/dev/null) || true
  [[ $r =~ ^[0-9]{3}\ [0-9.]+$ ]] || r="000 0"
  msn=$(sed -n 's/^#EXT-X-MEDIA-SEQUENCE:\([0-9]*\).*/\1/p' "$WORK/probe.body" | head -n1)
  awk -v m="${msn:-n/a}" -v s="${r% *}" -v t="${r#* }" 'BEGIN { printf "%s %s %.0f", m, s, t * 1000 }'
}
for entry in "${FRESH_PEERS[@]}"; do
  IFS='|' read -r name url _ _ <<<"$entry"
  read -r msn status ms <<<"$(probe "$url")"
  now=$(now_us)
  latest=$(awk '$1 == "W" { m = $3 } END { print m }' "$WORK/writer.log")
  behind=n/a age=n/a
  if [[ $msn =~ ^[0-9]+$ ]]; then
    behind=$((latest - msn))
    # How long ago this copy stopped being current (0 when it is the latest).
    age=$(awk -v m="$msn" -v now="$now" '$1 == "W" && $3 == m + 1 { printf "%.1f", (now - $2) / 1000000; f = 1 } END { if (!f) print 0 }' "$WORK/writer.log")
  fi
  T_IDLE+=("$(printf '%-10s %7s %7s %7s %8s %7s' "$name" "$status" "$msn" "$behind" "$age" "$ms")")
  J_IDLE+=("{\"peer\":\"$name\",\"status\":$status,\"media_sequence\":$(num_or_null "$msn"),\"latest_written\":$latest,\"updates_behind\":$(num_or_null "$behind"),\"outdated_for_s\":$(num_or_null "$age"),\"response_ms\":$ms}")
done
idle_after=$(count_of "$COUNTS_IDLE" balancer)
idle_before=$(count_of "$COUNTS_AFTER" balancer)
BAL_IDLE_REQ=null
[[ -n $idle_after && -n $idle_before ]] && BAL_IDLE_REQ=$((idle_after - idle_before))
check_alive "the idle probe"
LOAD_END=$(loadavg)

# ---------------------------------------------------------------- (3) memory per viewer
# A fresh balancer (slots kept for an hour, so no viewer expires during the run). Warm-up:
# 1000 viewers on the same connections, so that buffers, rendered copies and the allocator's
# arenas exist before the baseline. Then RSS_VIEWERS new viewers (every request a new id
# until each wrk thread used its share), VmRSS and admitted viewers before and after.
RSS_NOTE=""
RSS_ROW=""
RSS_JSON=null
RSS_PER_VIEWER=""
[[ $RSS_VIEWERS = 0 ]] && RSS_NOTE="BENCH_RSS_VIEWERS=0: skipped"
if [[ -n $WRK && $RSS_VIEWERS != 0 ]]; then
  start_balancer balancer_rss "$RSS_THREADS" --set limits.idle_timeout_s=3600
  url="${BAL_URL[balancer_rss]}$BAL_PLAYLIST"
  pid=${BAL_PID[balancer_rss]}
  conns=${CONNECTIONS%% *}
  run_wrk 2 "$conns" "$url" "$WORK/viewers.lua" 1000 warm >/dev/null
  sleep 1
  rss0=$(rss_kib "$pid") v0=$(admitted "${BAL_URL[balancer_rss]}")
  want=$((v0 + WRK_THREADS * ((RSS_VIEWERS + WRK_THREADS - 1) / WRK_THREADS)))
  log "(3) $RSS_VIEWERS new viewers through balancer_rss (threads: $RSS_THREADS; VmRSS ${rss0} KiB with $v0 viewers)"
  t_start=$(now_us)
  "$WRK" -t"$WRK_THREADS" -c"$conns" -d600s --latency -s "$WORK/viewers.lua" "$url" \
    -- "$RSS_VIEWERS" rss "$WRK_THREADS" >"$WORK/rss-wrk.out" 2>&1 &
  wrk_pid=$!
  PIDS+=("$wrk_pid")
  # Until every new viewer is in, wrk has gone, or the count stops growing for 10 s.
  v=$v0 last=$v0 still=$SECONDS
  while kill -0 "$wrk_pid" 2>/dev/null && ((v < want && SECONDS - still < 10)); do
    sleep 0.2
    v=$(admitted "${BAL_URL[balancer_rss]}")
    v=${v:-$last}
    ((v != last)) && { last=$v; still=$SECONDS; }
  done
  drive_s=$(awk -v us=$(($(now_us) - t_start)) 'BEGIN { printf "%.1f", us / 1000000 }')
  kill -INT "$wrk_pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$wrk_pid" 2>/dev/null || break; sleep 0.05; done
  kill -TERM "$wrk_pid" 2>/dev/null || true
  wait "$wrk_pid" 2>/dev/null || true
  W_OUT=$(cat "$WORK/rss-wrk.out")
  wrk_parse
  check_alive "the memory run"
  sleep 1
  rss1=$(rss_kib "$pid") v1=$(admitted "${BAL_URL[balancer_rss]}")
  added=$((${v1:-0} - ${v0:-0}))
  ((${v1:-0} >= want)) || RSS_NOTE="only $added of $RSS_VIEWERS new viewers admitted"
  [[ $W_FLAG = ok ]] || RSS_NOTE="${RSS_NOTE:+$RSS_NOTE; }wrk: $W_FLAG"
  [[ -n $RSS_NOTE ]] && log "WARNING: (3) $RSS_NOTE"
  if [[ -n $rss0 && -n $rss1 ]] && ((added > 0)); then
    RSS_PER_VIEWER=$(awk -v a="$rss0" -v b="$rss1" -v n="$added" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
  fi
  RSS_ROW=$(printf '%-13s %7s %9s %9s %9s %9s %8s %7s %10s' balancer_rss "$RSS_THREADS" "${v0:-?}" \
    "${v1:-?}" "${rss0:-?}" "${rss1:-?}" "${RSS_PER_VIEWER:-n/a}" "$drive_s" \
    "$(awk -v n="$added" -v s="$drive_s" 'BEGIN { if (s > 0) printf "%.0f", n / s }')")
  RSS_JSON="{\"balancer_threads\":$RSS_THREADS,\"connections\":$conns,\"new_viewers_asked\":$RSS_VIEWERS,\"admitted_before\":$(num_or_null "$v0"),\"admitted_after\":$(num_or_null "$v1"),\"vmrss_kib_before\":$(num_or_null "$rss0"),\"vmrss_kib_after\":$(num_or_null "$rss1"),\"bytes_per_viewer\":$(num_or_null "$RSS_PER_VIEWER"),\"drive_seconds\":$drive_s,$(wrk_json),\"note\":$(json_str "$RSS_NOTE")}"
fi

# ---------------------------------------------------------------- (4) memory per connection
# A fresh balancer (threads: 2) and a fresh nginx serving the source file, one viewer's
# playlist answered once, then N idle keep-alive connections and N busy ones
# (connection_memory, lib.sh).
T_MEM=()
J_MEM=()
MEM_SECTION_NOTE=""
if [[ -n $WRK_NOTE ]]; then
  MEM_SECTION_NOTE=$WRK_NOTE
elif [[ $MEMORY_CONNECTIONS = 0 ]]; then
  MEM_SECTION_NOTE="BENCH_MEMORY_CONNECTIONS=0"
elif [[ ! -x $HERD ]]; then
  MEM_SECTION_NOTE="$HERD missing (cmake --build $BUILD_DIR --target herd)"
else
  for asked in $MEMORY_CONNECTIONS; do
    n=$(fit_connections "$asked")
    start_balancer "balancer_mem$n" 2
    check_alive "the start of the memory-per-connection run"
    unset "WATCH_PID[balancer_mem$n]"  # stopped on purpose after its measurement
    measure_connection_memory 4 balancer "${BAL_PID[balancer_mem$n]}" \
      "${BAL_URL[balancer_mem$n]}${BAL_PLAYLIST}memory" "$n"
    if start_nginx_static "$WORK/nginx_mem$n" "$WORK/root"; then
      measure_connection_memory 4 nginx_static "$NGINX_PID" "${NGINX_STATIC_URL%/static}${NGINX_PLAYLIST}memory" "$n"
    else
      log "SKIP (4) nginx_static: $NGINX_ERROR"
    fi
  done
fi
[[ -n $MEM_SECTION_NOTE ]] && log "SKIP (4): $MEM_SECTION_NOTE"
LOAD_END=$(loadavg)

# ---------------------------------------------------------------- report
# target (the issue's): balancer (threads 2, or the last of BENCH_THREADS) >= 1.0 x nginx static
# (the median of the rounds), with no viewer waiting on a refresh; below 0.9 is a shortfall to
# explain with a profile. A count with an invalid round has no verdict but INVALID.
declare -A TARGET=()
for conns in "${CONNS_FITTED[@]}"; do
  r=${MEDIAN[$FRESH_BAL/$conns]:-n/a}
  if [[ $r = INVALID* ]]; then
    TARGET[$conns]=$r
  else
    TARGET[$conns]=$(verdict "$r" 1.0 ge)
    [[ ${TARGET[$conns]} = FAIL ]] && TARGET[$conns]=$(awk -v r="$r" 'BEGIN { print (r + 0 >= 0.9 ? "FAIL (>= 0.9)" : "FAIL (shortfall < 0.9)") }')
    TARGET[$conns]="${TARGET[$conns]} (median $r of $ROUNDS; rwait ${RWAIT_SUM[$FRESH_BAL/$conns]:-?})"
    [[ ${RWAIT_SUM[$FRESH_BAL/$conns]:-0} != 0 ]] && TARGET[$conns]="FAIL: viewers waited on a refresh; ${TARGET[$conns]}"
  fi
done
RSS_VERDICT=$(verdict "$RSS_PER_VIEWER" 1024 le)
[[ -n $RSS_NOTE && $RSS_VERDICT = PASS ]] && RSS_VERDICT="n/a ($RSS_NOTE)"
{
  echo
  echo "Balancer benchmark $RUN_ID on $(nproc) cores, $(uname -sr)"
  echo "  load average (1/5/15 min): start $LOAD_START, before freshness $LOAD_FRESH, end $LOAD_END"
  echo "  balancer    $BAL_NOTE"
  for peer in $WANTED_PEERS; do
    if [[ -n ${PEER_SKIP[$peer]:-} ]]; then
      printf '  %-11s SKIPPED: %s\n' "$peer" "${PEER_SKIP[$peer]}"
    else
      printf '  %-11s %s\n' "$peer" "${PEER_NOTE[$peer]}"
    fi
  done
  [[ $CURL_RATE = 1 ]] || echo "  (curl without --rate: one curl process per poll)"
  for name in "${!DIED[@]}"; do
    printf '  DIED: %s %s\n' "$name" "${DIED[$name]}"
  done
  echo
  echo "(1) Freshness ($FRESH_BAL): live playlist rewritten every $((UPDATE_US / 1000)) ms (first update in the window at .$(printf '%03d' "${UPDATE_PHASE_MS:-0}") s"
  echo "    past the second), polled every $((1000 / POLL_PER_S)) ms for ${FRESH_SECONDS}s per peer"
  echo "    upd = updates seen / written in the window; miss = updates never shown;"
  echo "    lag = first seen by the peer - first seen at origin (ms, poll resolution ~$((1000 / POLL_PER_S)) ms);"
  echo "    wlag = first seen by the peer - written to disk; origin = origin requests for the"
  echo "    playlist caused by the peer during the window"
  for entry in "${FRESH_PEERS[@]}"; do
    IFS='|' read -r name _ _ conf <<<"$entry"
    printf '    %-10s %s\n' "$name" "$conf"
  done
  printf '%-10s %9s %5s %8s %8s %9s %9s %6s %6s %8s\n' peer upd miss lag_p50 lag_max wlag_p50 wlag_max polls non200 origin
  printf '%s\n' "${T_FRESH[@]}"
  echo "target: balancer lag_max <= 500 ms: $(verdict "$BAL_LAG_MAX" 500 le)"
  [[ -n $BAL_DETAIL ]] && echo "balancer's largest lag: $BAL_DETAIL"
  echo
  echo "(1b) After ${IDLE_FOR}s without requests for the live playlist: one GET per peer"
  echo "    behind = updates behind the latest written (read after the GET); outdated = seconds since the served copy"
  echo "    stopped being current; ms = response time. Balancer origin requests while idle: ${BAL_IDLE_REQ/null/n/a}"
  printf '%-10s %7s %7s %7s %8s %7s\n' peer status msn behind outdated ms
  printf '%s\n' "${T_IDLE[@]}"
  echo
  echo "(2) Throughput: wrk -t$WRK_THREADS -c<conns> -d${WRK_SECONDS}s --latency (after 1 s unmeasured), $VIEWERS distinct viewers"
  echo "    (viewer=v1..v$VIEWERS, wrk Lua request()) on the live media playlist far/index.m3u8 ($WINDOW segments,"
  echo "    $SOURCE_BYTES bytes, rewritten every $((UPDATE_US / 1000)) ms; origin answers the balancer ${ORIGIN_DELAY_MS} ms late):"
  echo "    balancer_tN = the balancer with threads: N, its per-viewer rewritten copy (signed links to the cache"
  echo "    node); nginx_static = nginx serving the source file, worker_processes $NGINX_WORKERS."
  echo "    req/s counts good responses only; err = responses >= 400 / socket errors: a run with any is"
  echo "    flagged ERR(...) and INVALID: no ratio; vs_nginx = req/s / nginx_static's in the same round;"
  echo "    rnd = the round ($ROUNDS, the servers' order reversed every other one; the target is on the median);"
  echo "    rwait = viewer requests that waited for a refresh of the playlist during the run"
  echo "    (balancer_playlist_refresh_waits_total; should be 0);"
  echo "    viewers = admitted viewers after the run; cpu% = the server's CPU (nginx: master and workers)"
  echo "    in % of one core; us/resp = its CPU microseconds per good response; usr/sys = the same split"
  echo "    into user and kernel time; loops% = each event loop's"
  echo "    busy share of its thread (loop 0/loop 1/...); load = 1-min load before"
  if [[ -n $WRK_NOTE ]]; then
    echo "    SKIPPED: $WRK_NOTE"
  else
    printf '%s\n' "${T_CHECK[@]}"
    printf '%-13s %5s %3s %10s %8s %8s %9s %8s %6s %8s %8s %8s %11s %9s %5s  %s\n' row conns rnd req/s p50_ms p99_ms err vs_nginx rwait viewers cpu% us/resp usr/sys loops% load check
    printf '%s\n' "${T_WRK[@]}"
    for conns in "${CONNS_FITTED[@]}"; do
      echo "target: $FRESH_BAL >= 1.0 x nginx_static at $conns connections: ${TARGET[$conns]}"
    done
    if ((${#T_SYSCALLS[@]} > 0)); then
      echo "    system calls per good response, the ten most frequent (BENCH_SYSCALLS):"
      printf '%s\n' "${T_SYSCALLS[@]}"
    fi
  fi
  echo
  echo "(3) Memory: $RSS_VIEWERS new distinct viewers through a fresh balancer (slots kept 1 h), wrk -c${CONNECTIONS%% *};"
  echo "    VmRSS (KiB) after a 1000-viewer warm-up and after the new viewers; B/viewer = RSS delta / admitted delta"
  if [[ -n $WRK_NOTE || $RSS_VIEWERS = 0 ]]; then
    echo "    SKIPPED: ${WRK_NOTE:-$RSS_NOTE}"
  else
    printf '%-13s %7s %9s %9s %9s %9s %8s %7s %10s\n' row threads viewers0 viewers1 rss0_kib rss1_kib B/viewer secs viewers/s
    echo "$RSS_ROW"
    echo "target: < 1024 bytes per active viewer: $RSS_VERDICT"
  fi
  echo
  echo "(4) Memory per connection: VmRSS (KiB) of a fresh balancer (threads: 2) and a fresh nginx (master and"
  echo "    workers) after one playlist answer (base), holding N idle keep-alive connections (idle), then 3 s"
  echo "    into wrk -c N on one viewer's playlist (busy), 5 s after wrk ended (after; kept_KiB = after - base);"
  echo "    B/idle and B/busy = bytes per connection over base"
  if [[ -n $MEM_SECTION_NOTE ]]; then
    echo "    SKIPPED: $MEM_SECTION_NOTE"
  else
    echo "$MEMORY_HEADER"
    printf '%s\n' "${T_MEM[@]}"
  fi
  echo
} | tee "$WORK/table.txt"

DIED_JSON=()
for name in "${!DIED[@]}"; do DIED_JSON+=("\"$name\":$(json_str "${DIED[$name]}")"); done
PEER_JSON=()
for peer in $WANTED_PEERS; do
  if [[ -n ${PEER_SKIP[$peer]:-} ]]; then
    PEER_JSON+=("\"$peer\":{\"available\":false,\"reason\":$(json_str "${PEER_SKIP[$peer]}")}")
  else
    PEER_JSON+=("\"$peer\":{\"available\":true,\"note\":$(json_str "${PEER_NOTE[$peer]}")}")
  fi
done
TARGET_JSON=()
for conns in "${CONNS_FITTED[@]}"; do TARGET_JSON+=("\"$conns\":$(json_str "${TARGET[$conns]}")"); done
mkdir -p "$(dirname "$OUT_FILE")"
cat >"$OUT_FILE" <<JSON
{"run_id":"$RUN_ID","date":"$(date -u +%Y-%m-%dT%H:%M:%SZ)","cores":$(nproc),"kernel":$(json_str "$(uname -sr)"),
 "loadavg":{"start":$(json_str "$LOAD_START"),"before_freshness":$(json_str "$LOAD_FRESH"),"end":$(json_str "$LOAD_END")},
 "quick":$([[ $QUICK = 1 ]] && echo true || echo false),"origin_delay_ms_throughput":$ORIGIN_DELAY_MS,"freshness_seconds":$FRESH_SECONDS,"update_interval_ms":$((UPDATE_US / 1000)),"update_phase_ms":${UPDATE_PHASE_MS:-null},"poll_interval_ms":$((1000 / POLL_PER_S)),"wrk_seconds":$WRK_SECONDS,"wrk_threads":$WRK_THREADS,
 "balancer":{"note":$(json_str "$BAL_NOTE"),"freshness_balancer":"$FRESH_BAL","cache_usable":$CACHE_USABLE},
 "peers":{$(join "${PEER_JSON[@]}")},
 "died":{$(join "${DIED_JSON[@]}")},
 "freshness":[$(join "${J_FRESH[@]}")],
 "freshness_balancer_worst":$(json_str "$BAL_DETAIL"),
 "after_idle":{"idle_s":$IDLE_FOR,"balancer_origin_requests_while_idle":$BAL_IDLE_REQ,"probes":[$(join "${J_IDLE[@]}")]},
 "throughput_check":[$(join "${J_CHECK[@]}")],
 "throughput":[$(join "${J_WRK[@]}")],
 "throughput_rounds":$ROUNDS,
 "throughput_medians":[$(join "${J_MEDIAN[@]}")],
 "throughput_target_balancer_vs_nginx_ge_1_0":{$(join "${TARGET_JSON[@]}")},
 "invalid":$(invalid_json),
 "throughput_note":$(json_str "$WRK_NOTE"),
 "memory":$RSS_JSON,
 "memory_target_lt_1024_bytes":$(json_str "$RSS_VERDICT"),
 "memory_per_connection":[$(join "${J_MEM[@]}")],
 "memory_per_connection_note":$(json_str "$MEM_SECTION_NOTE")}
JSON
invalid_summary | tee -a "$WORK/table.txt"
log "results written to $OUT_FILE"
exit "$(bench_status)"

#!/usr/bin/env bash
# Benchmarks the balancer's playlist path on this machine, in one run, against nginx and
# Varnish in front of the same test_origin:
#   (1) freshness: a live media playlist rewritten on disk every 2 s (sliding window of
#       10 segments, media sequence +1 each time) is polled every ~50 ms for 20 s directly
#       from origin, through the balancer, through nginx micro-caches and through Varnish
#       (1 s TTL); for every media sequence number, the time each peer first showed it
#       minus the time origin first showed it (lag), plus origin requests per peer; then,
#       after an idle period, one request per peer (is an old copy served?);
#   (2) throughput: wrk on the balancer's per-viewer rewritten media playlist (10 segments,
#       signed chunk URLs to a real cache node) against nginx serving the same source
#       playlist as a static file (1 and 2 workers).
# Prints a table and writes a JSON results file. Not run in CI.
#
# Usage: scripts/bench/balancer_bench.sh [--build DIR] [--out FILE] [--quick]
#   --build DIR  build tree with src/balancer/balancer, src/cache_node/cache_node and
#                tests/support/test_origin (default: build, or $BUILD_DIR)
#   --out FILE   JSON results (default: bench-results/balancer-<time>.json)
#   --quick      freshness 8 s, wrk 3 s, idle 12 s (a smoke run, ~1 minute)
# Environment: BENCH_FRESH_SECONDS (20), BENCH_WRK_SECONDS (10), BENCH_IDLE_SECONDS (15),
# BENCH_UPDATE_MS (2000: playlist update interval; e.g. 2050 sweeps the update phase
# against the caches' refresh cycles within one run), BENCH_PEERS ("nginx varnish"),
# BENCH_KEEP=1 keeps the temp dir with the server logs.
# A missing peer (nginx, varnishd, wrk) is reported and skipped; the script still exits 0.
#
# Everything listens on 127.0.0.1 (ephemeral or free ports), lives in one temp dir and is
# stopped by pid on exit. Whole run: about 2 minutes.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
OUT_FILE=""
QUICK=0
FRESH_SECONDS=${BENCH_FRESH_SECONDS:-20}
WRK_SECONDS=${BENCH_WRK_SECONDS:-10}
IDLE_SECONDS=${BENCH_IDLE_SECONDS:-15}
WANTED_PEERS=${BENCH_PEERS:-"nginx varnish"}
POLL_PER_S=20          # ~50 ms between polls
UPDATE_US=$(( ${BENCH_UPDATE_MS:-2000} * 1000 ))  # the live playlist changes every 2 s
WINDOW=10              # segments in every playlist

while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD_DIR=$2; shift 2 ;;
    --out) OUT_FILE=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    -h|--help) sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
now_us() { echo "${EPOCHREALTIME/./}"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "n/a"; }

num_or_null() { [[ -n ${1:-} && $1 != n/a ]] && echo "$1" || echo null; }

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
# static/: a live playlist (no ENDLIST) that never changes.
mkdir -p "$WORK/root/live" "$WORK/root/vod" "$WORK/root/static"
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
for ((i = 0; i < 100; i++)); do [[ -s $WORK/writer.log ]] && break; sleep 0.05; done

# ---------------------------------------------------------------- origin, cache node, balancer
spawn "$WORK/origin.out" "$TEST_ORIGIN" --host 127.0.0.1 --port 0 --root "$WORK/root"
watch test_origin "$SPAWNED" "$WORK/origin.out"
ORIGIN_PORT=$(wait_listening "$WORK/origin.out" 10 "$SPAWNED") || {
  echo "test_origin did not start:" >&2; cat "$WORK/origin.out" >&2; exit 1; }
ORIGIN_URL="http://127.0.0.1:$ORIGIN_PORT"
log "test_origin on port $ORIGIN_PORT"

# conf/*.json are relative to the project root.
cd "$ROOT_DIR"
mkdir -p "$WORK/cache_node/data"
spawn "$WORK/cache_node/log" "$CACHE_NODE" --config conf/cache_node.json --set listen.port=0 \
  --set data_dir="$WORK/cache_node/data" --set origins.demo.url="$ORIGIN_URL" \
  --set server.access_log=false
watch cache_node "$SPAWNED" "$WORK/cache_node/log"
CACHE_PORT=$(wait_listening "$WORK/cache_node/log" 15 "$SPAWNED") || {
  echo "cache_node did not start:" >&2; tail -n 20 "$WORK/cache_node/log" >&2; exit 1; }
log "cache_node on port $CACHE_PORT"

mkdir -p "$WORK/balancer"
cat >"$WORK/balancer/channels.json" <<'EOF'
{"channels":[
  {"id":"bench","origin":"demo","source":"/files/live/index.m3u8","free":true},
  {"id":"vod","origin":"demo","source":"/files/vod/index.m3u8","free":true},
  {"id":"static","origin":"demo","source":"/files/static/index.m3u8","free":true}
]}
EOF
cat >"$WORK/balancer/caches.json" <<EOF
{"caches":[{"id":"venue-a","site":"venue","url":"http://127.0.0.1:$CACHE_PORT","networks":[]}]}
EOF
spawn "$WORK/balancer/log" "$BALANCER" --config conf/balancer.json --set listen.port=0 \
  --set channels_file="$WORK/balancer/channels.json" --set caches_file="$WORK/balancer/caches.json" \
  --set origins.demo.url="$ORIGIN_URL" --set server.access_log=false
BALANCER_PID=$SPAWNED
watch balancer "$SPAWNED" "$WORK/balancer/log"
cd - >/dev/null
BAL_PORT=$(wait_listening "$WORK/balancer/log" 15 "$SPAWNED") || {
  echo "balancer did not start:" >&2; tail -n 20 "$WORK/balancer/log" >&2; exit 1; }
BAL_URL="http://127.0.0.1:$BAL_PORT"
log "balancer on port $BAL_PORT"

# Signed cache-node links need the cache to be usable (health polled every second).
CACHE_USABLE=false
for ((i = 0; i < 200; i++)); do
  if curl -sS --max-time 2 "$BAL_URL/health" 2>/dev/null | grep -q '"usable":true'; then
    CACHE_USABLE=true
    break
  fi
  sleep 0.05
done
[[ $CACHE_USABLE = true ]] || log "WARNING: the cache node never became usable in the balancer's /health: $(curl -sS --max-time 2 "$BAL_URL/health" || true)"
BAL_THREADS=$(find "/proc/$BALANCER_PID/task" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l || true)
BAL_NOTE="${BAL_THREADS:-?} thread(s); conf/balancer.json: live_max_lag_ms $(sed -n 's/.*"live_max_lag_ms": *\([0-9]*\).*/\1/p' "$ROOT_DIR/conf/balancer.json"), live_refresh_ms $(sed -n 's/.*"live_refresh_ms": *\([0-9]*\).*/\1/p' "$ROOT_DIR/conf/balancer.json"), access log off; one cache node (conf/cache_node.json)"

# ---------------------------------------------------------------- peers
declare -A PEER_SKIP=() PEER_NOTE=()
NGINX_URL="" NGINX2_URL="" VARNISH_URL=""
MICRO_CONF='proxy_cache_valid 200 1s; proxy_cache_lock on; proxy_ignore_headers Cache-Control Expires;'
SWR_CONF="$MICRO_CONF proxy_cache_use_stale updating error timeout; proxy_cache_background_update on;"

# start_nginx WORKERS: one nginx with its own prefix; sets STARTED_URL.
start_nginx() {
  local workers=$1 nginx dir port user_line=""
  STARTED_URL=""
  nginx=$(command -v nginx || true)
  [[ -z $nginx && -x /usr/sbin/nginx ]] && nginx=/usr/sbin/nginx
  if [[ -z $nginx ]]; then
    PEER_SKIP[nginx]="nginx not installed (apt-get install nginx-light)"
    return
  fi
  dir="$WORK/nginx-$workers"
  port=$(free_port)
  mkdir -p "$dir"
  # Run as root, workers would switch to "nobody" and lose access to the temp dir.
  [[ $(id -u) = 0 ]] && user_line="user root root;"
  cat >"$dir/nginx.conf" <<EOF
$user_line
worker_processes $workers;
daemon off;
pid nginx.pid;
error_log error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 100000;
  types { application/vnd.apple.mpegurl m3u8; }
  default_type application/octet-stream;
  client_body_temp_path client_body;
  proxy_temp_path proxy_temp;
  fastcgi_temp_path fastcgi_temp;
  uwsgi_temp_path uwsgi_temp;
  scgi_temp_path scgi_temp;
  proxy_cache_path cache levels=1:2 keys_zone=micro:8m max_size=64m inactive=60m use_temp_path=off;
  upstream origin {
    server 127.0.0.1:$ORIGIN_PORT;
    keepalive 32;
  }
  server {
    listen 127.0.0.1:$port backlog=4096;
    # A typical playlist micro-cache. origin sends "Cache-Control: no-cache", which nginx
    # would obey (no caching at all), hence proxy_ignore_headers.
    location /files/ {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache micro;
      $MICRO_CONF
      add_header X-Cache-Status \$upstream_cache_status;
    }
    # The same with stale-while-revalidate.
    location /swr/ {
      proxy_pass http://origin/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache micro;
      $SWR_CONF
      add_header X-Cache-Status \$upstream_cache_status;
    }
    # The source playlists as static files.
    location /static/ {
      alias $WORK/root/;
    }
  }
}
EOF
  spawn "$dir/out" "$nginx" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log"
  if ! wait_tcp "$port" 10 "$SPAWNED"; then
    PEER_SKIP[nginx]="failed to start: $(tail -n 5 "$dir/error.log" "$dir/out" 2>/dev/null | tr '\n' ' ')"
    return
  fi
  STARTED_URL="http://127.0.0.1:$port"
  watch "nginx-$workers" "$SPAWNED" "$dir/error.log"
  PEER_NOTE[nginx]="$("$nginx" -v 2>&1 | sed 's/.*version: //'), access log off, keepalive_requests 100000"
}

start_varnish() {
  local varnishd dir port
  varnishd=$(command -v varnishd || true)
  [[ -z $varnishd && -x /usr/sbin/varnishd ]] && varnishd=/usr/sbin/varnishd
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
  # -j none: no privilege separation, so it runs the same as root or not.
  spawn "$dir/out" "$varnishd" -F -j none -a "127.0.0.1:$port" -f "$dir/bench.vcl" \
    -n "$dir/n" -s malloc,64m
  if ! wait_tcp "$port" 30 "$SPAWNED"; then
    PEER_SKIP[varnish]="failed to start: $(tail -n 5 "$dir/out" | tr '\n' ' ')"
    return
  fi
  VARNISH_URL="http://127.0.0.1:$port"
  watch varnish "$SPAWNED" "$dir/out"
  PEER_NOTE[varnish]="$("$varnishd" -V 2>&1 | head -n1 | sed 's/^varnishd (\(varnish-[^ ]*\).*/\1/'), VCL: beresp.ttl = 1s + return (deliver) (origin's no-cache ignored), default grace (10 s), -s malloc,64m"
}

for peer in $WANTED_PEERS; do
  case "$peer" in
    nginx)
      start_nginx 1
      NGINX_URL=$STARTED_URL
      if [[ -n $NGINX_URL ]]; then
        start_nginx 2
        NGINX2_URL=$STARTED_URL
      fi
      ;;
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
FRESH_PEERS+=("balancer|$BAL_URL/hls/bench$LIVE_PATH?cache=venue-a&viewer=fresh||background refresh")
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
declare -A RPS=()
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
VOD_Q="cache=venue-a&viewer=wrk1"
cat >"$WORK/viewers.lua" <<'EOF'
-- 1000 distinct viewers on the balancer's VOD playlist.
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/hls/vod/files/vod/index.m3u8?cache=venue-a&viewer=v" .. (n % 1000))
end
EOF
# name|url|lua script|what
WRK_ROWS=()
[[ -n $NGINX_URL ]] && WRK_ROWS+=("nginx_1w|$NGINX_URL/static/vod/index.m3u8||nginx static file, 1 worker")
WRK_ROWS+=("bal_vod|$BAL_URL/hls/vod/files/vod/index.m3u8?$VOD_Q||balancer, VOD playlist, 1 viewer")
[[ -n $NGINX2_URL ]] && WRK_ROWS+=("nginx_2w|$NGINX2_URL/static/vod/index.m3u8||nginx static file, worker_processes 2")
WRK_ROWS+=("bal_live|$BAL_URL/hls/static/files/static/index.m3u8?$VOD_Q||balancer, unchanging live playlist (background refresh), 1 viewer")
WRK_ROWS+=("bal_vod_1k|$BAL_URL/hls/vod/files/vod/index.m3u8?$VOD_Q|$WORK/viewers.lua|balancer, VOD playlist, 1000 viewers (wrk Lua request())")

if [[ -z $WRK ]]; then
  WRK_NOTE="wrk not installed (apt-get install wrk): throughput skipped"
  log "SKIP (2): $WRK_NOTE"
else
  for entry in "${WRK_ROWS[@]}"; do
    IFS='|' read -r name url script what <<<"$entry"
    # Check the response: status, size, and for the balancer the signed cache links.
    check=$(curl -sS --max-time 10 -D "$WORK/check-$name.h" -o "$WORK/check-$name.body" \
      -w '%{http_code} %{size_download}' "$url" || echo "000 0")
    status=${check% *}
    bytes=${check#* }
    signed=$(grep -c 'bsig=' "$WORK/check-$name.body" 2>/dev/null || true)
    choice=$(sed -n 's/^[Xx]-[Cc]ache-[Cc]hoice: *\([^[:space:]]*\).*/\1/p' "$WORK/check-$name.h" | head -n1)
    if [[ $name = bal_* ]] && ! grep -q "^http://127.0.0.1:$CACHE_PORT/o/demo/files/.*bsig=" "$WORK/check-$name.body"; then
      log "WARNING: $name is not the rewritten playlist with signed cache-node links (X-Cache-Choice: ${choice:-none})"
    fi
    args=(-t2 -c64 --latency)
    [[ -n $script ]] && args+=(-s "$script")
    # 1 s warm-up (connections, allocator, memoised links), not measured.
    timeout 30 "$WRK" "${args[@]}" -d1s "$url" >/dev/null 2>&1 || true
    load=$(loadavg)
    log "(2) wrk $name for ${WRK_SECONDS}s (load $load)"
    cpu0=$(cpu_ticks "$BALANCER_PID") t_start=$(now_us)
    out=$(timeout $((WRK_SECONDS + 30)) "$WRK" "${args[@]}" -d"${WRK_SECONDS}s" "$url" 2>&1 || true)
    check_alive "wrk $name"
    cpu1=$(cpu_ticks "$BALANCER_PID") t_end=$(now_us)
    # The balancer's CPU time during the run, in % of one core.
    bal_cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$CLK_TCK" -v us=$((t_end - t_start)) \
      'BEGIN { printf "%.0f", (b - a) / hz * 100 / (us / 1000000) }')
    [[ $name = bal_* ]] || bal_cpu=-
    rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    non2xx=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' <<<"$out")
    sockerr=$(sed -n 's/.*Socket errors: *\(.*\)/\1/p' <<<"$out")
    RPS[$name]=${rps:-0}
    T_WRK+=("$(printf '%-11s %10s %9s %9s %7s %7s %6s %5s %8s  %s' "$name" "${rps:-n/a}" "$p50" "$p99" \
      "${non2xx:-0}" "$status" "$bytes" "$signed" "$bal_cpu" "${load%% *}")")
    J_WRK+=("{\"row\":\"$name\",\"what\":$(json_str "$what"),\"check_status\":$status,\"response_bytes\":$bytes,\"signed_links\":$signed,\"cache_choice\":$(json_str "$choice"),\"requests_per_s\":$(num_or_null "$rps"),\"latency_p50_ms\":$p50,\"latency_p99_ms\":$p99,\"non_2xx\":${non2xx:-0},\"balancer_cpu_pct_of_one_core\":$(num_or_null "${bal_cpu/-/}"),\"socket_errors\":$(json_str "${sockerr:-none}"),\"loadavg_1m_before\":${load%% *}}")
  done
fi
ratio() { awk -v a="${RPS[$1]:-0}" -v b="${RPS[$2]:-0}" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else printf "n/a" }'; }

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

# ---------------------------------------------------------------- report
verdict() { awk -v v="$1" -v lim="$2" -v op="$3" 'BEGIN { if (v == "" || v == "n/a") print "n/a"; else if ((op == "le" && v + 0 <= lim) || (op == "ge" && v + 0 >= lim)) print "PASS"; else print "FAIL" }'; }
BAL_RATIO_1W=$(ratio bal_vod nginx_1w)
BAL_RATIO_2W=$(ratio bal_vod nginx_2w)
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
  echo "(1) Freshness: live playlist rewritten every $((UPDATE_US / 1000)) ms (first update in the window at .$(printf '%03d' "${UPDATE_PHASE_MS:-0}") s"
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
  echo "(2) Throughput: wrk -t2 -c64 -d${WRK_SECONDS}s --latency, balancer's rewritten media playlist"
  echo "    (10 segments, signed links to the cache node) vs nginx serving the source as a file;"
  echo "    status/bytes/bsig = the checking curl's status, body size and signed links; bal_cpu% ="
  echo "    balancer CPU during the run in % of one core; load = 1-min load average before the run"
  if [[ -n $WRK_NOTE ]]; then
    echo "    SKIPPED: $WRK_NOTE"
  else
    printf '%-11s %10s %9s %9s %7s %7s %6s %5s %8s  %s\n' row req/s p50_ms p99_ms non2xx status bytes bsig bal_cpu% load
    printf '%s\n' "${T_WRK[@]}"
    echo "balancer(vod)/nginx: 1 worker $BAL_RATIO_1W, 2 workers $BAL_RATIO_2W;" \
      "balancer(live)/nginx 2w $(ratio bal_live nginx_2w); 1000 viewers/nginx 2w $(ratio bal_vod_1k nginx_2w)"
    echo "target: balancer >= 0.5 x nginx static (2 workers = 2 cores): $(verdict "$BAL_RATIO_2W" 0.5 ge)"
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
mkdir -p "$(dirname "$OUT_FILE")"
cat >"$OUT_FILE" <<EOF
{"run_id":"$RUN_ID","date":"$(date -u +%Y-%m-%dT%H:%M:%SZ)","cores":$(nproc),"kernel":$(json_str "$(uname -sr)"),
 "loadavg":{"start":$(json_str "$LOAD_START"),"before_freshness":$(json_str "$LOAD_FRESH"),"end":$(json_str "$LOAD_END")},
 "quick":$([[ $QUICK = 1 ]] && echo true || echo false),"freshness_seconds":$FRESH_SECONDS,"update_interval_ms":$((UPDATE_US / 1000)),"update_phase_ms":${UPDATE_PHASE_MS:-null},"poll_interval_ms":$((1000 / POLL_PER_S)),"wrk_seconds":$WRK_SECONDS,
 "balancer":{"note":$(json_str "$BAL_NOTE"),"cache_usable":$CACHE_USABLE},
 "peers":{$(join "${PEER_JSON[@]}")},
 "died":{$(join "${DIED_JSON[@]}")},
 "freshness":[$(join "${J_FRESH[@]}")],
 "freshness_balancer_worst":$(json_str "$BAL_DETAIL"),
 "after_idle":{"idle_s":$IDLE_FOR,"balancer_origin_requests_while_idle":$BAL_IDLE_REQ,"probes":[$(join "${J_IDLE[@]}")]},
 "throughput":[$(join "${J_WRK[@]}")],
 "throughput_note":$(json_str "$WRK_NOTE"),
 "ratio_balancer_vod_to_nginx":{"workers_1":$(num_or_null "$BAL_RATIO_1W"),"workers_2":$(num_or_null "$BAL_RATIO_2W")}}
EOF
log "results written to $OUT_FILE"

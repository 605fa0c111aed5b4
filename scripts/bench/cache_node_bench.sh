#!/usr/bin/env bash
# Compares the Balancer cache node with nginx (proxy_cache + proxy_cache_lock) and
# Varnish on this machine, in one run, all in front of the same test_origin:
#   (a) hit throughput (wrk) for a cached 1 MiB chunk and a cached 2 KiB object;
#   (b) first-byte latency of a herd of N waiters (N=100, 1000) on a fresh object
#       whose origin answers after 200 ms and sends at 50 Mbit/s, plus origin fetches;
#   (c) slow origin: 1 MiB over ~7 s, N=100: first byte and origin fetches.
# Prints a table and writes a JSON results file. Not run in CI.
#
# Usage: scripts/bench/cache_node_bench.sh [--build DIR] [--out FILE] [--quick]
#   --build DIR  build tree with tests/support/{test_origin,herd} and, if built,
#                src/cache_node/cache_node (default: build, or $BUILD_DIR)
#   --out FILE   JSON results (default: bench-results/cache_node-<time>.json)
#   --quick      wrk 3 s, herd N=100 only, no slow-origin case (a smoke run)
# Environment: BENCH_WRK_SECONDS (10), BENCH_NGINX_WORKERS (1), BENCH_PEERS
# ("cache_node nginx varnish"), BENCH_KEEP=1 keeps the temp dir with the server logs. A missing peer (nginx, varnishd, wrk, cache_node)
# is reported and skipped; the script still exits 0.
#
# Everything listens on 127.0.0.1 (ephemeral or free ports), lives in one temp dir
# and is stopped by pid on exit. Whole run: about 3 minutes.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
OUT_FILE=""
QUICK=0
WRK_SECONDS=${BENCH_WRK_SECONDS:-10}
NGINX_WORKERS=${BENCH_NGINX_WORKERS:-1}
WANTED_PEERS=${BENCH_PEERS:-"cache_node nginx varnish"}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD_DIR=$2; shift 2 ;;
    --out) OUT_FILE=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $BUILD_DIR = /* ]] || BUILD_DIR="$ROOT_DIR/$BUILD_DIR"
HERD_SIZES="100 1000"
if [[ $QUICK = 1 ]]; then
  WRK_SECONDS=3
  HERD_SIZES="100"
fi

TEST_ORIGIN="$BUILD_DIR/tests/support/test_origin"
HERD="$BUILD_DIR/tests/support/herd"
CACHE_NODE="$BUILD_DIR/src/cache_node/cache_node"
for bin in "$TEST_ORIGIN" "$HERD"; do
  if [[ ! -x $bin ]]; then
    echo "missing $bin; build it first: cmake --build $BUILD_DIR --target test_origin herd" >&2
    exit 1
  fi
done
if ! command -v curl >/dev/null; then
  echo "curl is required (apt-get install curl)" >&2
  exit 1
fi

RUN_ID="$(date +%Y%m%d-%H%M%S)-$$"
if [[ -z $OUT_FILE ]]; then
  mkdir -p bench-results
  OUT_FILE="bench-results/cache_node-$RUN_ID.json"
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cache-node-bench.XXXXXX")
PIDS=()

# shellcheck source=scripts/bench/lib.sh
source "$ROOT_DIR/scripts/bench/lib.sh"

# Value of "key" (number) inside the object "section" of a one-line JSON text.
json_in() { sed -n "s/.*\"$2\":{[^}]*\"$3\":\([-0-9.]*\).*/\1/p" <<<"$1"; }
# Value of the first "key" (number) in a JSON text.
json_top() { sed -n "s/.*\"$2\":\([-0-9.]*\).*/\1/p" <<<"$1" | head -n1; }

origin_count() {  # origin_count PATH
  local body
  body=$(curl -sS --max-time 10 "$ORIGIN_URL/__stats?path=${1//=/%3D}" || true)
  sed -n 's/.*"count":\([0-9][0-9]*\).*/\1/p' <<<"$body"
}

# ---------------------------------------------------------------- start the origin
log "work dir $WORK"
spawn "$WORK/origin.out" "$TEST_ORIGIN" --host 127.0.0.1 --port 0
ORIGIN_PORT=$(wait_listening "$WORK/origin.out" 10 "$SPAWNED") || {
  echo "test_origin did not start:" >&2; cat "$WORK/origin.out" >&2; exit 1; }
ORIGIN_URL="http://127.0.0.1:$ORIGIN_PORT"
log "test_origin on port $ORIGIN_PORT"

# ---------------------------------------------------------------- start the peers
declare -A PEER_URL=() PEER_SKIP=() PEER_NOTE=() PEER_PID=() PEER_LOG=() PEER_DIED=()
PEERS=()

start_cache_node() {
  if [[ ! -x $CACHE_NODE ]]; then
    PEER_SKIP[cache_node]="not built ($CACHE_NODE missing; cmake --build $BUILD_DIR --target cache_node)"
    return
  fi
  mkdir -p "$WORK/cache_node/data"
  local port
  # conf/cache_node.json is relative to the project root. Its stdout and stderr share
  # one log; the listening line is found by its "event" key.
  cd "$ROOT_DIR"
  spawn "$WORK/cache_node/log" "$CACHE_NODE" --config conf/cache_node.json --set listen.port=0 \
    --set data_dir="$WORK/cache_node/data" --set origins.demo.url="$ORIGIN_URL" \
    --set signing.required=false --set server.access_log=false
  cd - >/dev/null
  if ! port=$(wait_listening "$WORK/cache_node/log" 15 "$SPAWNED"); then
    PEER_SKIP[cache_node]="failed to start: $(tail -n 5 "$WORK/cache_node/log" | tr '\n' ' ')"
    return
  fi
  PEER_URL[cache_node]="http://127.0.0.1:$port/o/demo"
  PEER_PID[cache_node]=$SPAWNED
  PEER_LOG[cache_node]="$WORK/cache_node/log"
  PEER_NOTE[cache_node]="conf/cache_node.json, signing off, access log off"
}

start_nginx() {
  local nginx
  nginx=$(command -v nginx || true)
  [[ -z $nginx && -x /usr/sbin/nginx ]] && nginx=/usr/sbin/nginx
  if [[ -z $nginx ]]; then
    PEER_SKIP[nginx]="nginx not installed (apt-get install nginx-light)"
    return
  fi
  local dir="$WORK/nginx" port user_line=""
  port=$(free_port)
  mkdir -p "$dir"
  # Run as root, workers would switch to "nobody" and lose access to the temp dir.
  [[ $(id -u) = 0 ]] && user_line="user root root;"
  cat >"$dir/nginx.conf" <<EOF
$user_line
worker_processes $NGINX_WORKERS;
daemon off;
pid nginx.pid;
error_log error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path client_body;
  proxy_temp_path proxy_temp;
  fastcgi_temp_path fastcgi_temp;
  uwsgi_temp_path uwsgi_temp;
  scgi_temp_path scgi_temp;
  proxy_cache_path cache levels=1:2 keys_zone=bench:32m max_size=4g inactive=60m use_temp_path=off;
  upstream origin {
    server 127.0.0.1:$ORIGIN_PORT;
    keepalive 32;
  }
  server {
    listen 127.0.0.1:$port backlog=4096;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache bench;
      proxy_cache_lock on;          # one origin fetch per object; lock_timeout/age 5 s (defaults)
      proxy_cache_valid 200 60m;
      add_header X-Cache-Status \$upstream_cache_status;
    }
  }
}
EOF
  spawn "$dir/out" "$nginx" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log"
  if ! wait_tcp "$port" 10 "$SPAWNED"; then
    PEER_SKIP[nginx]="failed to start: $(tail -n 5 "$dir/error.log" "$dir/out" 2>/dev/null | tr '\n' ' ')"
    return
  fi
  PEER_URL[nginx]="http://127.0.0.1:$port"
  PEER_PID[nginx]=$SPAWNED
  PEER_LOG[nginx]="$dir/error.log"
  PEER_NOTE[nginx]="$("$nginx" -v 2>&1 | sed 's/.*version: //'), $NGINX_WORKERS worker(s), proxy_cache_lock on"
}

start_varnish() {
  local varnishd
  varnishd=$(command -v varnishd || true)
  [[ -z $varnishd && -x /usr/sbin/varnishd ]] && varnishd=/usr/sbin/varnishd
  if [[ -z $varnishd ]]; then
    PEER_SKIP[varnish]="varnishd not installed (apt-get install varnish)"
    return
  fi
  local dir="$WORK/varnish" port
  port=$(free_port)
  mkdir -p "$dir"
  # -j none: no privilege separation, so it runs the same as root or not. Enough
  # pre-started worker threads (one per waiting client) for the 1000-client herd.
  spawn "$dir/out" "$varnishd" -F -j none -a "127.0.0.1:$port" -b "127.0.0.1:$ORIGIN_PORT" \
    -n "$dir/n" -s malloc,256m -p thread_pools=2 -p thread_pool_min=600 \
    -p thread_pool_max=5000 -p listen_depth=4096
  if ! wait_tcp "$port" 30 "$SPAWNED"; then
    PEER_SKIP[varnish]="failed to start: $(tail -n 5 "$dir/out" | tr '\n' ' ')"
    return
  fi
  PEER_URL[varnish]="http://127.0.0.1:$port"
  PEER_PID[varnish]=$SPAWNED
  PEER_LOG[varnish]="$dir/out"
  PEER_NOTE[varnish]="$("$varnishd" -V 2>&1 | head -n1 | sed 's/^varnishd (\(varnish-[^ ]*\).*/\1/'), -s malloc,256m"
}

for peer in $WANTED_PEERS; do
  case "$peer" in
    cache_node) start_cache_node ;;
    nginx) start_nginx ;;
    varnish) start_varnish ;;
    *) echo "unknown peer $peer in BENCH_PEERS" >&2; exit 2 ;;
  esac
  if [[ -n ${PEER_URL[$peer]:-} ]]; then
    PEERS+=("$peer")
    log "$peer at ${PEER_URL[$peer]} (${PEER_NOTE[$peer]})"
  else
    log "SKIP $peer: ${PEER_SKIP[$peer]}"
  fi
done

# True while the peer's process runs; the first time it is found dead, records why.
peer_alive() {
  local peer=$1 status
  [[ -n ${PEER_DIED[$peer]:-} ]] && return 1
  kill -0 "${PEER_PID[$peer]}" 2>/dev/null && return 0
  wait "${PEER_PID[$peer]}" 2>/dev/null && status=0 || status=$?
  PEER_DIED[$peer]="exited with status $status; log tail: $(tail -n 5 "${PEER_LOG[$peer]}" 2>/dev/null | tr '\n' ' ')"
  log "$peer DIED: ${PEER_DIED[$peer]}"
  return 1
}

# JSON fragments collected as we go.
J_WRK=()
J_HERD=()
J_SLOW=()
T_WRK=()
T_HERD=()
T_SLOW=()

# ---------------------------------------------------------------- (a) hit throughput
WRK=$(command -v wrk || true)
WRK_NOTE=""
if [[ -z $WRK ]]; then
  WRK_NOTE="wrk not installed (apt-get install wrk): hit throughput skipped"
  log "SKIP (a): $WRK_NOTE"
elif [[ ${#PEERS[@]} -eq 0 ]]; then
  WRK_NOTE="no peer running"
else
  for object in 1M 2K; do
    path="/gen/$object/a-hit-$RUN_ID.ts"
    for peer in "${PEERS[@]}"; do
      peer_alive "$peer" || continue
      url="${PEER_URL[$peer]}$path"
      # Warm the cache (twice: some caches store on the first complete response only).
      curl -sS --max-time 30 -o /dev/null "$url" || true
      status=$(curl -sS --max-time 30 -o /dev/null -w '%{http_code}' "$url" || echo 000)
      before=$(origin_count "$path")
      log "(a) wrk $peer $object for ${WRK_SECONDS}s"
      out=$(timeout $((WRK_SECONDS + 30)) "$WRK" -t2 -c64 -d"${WRK_SECONDS}s" --latency "$url" 2>&1 || true)
      after=$(origin_count "$path")
      peer_alive "$peer" || true
      rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out")
      p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
      p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
      non2xx=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' <<<"$out")
      sockerr=$(sed -n 's/.*Socket errors: *\(.*\)/\1/p' <<<"$out")
      if [[ $object = 1M ]]; then bytes=1048576; else bytes=2048; fi
      mibps=$(awk -v r="${rps:-0}" -v b="$bytes" 'BEGIN {printf "%.1f", r * b / 1048576}')
      fetches=$(( ${after:-0} - ${before:-0} ))
      T_WRK+=("$(printf '%-11s %-6s %10s %9s %9s %9s %7s %7s %6s' "$peer" "$object" "${rps:-n/a}" \
        "$mibps" "${p50:-n/a}" "${p99:-n/a}" "${non2xx:-0}" "$status" "$fetches")")
      J_WRK+=("{\"peer\":\"$peer\",\"object_bytes\":$bytes,\"warm_status\":$status,\"requests_per_s\":${rps:-null},\"mib_per_s\":$mibps,\"latency_p50_ms\":$p50,\"latency_p99_ms\":$p99,\"non_2xx\":${non2xx:-0},\"socket_errors\":$(json_str "${sockerr:-none}"),\"origin_requests_during_run\":$fetches}")
    done
  done
fi

# ---------------------------------------------------------------- herds
# herd_row SCENARIO PEER N URL ORIGIN_PATH TIMEOUT_MS -> appends table + JSON rows
herd_row() {
  local scenario=$1 peer=$2 n=$3 url=$4 opath=$5 timeout_ms=$6 json fetches
  log "($scenario) herd $peer N=$n"
  json=$(timeout $((timeout_ms / 1000 + 60)) "$HERD" --url "$url" -n "$n" --verify-gen \
    --timeout-ms "$timeout_ms" --json 2>/dev/null || echo '{"setup_error":"herd failed or timed out"}')
  fetches=$(origin_count "$opath")
  [[ $peer = "origin(direct)" ]] || peer_alive "$peer" || true
  local row
  row=$(printf '%-15s %5s %5s %9s %9s %9s %9s %6s' "$peer" "$n" "$(json_top "$json" ok)" \
    "$(json_in "$json" first_byte_ms p50)" "$(json_in "$json" first_byte_ms p95)" \
    "$(json_in "$json" first_byte_ms max)" "$(json_in "$json" total_ms p95)" "${fetches:-?}")
  local record="{\"scenario\":\"$scenario\",\"peer\":\"$peer\",\"n\":$n,\"origin_requests\":${fetches:-null},\"herd\":$json}"
  if [[ $scenario = b ]]; then T_HERD+=("$row"); J_HERD+=("$record"); else T_SLOW+=("$row"); J_SLOW+=("$record"); fi
}

# (b) origin answers after 200 ms, then 50 Mbit/s; behaviour in the path (/x/...) so
# every peer forwards it whatever it does with query strings.
FAST="/x/delay_ms=200,rate_kbps=50000"
herd_row b "origin(direct)" 1 "$ORIGIN_URL$FAST/gen/1M/b-origin-$RUN_ID.ts" \
  "$FAST/gen/1M/b-origin-$RUN_ID.ts" 30000
for n in $HERD_SIZES; do
  for peer in "${PEERS[@]}"; do
    peer_alive "$peer" || continue
    path="$FAST/gen/1M/b-$peer-$n-$RUN_ID.ts"
    herd_row b "$peer" "$n" "${PEER_URL[$peer]}$path" "$path" 60000
  done
done

# (c) slow origin: 1 MiB at 1200 kbit/s, about 7 s.
SLOW="/x/rate_kbps=1200"
if [[ $QUICK = 0 ]]; then
  herd_row c "origin(direct)" 1 "$ORIGIN_URL$SLOW/gen/1M/c-origin-$RUN_ID.ts" \
    "$SLOW/gen/1M/c-origin-$RUN_ID.ts" 60000
  for peer in "${PEERS[@]}"; do
    peer_alive "$peer" || continue
    path="$SLOW/gen/1M/c-$peer-$RUN_ID.ts"
    herd_row c "$peer" 100 "${PEER_URL[$peer]}$path" "$path" 60000
  done
fi

# ---------------------------------------------------------------- report
{
  echo
  echo "Cache node benchmark $RUN_ID on $(nproc) cores, $(uname -sr)"
  for peer in $WANTED_PEERS; do
    if [[ -n ${PEER_DIED[$peer]:-} ]]; then
      printf '  %-11s %s\n  %-11s DIED during the run: %s\n' "$peer" "${PEER_NOTE[$peer]}" "" "${PEER_DIED[$peer]}"
    elif [[ -n ${PEER_URL[$peer]:-} ]]; then
      printf '  %-11s %s\n' "$peer" "${PEER_NOTE[$peer]}"
    else
      printf '  %-11s SKIPPED: %s\n' "$peer" "${PEER_SKIP[$peer]}"
    fi
  done
  echo
  echo "(a) Hit throughput, wrk -t2 -c64 -d${WRK_SECONDS}s on a cached object"
  echo "    warm = status of the warm-up GET; origin = origin requests during the wrk run"
  if [[ -n $WRK_NOTE ]]; then
    echo "    SKIPPED: $WRK_NOTE"
  else
    printf '%-11s %-6s %10s %9s %9s %9s %7s %7s %6s\n' peer object req/s MiB/s p50_ms p99_ms non2xx warm origin
    printf '%s\n' "${T_WRK[@]}"
  fi
  echo
  echo "(b) Herd on a fresh 1 MiB object; origin: 200 ms to first byte, then 50 Mbit/s"
  echo "    first byte / total in ms from the common start; ok = complete and byte-exact;"
  echo "    origin = requests the origin got for the object"
  printf '%-15s %5s %5s %9s %9s %9s %9s %6s\n' peer N ok fb_p50 fb_p95 fb_max tot_p95 origin
  printf '%s\n' "${T_HERD[@]}"
  if [[ $QUICK = 0 ]]; then
    echo
    echo "(c) Slow origin: 1 MiB at 1200 kbit/s (about 7 s), N=100"
    printf '%-15s %5s %5s %9s %9s %9s %9s %6s\n' peer N ok fb_p50 fb_p95 fb_max tot_p95 origin
    printf '%s\n' "${T_SLOW[@]}"
  fi
  echo
} | tee "$WORK/table.txt"

PEER_JSON=()
for peer in $WANTED_PEERS; do
  if [[ -n ${PEER_URL[$peer]:-} ]]; then
    PEER_JSON+=("\"$peer\":{\"available\":true,\"note\":$(json_str "${PEER_NOTE[$peer]}"),\"died\":$(json_str "${PEER_DIED[$peer]:-}")}")
  else
    PEER_JSON+=("\"$peer\":{\"available\":false,\"reason\":$(json_str "${PEER_SKIP[$peer]}")}")
  fi
done
mkdir -p "$(dirname "$OUT_FILE")"
cat >"$OUT_FILE" <<EOF
{"run_id":"$RUN_ID","date":"$(date -u +%Y-%m-%dT%H:%M:%SZ)","cores":$(nproc),"kernel":$(json_str "$(uname -sr)"),
 "quick":$([[ $QUICK = 1 ]] && echo true || echo false),"wrk_seconds":$WRK_SECONDS,
 "peers":{$(join "${PEER_JSON[@]}")},
 "hit_throughput":[$(join "${J_WRK[@]}")],
 "hit_throughput_note":$(json_str "$WRK_NOTE"),
 "herd_fast_origin":[$(join "${J_HERD[@]}")],
 "herd_slow_origin":[$(join "${J_SLOW[@]}")]}
EOF
log "results written to $OUT_FILE"

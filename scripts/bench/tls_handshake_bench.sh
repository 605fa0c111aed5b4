#!/usr/bin/env bash
# TLS handshakes per second on the cache node and the balancer against nginx, in one run on
# this machine: a kickoff is mostly new connections. For each certificate (ECDSA P-256, RSA
# 2048) and protocol (TLS 1.3, TLS 1.2): new connections (a full handshake each) and resumed
# ones (the session's ticket offered again), one small request per connection
# (`openssl s_time -www /health`, HTTP/1.0: the server closes), several s_time clients at once.
# Also each server's CPU per handshake. Then as an HTTPS load tool sees it: wrk with one request
# per connection (`Connection: close`, BENCH_WRK_CONNECTIONS at once), held to each protocol in
# turn (wrk_tls_version.c), with how many handshakes each server resumed (nginx's from a
# short unmeasured run on a second listener that logs it). Prints tables and
# writes a JSON results file. Not run in CI. Target: >= 1.0 x nginx, full and resumed.
#
# Usage: scripts/bench/tls_handshake_bench.sh [--build DIR] [--out FILE] [--quick]
#   --build DIR  build tree with src/cache_node/cache_node and src/balancer/balancer
#   --out FILE   JSON results (default: bench-results/tls-handshake-<time>.json)
#   --quick      2 s per run instead of 5
# Environment: BENCH_SECONDS (5), BENCH_CLIENTS (2: s_time processes at once), BENCH_THREADS
# (2: the servers' loops; nginx's workers), BENCH_WRK_SECONDS (5), BENCH_WRK_CONNECTIONS (50),
# BENCH_KEEP=1 keeps the temp dir. Needs openssl, wrk, a C compiler with OpenSSL's headers and
# nginx-light (scripts/setup.sh --bench).
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
OUT_FILE=""
SECONDS_PER_RUN=${BENCH_SECONDS:-5}
CLIENTS=${BENCH_CLIENTS:-2}
THREADS=${BENCH_THREADS:-2}
WRK_SECONDS=${BENCH_WRK_SECONDS:-5}
WRK_CONNECTIONS=${BENCH_WRK_CONNECTIONS:-50}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD_DIR=$2; shift 2 ;;
    --out) OUT_FILE=$2; shift 2 ;;
    --quick) SECONDS_PER_RUN=2; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $BUILD_DIR = /* ]] || BUILD_DIR="$ROOT_DIR/$BUILD_DIR"
CACHE_NODE="$BUILD_DIR/src/cache_node/cache_node"
BALANCER="$BUILD_DIR/src/balancer/balancer"
for bin in "$CACHE_NODE" "$BALANCER"; do
  [[ -x $bin ]] || { echo "missing $bin; build first" >&2; exit 1; }
done
command -v openssl >/dev/null || { echo "openssl is required" >&2; exit 1; }
WRK=$(command -v wrk || true)
[[ -n $WRK ]] || { echo "wrk is required (scripts/setup.sh --bench)" >&2; exit 1; }

RUN_ID="$(date +%Y%m%d-%H%M%S)-$$"
if [[ -z $OUT_FILE ]]; then
  mkdir -p bench-results
  OUT_FILE="bench-results/tls-handshake-$RUN_ID.json"
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tls-bench.XXXXXX")
PIDS=()
# shellcheck source=scripts/bench/lib.sh
source "$ROOT_DIR/scripts/bench/lib.sh"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/ecdsa-key.pem" \
  -out "$WORK/ecdsa-cert.pem" -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/rsa-key.pem" \
  -out "$WORK/rsa-cert.pem" -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null
NGINX_VERSION_SEEN=""
echo 'wrk.headers["Connection"] = "close"' >"$WORK/connection-close.lua"
preload_library wrk_tls_version -lssl ||
  { echo "wrk_tls_version.c did not build (needs libssl-dev): $(head -n 1 "$WORK/wrk_tls_version.err")" >&2; exit 1; }

# start_servers CERT: the node, the balancer and nginx with that certificate; sets TLS_PORT[].
declare -A TLS_PORT=() PLAIN_PORT=() SERVER_PID=()
start_servers() {
  local cert=$1 port
  local tls=(--set listen.port=0 --set listen.tls.enabled=true --set listen.tls.port=0
    --set "listen.tls.certificate=$WORK/$cert-cert.pem" --set "listen.tls.key=$WORK/$cert-key.pem"
    --set server.access_log=false --set server.max_connections=100000000 --set server.max_connections_per_address=0 --set threads="$THREADS" --set log.level=warn)
  spawn "$WORK/node-$cert.log" "$CACHE_NODE" --config "$ROOT_DIR/conf/cache_node.json" "${tls[@]}" \
    --set "data_dir=$WORK/node-data-$cert" --set "origins.demo.url=http://127.0.0.1:9"
  SERVER_PID[cache_node]=$SPAWNED
  wait_listening "$WORK/node-$cert.log" 15 "$SPAWNED" >/dev/null || { log "cache_node did not start"; exit 1; }
  TLS_PORT[cache_node]=$(sed -n 's/.*"tls_port":\([0-9]*\).*/\1/p' "$WORK/node-$cert.log" | head -n 1)
  PLAIN_PORT[cache_node]=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$WORK/node-$cert.log" | head -n 1)
  echo '{"channels":[]}' >"$WORK/channels.json"
  echo '{"caches":[]}' >"$WORK/caches.json"
  spawn "$WORK/balancer-$cert.log" "$BALANCER" --config "$ROOT_DIR/conf/balancer.json" "${tls[@]}" \
    --set "channels_file=$WORK/channels.json" --set "caches_file=$WORK/caches.json" \
    --set "api.data_dir=$WORK/api-$cert" --set "origins.demo.url=http://127.0.0.1:9"
  SERVER_PID[balancer]=$SPAWNED
  wait_listening "$WORK/balancer-$cert.log" 15 "$SPAWNED" >/dev/null || { log "balancer did not start"; exit 1; }
  TLS_PORT[balancer]=$(sed -n 's/.*"tls_port":\([0-9]*\).*/\1/p' "$WORK/balancer-$cert.log" | head -n 1)
  PLAIN_PORT[balancer]=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$WORK/balancer-$cert.log" | head -n 1)
  port=$(free_port)
  NGINX_SESSIONS_LOG=$WORK/nginx-$cert/sessions.log
  NGINX_CHECK_PORT=$(free_port)
  local tls_server="
    ssl_certificate $WORK/$cert-cert.pem;
    ssl_certificate_key $WORK/$cert-key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    location = /health { return 200 '{\"status\":\"ok\"}'; }"
  # The measured listener logs nothing, as ours; a second one logs whether each request's
  # handshake was resumed (handshakes_resumed), for a short unmeasured run of its own.
  start_nginx_in "$WORK/nginx-$cert" "$THREADS" "$port" "
  log_format sessions '\$ssl_session_reused';
  server {
    listen 127.0.0.1:$port ssl $NGINX_LISTEN;$tls_server
  }
  server {
    listen 127.0.0.1:$NGINX_CHECK_PORT ssl;
    access_log $NGINX_SESSIONS_LOG sessions;$tls_server
  }" || { log "nginx: $NGINX_ERROR"; exit 1; }
  SERVER_PID[nginx]=$NGINX_PID
  NGINX_VERSION_SEEN=$NGINX_VERSION
  TLS_PORT[nginx]=$port
  wait_tcp "$port" 10 "$NGINX_PID" || { log "nginx did not listen"; exit 1; }
  wait_tcp "$NGINX_CHECK_PORT" 10 "$NGINX_PID" || { log "nginx did not listen"; exit 1; }
}
stop_servers() {
  local name
  for name in cache_node balancer nginx; do stop_pid "${SERVER_PID[$name]}"; done
}

# handshakes PORT PROTO MODE: CLIENTS s_time processes for SECONDS_PER_RUN; sets HS_RATE
# (connections per wall second, all clients together), HS_COUNT and HS_PROBLEM (empty when
# every client ran clean; else which did not: an s_time that printed an error or no count).
handshakes() {
  local port=$1 proto=$2 mode=$3 i t0 t1 pids=() total=0 n
  t0=$(now_us)
  for ((i = 0; i < CLIENTS; i++)); do
    openssl s_time -connect "127.0.0.1:$port" "-$mode" "-$proto" -time "$SECONDS_PER_RUN" -www /health \
      >"$WORK/s_time.$i" 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || true; done
  t1=$(now_us)
  HS_PROBLEM=""
  for ((i = 0; i < CLIENTS; i++)); do
    n=$(sed -n 's/^\([0-9][0-9]*\) connections in [0-9.]*s;.*/\1/p' "$WORK/s_time.$i" | tail -n 1)
    total=$((total + ${n:-0}))
    if [[ -z $n ]] || grep -qiE 'error|unable|errno' "$WORK/s_time.$i"; then
      HS_PROBLEM="${HS_PROBLEM:+$HS_PROBLEM, }client $i: $(grep -m1 -iE 'error|unable|errno' "$WORK/s_time.$i" | cut -c1-80 || echo 'no count')"
    fi
  done
  HS_COUNT=$total
  HS_RATE=$(awk -v n="$total" -v us=$((t1 - t0)) 'BEGIN { printf "%.0f", n / (us / 1e6) }')
}

# handshakes_resumed PEER: "resumed total" handshakes the server has finished so far (ours:
# tls_handshakes_total on /metrics; nginx: the log of its check listener, written per request).
handshakes_resumed() {
  local peer=$1
  if [[ $peer == nginx ]]; then
    awk '$1 == "r" { r++ } END { print r + 0, NR }' "$NGINX_SESSIONS_LOG"
    return
  fi
  curl -s "http://127.0.0.1:${PLAIN_PORT[$peer]}/metrics" |
    awk '/^tls_handshakes_total\{session="resumed"\}/ { r = $2 } /^tls_handshakes_total\{/ { t += $2 }
         END { print r + 0, t + 0 }'
}
# wrk_close_run SECONDS PORT PROTO: run_wrk with one GET /health per connection, held to TLS PROTO.
wrk_close_run() {
  WRK_ENV=(LD_PRELOAD="$WORK/wrk_tls_version.so" WRK_TLS_VERSION="$3")
  WRK_THREADS=1 WRK_CONNECTION_CLOSE=1 run_wrk "$1" "$WRK_CONNECTIONS" \
    "https://127.0.0.1:$2/health" "$WORK/connection-close.lua"
  WRK_ENV=()
}
# wrk_new_connections PEER PROTO: the measured wrk_close_run on PEER; sets the W_* values of
# run_wrk, WRK_US_EACH (server CPU per connection) and WRK_RESUMED_PCT (ours: in the measured
# run; nginx: in a 2 s run on its check listener just before).
wrk_new_connections() {
  local peer=$1 proto=$2 pid=${SERVER_PID[$1]} cpu0 before after
  before=$(handshakes_resumed "$peer")
  [[ $peer == nginx ]] && wrk_close_run 2 "$NGINX_CHECK_PORT" "$proto"
  after=$(handshakes_resumed "$peer")
  cpu0=$(tree_cpu_ticks "$pid")
  wrk_close_run "$WRK_SECONDS" "${TLS_PORT[$peer]}" "$proto"
  WRK_US_EACH=$(awk -v a="$cpu0" -v b="$(tree_cpu_ticks "$pid")" -v hz="$CLK_TCK" -v n="$W_REQS" \
    'BEGIN { if (n > 0) printf "%.0f", (b - a) / hz * 1e6 / n; else print "n/a" }')
  [[ $peer == nginx ]] || after=$(handshakes_resumed "$peer")
  WRK_RESUMED_PCT=$(awk -v a="$before" -v b="$after" 'BEGIN {
    split(a, x, " "); split(b, y, " "); n = y[2] - x[2]
    if (n > 0) printf "%.1f", (y[1] - x[1]) * 100 / n; else print "n/a" }')
}

declare -A RATE=() US=() PRB=() WRK_RATE=() WRK_US=() WRK_PRB=() WRK_RESUMED=()
# ratios_to_nginx LABEL RATES PROBLEMS KEY: NODE_X and BAL_X, the node's and the balancer's
# rate over nginx's for KEY in the associative arrays named RATES and PROBLEMS (checked_ratio:
# INVALID when a run had errors).
ratios_to_nginx() {
  local label=$1 key=$4
  local -n rates=$2 problems=$3
  checked_ratio "$label, cache_node vs nginx" cache_node "${rates[$key/cache_node]}" "${problems[$key/cache_node]}" \
    nginx "${rates[$key/nginx]}" "${problems[$key/nginx]}"
  NODE_X=$CHECKED_RATIO
  checked_ratio "$label, balancer vs nginx" balancer "${rates[$key/balancer]}" "${problems[$key/balancer]}" \
    nginx "${rates[$key/nginx]}" "${problems[$key/nginx]}"
  BAL_X=$CHECKED_RATIO
}
JSON=()
for cert in ecdsa rsa; do
  start_servers "$cert"
  for proto in tls1_3 tls1_2; do
    for mode in new reuse; do
      for peer in nginx cache_node balancer; do
        pid=${SERVER_PID[$peer]}
        cpu0=$(tree_cpu_ticks "$pid")
        handshakes "${TLS_PORT[$peer]}" "$proto" "$mode"
        us_per=$(awk -v a="$cpu0" -v b="$(tree_cpu_ticks "$pid")" -v hz="$CLK_TCK" -v n="$HS_COUNT" \
          'BEGIN { if (n > 0) printf "%.0f", (b - a) / hz * 1e6 / n; else print "n/a" }')
        RATE[$cert/$proto/$mode/$peer]=$HS_RATE
        # shellcheck disable=SC2034  # read through ratios_to_nginx's namerefs
        PRB[$cert/$proto/$mode/$peer]=$HS_PROBLEM
        [[ -z $HS_PROBLEM ]] || log "WARNING: INVALID run $cert $proto $mode $peer: $HS_PROBLEM"
        US[$cert/$proto/$mode/$peer]=$us_per
        log "$cert $proto $mode $peer: $HS_RATE/s ($HS_COUNT), $us_per us of server CPU each"
        JSON+=("{\"certificate\":\"$cert\",\"protocol\":\"$proto\",\"mode\":\"$mode\",\"peer\":\"$peer\",\"connections\":$HS_COUNT,\"per_second\":$HS_RATE,\"server_cpu_us_each\":$(num_or_null "$us_per"),\"problem\":$(json_str "$HS_PROBLEM")}")
      done
    done
  done
  for proto in 1.3 1.2; do
    for peer in nginx cache_node balancer; do
      wrk_new_connections "$peer" "$proto"
      k="$cert/$proto/$peer"
      # shellcheck disable=SC2034  # WRK_PRB: read through ratios_to_nginx's namerefs
      WRK_RATE[$k]=$W_RPS WRK_PRB[$k]=$W_PROBLEM WRK_US[$k]=$WRK_US_EACH WRK_RESUMED[$k]=$WRK_RESUMED_PCT
      [[ -z $W_PROBLEM ]] || log "WARNING: INVALID wrk run $cert TLS $proto $peer: $W_PROBLEM"
      log "wrk $cert TLS $proto $peer: $W_RPS connections/s, $WRK_US_EACH us of server CPU each, $WRK_RESUMED_PCT % resumed"
      JSON+=("{\"certificate\":\"$cert\",\"protocol\":\"tls$proto\",\"mode\":\"wrk_connection_close\",\"peer\":\"$peer\",\"connections\":$WRK_CONNECTIONS,\"per_second\":$(num_or_null "$W_RPS"),\"server_cpu_us_each\":$(num_or_null "$WRK_US_EACH"),\"resumed_percent\":$(num_or_null "$WRK_RESUMED_PCT"),\"problem\":$(json_str "$W_PROBLEM")}")
    done
  done
  stop_servers
done

{
  echo
  echo "TLS handshakes per second, $CLIENTS openssl s_time clients for ${SECONDS_PER_RUN}s each, one GET /health per"
  echo "connection; new = full handshake, reuse = the session's ticket offered again; servers with"
  echo "$THREADS loops (nginx: $THREADS workers, $NGINX_VERSION_SEEN, ssl_session_cache shared); us = server CPU per handshake"
  printf '%-6s %-7s %-6s %9s %9s %9s %8s %8s %6s %6s %6s\n' cert proto mode nginx/s node/s bal/s node_x bal_x ngx_us node_us bal_us
  for cert in ecdsa rsa; do
    for proto in tls1_3 tls1_2; do
      for mode in new reuse; do
        k="$cert/$proto/$mode"
        ratios_to_nginx "$k" RATE PRB "$k"
        printf '%-6s %-7s %-6s %9s %9s %9s %8s %8s %6s %6s %6s\n' "$cert" "$proto" "$mode" "${RATE[$k/nginx]}" \
          "${RATE[$k/cache_node]}" "${RATE[$k/balancer]}" "$NODE_X" "$BAL_X" \
          "${US[$k/nginx]}" "${US[$k/cache_node]}" "${US[$k/balancer]}"
      done
    done
  done
  echo
  echo "New connections under wrk: $WRK_CONNECTIONS at once for ${WRK_SECONDS}s, one GET /health each"
  echo "(Connection: close), wrk held to each protocol; resumed = handshakes the server resumed"
  echo "from the ticket wrk offered (nginx: in a 2 s run of its own on a listener that logs it; the"
  echo "measured one logs nothing, as ours); us = server CPU per connection"
  printf '%-6s %-7s %9s %9s %9s %8s %8s %6s %6s %6s %8s %8s %8s\n' cert proto nginx/s node/s bal/s node_x bal_x \
    ngx_us node_us bal_us ngx_res% node_res% bal_res%
  for cert in ecdsa rsa; do
    for proto in 1.3 1.2; do
      k="$cert/$proto"
      ratios_to_nginx "wrk $k" WRK_RATE WRK_PRB "$k"
      printf '%-6s %-7s %9s %9s %9s %8s %8s %6s %6s %6s %8s %8s %8s\n' "$cert" "tls$proto" "${WRK_RATE[$k/nginx]}" \
        "${WRK_RATE[$k/cache_node]}" "${WRK_RATE[$k/balancer]}" "$NODE_X" "$BAL_X" \
        "${WRK_US[$k/nginx]}" "${WRK_US[$k/cache_node]}" "${WRK_US[$k/balancer]}" \
        "${WRK_RESUMED[$k/nginx]}" "${WRK_RESUMED[$k/cache_node]}" "${WRK_RESUMED[$k/balancer]}"
    done
  done
  echo "load average at the end: $(loadavg)"
} >"$WORK/table.txt"
# Not in a pipe: checked_ratio's records stay in this shell.
invalid_summary >>"$WORK/table.txt"
cat "$WORK/table.txt"
mkdir -p "$(dirname "$OUT_FILE")"
cat >"$OUT_FILE" <<EOF
{"run_id":"$RUN_ID","cores":$(nproc),"seconds":$SECONDS_PER_RUN,"clients":$CLIENTS,"threads":$THREADS,
 "wrk_seconds":$WRK_SECONDS,"wrk_connections":$WRK_CONNECTIONS,
 "nginx":$(json_str "$NGINX_VERSION_SEEN"),"loadavg_end":$(json_str "$(loadavg)"),
 "runs":[$(join "${JSON[@]}")],
 "invalid":$(invalid_json)}
EOF
log "results written to $OUT_FILE"
exit "$(bench_status)"

#!/usr/bin/env bash
# HTTP/2 and HTTPS on the cache node against nginx on this machine, in one run, with the
# same cached bytes (a 2 KiB object and a 1 MiB chunk):
#   h2 over TLS (ALPN) and h2c with prior knowledge: h2load, the cache node serving hits
#   from memory, nginx (http2 on its ssl and plain listeners) the same bytes from files;
#   HTTPS/1.1: wrk against both TLS listeners.
#   the balancer over h2 (TLS) and over HTTPS/1.1 keep-alive (h2load --h1, one request at a
#   time per connection): its rewritten live media playlist for 1,000 distinct viewers
#   (h2load -i: one URI per viewer) against nginx serving the same source playlist file.
# Prints a table of requests per second, MB/s and the ratio to nginx, and writes a JSON
# results file. Not run in CI. Target: >= 1.0 x nginx.
#
# Usage: scripts/bench/http2_bench.sh [--build DIR] [--out FILE] [--quick]
#   --build DIR  build tree with src/cache_node/cache_node and tests/support/test_origin
#   --out FILE   JSON results (default: bench-results/http2-<time>.json)
#   --quick      3 s per run instead of 10
# Environment: BENCH_SECONDS (10), BENCH_CONNECTIONS (32), BENCH_STREAMS (10: h2load -m),
# BENCH_THREADS (2: the cache node's loops), BENCH_NGINX_WORKERS (2), BENCH_CLIENT_THREADS
# (2), BENCH_KEEP=1 keeps the temp dir. Needs h2load (nghttp2-client), wrk, nginx-light,
# openssl: scripts/setup.sh --bench installs them.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
OUT_FILE=""
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
STREAMS=${BENCH_STREAMS:-10}
NODE_THREADS=${BENCH_THREADS:-2}
NGINX_WORKERS=${BENCH_NGINX_WORKERS:-2}
CLIENT_THREADS=${BENCH_CLIENT_THREADS:-2}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD_DIR=$2; shift 2 ;;
    --out) OUT_FILE=$2; shift 2 ;;
    --quick) SECONDS_PER_RUN=3; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $BUILD_DIR = /* ]] || BUILD_DIR="$ROOT_DIR/$BUILD_DIR"
CACHE_NODE="$BUILD_DIR/src/cache_node/cache_node"
TEST_ORIGIN="$BUILD_DIR/tests/support/test_origin"
BALANCER="$BUILD_DIR/src/balancer/balancer"
for bin in "$CACHE_NODE" "$TEST_ORIGIN" "$BALANCER"; do
  [[ -x $bin ]] || { echo "missing $bin; build first" >&2; exit 1; }
done
for tool in h2load wrk openssl curl; do
  command -v "$tool" >/dev/null || { echo "$tool is required: scripts/setup.sh --bench" >&2; exit 1; }
done
WRK=$(command -v wrk)

RUN_ID="$(date +%Y%m%d-%H%M%S)-$$"
if [[ -z $OUT_FILE ]]; then
  mkdir -p bench-results
  OUT_FILE="bench-results/http2-$RUN_ID.json"
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/http2-bench.XXXXXX")
PIDS=()
# shellcheck source=scripts/bench/lib.sh
source "$ROOT_DIR/scripts/bench/lib.sh"

# ---------------------------------------------------------------- servers
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/key.pem" \
  -out "$WORK/cert.pem" -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null

# The balancer's source: an unchanging live media playlist of 10 segments (no ENDLIST), which
# nginx serves as a file and the balancer rewrites per viewer (signed links to the node).
mkdir -p "$WORK/root/live"
{
  printf '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:500\n'
  for ((i = 500; i < 510; i++)); do printf '#EXTINF:2.000,\nseg%05d.ts\n' "$i"; done
} >"$WORK/root/live/index.m3u8"
spawn "$WORK/origin.log" "$TEST_ORIGIN" --root "$WORK/root"
ORIGIN_PORT=$(wait_listening "$WORK/origin.log" 10 "$SPAWNED") || { log "test_origin did not start"; exit 1; }

OBJECTS=("2K" "1M")
mkdir -p "$WORK/static"
for size in "${OBJECTS[@]}"; do
  curl -sf "http://127.0.0.1:$ORIGIN_PORT/gen/$size/bench.ts" -o "$WORK/static/$size.ts"
done

spawn "$WORK/node.log" "$CACHE_NODE" --config "$ROOT_DIR/conf/cache_node.json" \
  --set listen.port=0 --set listen.h2c=true --set listen.tls.enabled=true --set listen.tls.port=0 \
  --set "listen.tls.certificate=$WORK/cert.pem" --set "listen.tls.key=$WORK/key.pem" \
  --set "data_dir=$WORK/node-data" --set "origins.demo.url=http://127.0.0.1:$ORIGIN_PORT" \
  --set signing.required=false --set server.access_log=false --set server.max_connections=100000000 --set server.max_connections_per_address=0 --set threads="$NODE_THREADS" \
  --set log.level=warn
NODE_PID=$SPAWNED
NODE_PORT=$(wait_listening "$WORK/node.log" 10 "$NODE_PID") || { log "cache_node did not start"; exit 1; }
NODE_TLS_PORT=$(sed -n 's/.*"tls_port":\([0-9]*\).*/\1/p' "$WORK/node.log" | head -n 1)
for size in "${OBJECTS[@]}"; do
  curl -sf "http://127.0.0.1:$NODE_PORT/o/demo/gen/$size/bench.ts" -o /dev/null  # now a memory hit
done

mkdir -p "$WORK/balancer"
echo '{"channels":[{"id":"bench","origin":"demo","source":"/files/live/index.m3u8","free":true}]}' \
  >"$WORK/balancer/channels.json"
echo "{\"caches\":[{\"id\":\"venue-a\",\"site\":\"venue\",\"url\":\"http://127.0.0.1:$NODE_PORT\",\"networks\":[]}]}" \
  >"$WORK/balancer/caches.json"
spawn "$WORK/balancer.log" "$BALANCER" --config "$ROOT_DIR/conf/balancer.json" \
  --set listen.port=0 --set listen.tls.enabled=true --set listen.tls.port=0 \
  --set "listen.tls.certificate=$WORK/cert.pem" --set "listen.tls.key=$WORK/key.pem" \
  --set "channels_file=$WORK/balancer/channels.json" --set "caches_file=$WORK/balancer/caches.json" \
  --set "origins.demo.url=http://127.0.0.1:$ORIGIN_PORT" --set "api.data_dir=$WORK/balancer/api" \
  --set server.access_log=false --set server.max_connections=100000000 --set server.max_connections_per_address=0 --set limits.max_streams=1000000 --set playback.allow_anonymous=true \
  --set limits.max_traffic_mbps=0 --set limits.max_anonymous_per_address=0 --set threads="$NODE_THREADS" \
  $(media_playlist_sets "$BALANCER") \
  --set log.level=warn
BALANCER_PID=$SPAWNED
BALANCER_PORT=$(wait_listening "$WORK/balancer.log" 15 "$BALANCER_PID") || { log "balancer did not start"; exit 1; }
BALANCER_TLS_PORT=$(sed -n 's/.*"tls_port":\([0-9]*\).*/\1/p' "$WORK/balancer.log" | head -n 1)
for ((i = 0; i < 200; i++)); do  # signed links need the node usable (health.up_after polls)
  curl -sf --max-time 2 "http://127.0.0.1:$BALANCER_PORT/health" | grep -q '"usable":true' && break
  sleep 0.05
done
cp "$WORK/root/live/index.m3u8" "$WORK/static/index.m3u8"
# One URI per viewer, for h2load -i (each connection goes round the list).
for ((v = 1; v <= 1000; v++)); do
  echo "https://127.0.0.1:$BALANCER_TLS_PORT/hls/bench/files/live/index.m3u8?cache=venue-a&viewer=h2v$v"
done >"$WORK/balancer-uris.txt"

NGINX_TLS_PORT=$(free_port)
NGINX_H2C_PORT=$(free_port)
start_nginx_in "$WORK/nginx" "$NGINX_WORKERS" "$NGINX_TLS_PORT" "
  server {
    listen 127.0.0.1:$NGINX_TLS_PORT ssl http2 $NGINX_LISTEN;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    http2_max_concurrent_streams 128;
    location /o/demo/gen/ { alias $WORK/static/; }
    location /hls/ { alias $WORK/static/; types { application/vnd.apple.mpegurl m3u8; } }
  }
  server {
    listen 127.0.0.1:$NGINX_H2C_PORT http2 $NGINX_LISTEN;
    location /o/demo/gen/ { alias $WORK/static/; }
  }
" || { log "nginx: $NGINX_ERROR"; exit 1; }

# The static files are named by size: /o/demo/gen/<size>/bench.ts on the node, <size>.ts on nginx.
node_path() { echo "/o/demo/gen/$1/bench.ts"; }
nginx_path() { echo "/o/demo/gen/$1.ts"; }

# ---------------------------------------------------------------- runs
# run_h2load URL [h2load arguments...]: sets H_RPS, H_MBPS, H_OK, H_FAILED, H_2XX, H_PROBLEM
# (lib.sh, h2load_parse).
run_h2load() {
  local out
  out=$(timeout $((SECONDS_PER_RUN + 60)) h2load -t "$CLIENT_THREADS" -c "$CONNECTIONS" -m "$STREAMS" \
    -D "$SECONDS_PER_RUN" --warm-up-time=1 "$@" 2>&1 || true)
  h2load_parse "$out"
  [[ $H_PROBLEM = "no result" ]] && log "h2load gave no result for $1: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
  [[ -z $H_PROBLEM ]] || log "WARNING: INVALID run ($1): $H_PROBLEM"
}

declare -A RPS MBPS PRB
ROWS=()
JSON_ROWS=()
record() {  # record PROTOCOL OBJECT PEER RPS MBPS EXTRA_JSON PROBLEM
  RPS[$1/$2/$3]=$4
  MBPS[$1/$2/$3]=$5
  PRB[$1/$2/$3]=$7
  JSON_ROWS+=("{\"protocol\":\"$1\",\"object\":\"$2\",\"peer\":\"$3\",\"requests_per_s\":$(num_or_null "$4"),\"mb_per_s\":$(num_or_null "$5"),\"problem\":$(json_str "$7")$6}")
}

for size in "${OBJECTS[@]}"; do
  for proto in h2 h2c; do
    for peer in cache_node nginx; do
      if [[ $proto = h2 ]]; then
        port=$([[ $peer = cache_node ]] && echo "$NODE_TLS_PORT" || echo "$NGINX_TLS_PORT")
        scheme=https
      else
        port=$([[ $peer = cache_node ]] && echo "$NODE_PORT" || echo "$NGINX_H2C_PORT")
        scheme=http
      fi
      path=$([[ $peer = cache_node ]] && node_path "$size" || nginx_path "$size")
      log "$proto $size $peer"
      run_h2load "$scheme://127.0.0.1:$port$path"
      record "$proto" "$size" "$peer" "$H_RPS" "$H_MBPS" ",\"succeeded\":${H_OK:-0},\"status_2xx\":${H_2XX:-0},\"failed\":${H_FAILED:-0}" "$H_PROBLEM"
    done
  done
  for peer in cache_node nginx; do
    port=$([[ $peer = cache_node ]] && echo "$NODE_TLS_PORT" || echo "$NGINX_TLS_PORT")
    path=$([[ $peer = cache_node ]] && node_path "$size" || nginx_path "$size")
    log "https/1.1 $size $peer"
    run_wrk "$SECONDS_PER_RUN" "$CONNECTIONS" "https://127.0.0.1:$port$path"
    mbps=$(awk -v r="${W_RPS:-0}" -v s="$size" 'BEGIN { b = s == "1M" ? 1048576 : 2048; printf "%.1f", r * b / 1048576 }')
    record "https/1.1" "$size" "$peer" "${W_RPS:-0}" "$mbps" ",\"p99_ms\":$W_P99,\"flag\":$(json_str "$W_FLAG")" "$W_PROBLEM"
  done
done

# The balancer's rewritten playlist for 1,000 distinct viewers, and nginx's file, over h2 (TLS).
# The runs above keep the node busy enough for the balancer's health polls to time out: wait
# until it is usable again, so that the playlists carry signed links to it (checked once).
for ((i = 0; i < 400; i++)); do
  curl -sf --max-time 2 "http://127.0.0.1:$BALANCER_PORT/health" | grep -q '"usable":true' && break
  sleep 0.05
done
sample=$(curl -sf --max-time 5 "http://127.0.0.1:$BALANCER_PORT/hls/bench/files/live/index.m3u8?cache=venue-a&viewer=h2check" || true)
LINKS_TO_NODE=false
grep -q "127.0.0.1:$NODE_PORT/o/demo/.*bsig=" <<<"$sample" && LINKS_TO_NODE=true
log "h2 playlist balancer (1,000 viewers; signed links to the node: $LINKS_TO_NODE, $(wc -c <<<"$sample") bytes)"
run_h2load -i "$WORK/balancer-uris.txt"
record h2 playlist balancer "$H_RPS" "$H_MBPS" ",\"succeeded\":${H_OK:-0},\"status_2xx\":${H_2XX:-0},\"failed\":${H_FAILED:-0},\"viewers\":1000,\"links_to_node\":$LINKS_TO_NODE" "$H_PROBLEM"
log "h2 playlist nginx"
for ((v = 1; v <= 1000; v++)); do echo "https://127.0.0.1:$NGINX_TLS_PORT/hls/index.m3u8?viewer=h2v$v"; done \
  >"$WORK/nginx-uris.txt"
run_h2load -i "$WORK/nginx-uris.txt"
record h2 playlist nginx "$H_RPS" "$H_MBPS" ",\"succeeded\":${H_OK:-0},\"status_2xx\":${H_2XX:-0},\"failed\":${H_FAILED:-0}" "$H_PROBLEM"
# The same over HTTPS/1.1 keep-alive, as a phone's player without HTTP/2 asks (one request at a
# time on each connection: -m 1).
for peer in balancer nginx; do
  log "https/1.1 playlist $peer"
  run_h2load -i "$WORK/$peer-uris.txt" --h1 -m 1
  record https/1.1 playlist "$peer" "$H_RPS" "$H_MBPS" ",\"succeeded\":${H_OK:-0},\"status_2xx\":${H_2XX:-0},\"failed\":${H_FAILED:-0}" "$H_PROBLEM"
done

# ---------------------------------------------------------------- report
printf '\n%-10s %-6s %14s %14s %10s %10s %8s\n' protocol object "node req/s" "nginx req/s" "node MB/s" "nginx MB/s" "x nginx"
for proto in h2 h2c https/1.1; do
  for size in "${OBJECTS[@]}"; do
    checked_ratio "$proto $size, cache_node vs nginx" cache_node "${RPS[$proto/$size/cache_node]:-0}" \
      "${PRB[$proto/$size/cache_node]:-}" nginx "${RPS[$proto/$size/nginx]:-0}" "${PRB[$proto/$size/nginx]:-}"
    r=$CHECKED_RATIO
    ROWS+=("{\"protocol\":\"$proto\",\"object\":\"$size\",\"ratio_to_nginx\":$(num_or_null "$r")}")
    printf '%-10s %-6s %14s %14s %10s %10s %8s\n' "$proto" "$size" "${RPS[$proto/$size/cache_node]:-0}" \
      "${RPS[$proto/$size/nginx]:-0}" "${MBPS[$proto/$size/cache_node]:-0}" "${MBPS[$proto/$size/nginx]:-0}" "$r"
  done
done
for proto in h2 https/1.1; do
  checked_ratio "$proto playlist, balancer vs nginx" balancer "${RPS[$proto/playlist/balancer]:-0}" \
    "${PRB[$proto/playlist/balancer]:-}" nginx "${RPS[$proto/playlist/nginx]:-0}" "${PRB[$proto/playlist/nginx]:-}"
  r=$CHECKED_RATIO
  ROWS+=("{\"protocol\":\"$proto\",\"object\":\"playlist (balancer, 1,000 viewers)\",\"ratio_to_nginx\":$(num_or_null "$r")}")
  printf '%-10s %-6s %14s %14s %10s %10s %8s   (balancer, rewritten for 1,000 viewers)\n' "$proto" playlist \
    "${RPS[$proto/playlist/balancer]:-0}" "${RPS[$proto/playlist/nginx]:-0}" "${MBPS[$proto/playlist/balancer]:-0}" \
    "${MBPS[$proto/playlist/nginx]:-0}" "$r"
done
cat >"$OUT_FILE" <<JSON
{"run":"$RUN_ID","load":"$(loadavg)","seconds":$SECONDS_PER_RUN,"connections":$CONNECTIONS,"streams_per_connection":$STREAMS,
 "cache_node_threads":$NODE_THREADS,"nginx_workers":$NGINX_WORKERS,"nginx":"$NGINX_VERSION",
 "runs":[$(join "${JSON_ROWS[@]}")],
 "ratios":[$(join "${ROWS[@]}")],
 "invalid":$(invalid_json)}
JSON
log "results: $OUT_FILE (cache node rss $(rss_kib "$NODE_PID") KiB)"
invalid_summary
exit "$(bench_status)"

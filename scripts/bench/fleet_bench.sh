#!/usr/bin/env bash
# Benchmarks admission through Redis (admission.backend: redis) on this machine, in one run:
#   (1) decisions: new viewers (each request a new anonymous viewer, so each one is a Redis
#       script call) sent alternately to two balancers sharing one redis-server; admission
#       decisions per second for the fleet, p50/p99;
#   (2) playlist path: 1000 admitted viewers refreshing a live media playlist, against one
#       balancer with admission.backend: local and one with redis (the refreshes are answered
#       from local leases, Redis sees one heartbeat batch per second); req/s and p99 each.
# The load comes from fleet_load (scripts/bench/fleet_load.cc, closed loop, keep-alive).
# Prints JSON lines and a summary. Not run in CI.
#
# Usage: scripts/bench/fleet_bench.sh [--build DIR]
# Environment: BENCH_SECONDS (5), BENCH_LOAD_THREADS (4), BENCH_BALANCER_THREADS (1),
# BENCH_KEEP=1 keeps the temp dir with the server logs.
# Everything listens on 127.0.0.1 (ephemeral or free ports), lives in one temp dir and is
# stopped by pid on exit. Whole run: about 30 seconds.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
SECONDS_EACH=${BENCH_SECONDS:-5}
LOAD_THREADS=${BENCH_LOAD_THREADS:-4}
BAL_THREADS=${BENCH_BALANCER_THREADS:-1}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD_DIR=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cd "$ROOT_DIR"
BALANCER="$BUILD_DIR/src/balancer/balancer"
TEST_ORIGIN="$BUILD_DIR/tests/support/test_origin"
LOAD="$BUILD_DIR/tests/support/fleet_load"
for bin in "$BALANCER" "$TEST_ORIGIN" "$LOAD"; do
  [[ -x $bin ]] || { echo "missing $bin; build it first: cmake --build $BUILD_DIR --target balancer test_origin fleet_load" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "redis-server missing: scripts/setup.sh" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fleet-bench.XXXXXX")
PIDS=()
# shellcheck source=scripts/bench/lib.sh
source "$ROOT_DIR/scripts/bench/lib.sh"

mkdir -p "$WORK/root/live/hi" "$WORK/redis"
printf '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:BANDWIDTH=2000000\nhi/index.m3u8\n' >"$WORK/root/live/master.m3u8"
{
  printf '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:100\n'
  for ((i = 100; i < 110; i++)); do printf '#EXTINF:2.000,\nseg%05d.ts\n' "$i"; done
} >"$WORK/root/live/hi/index.m3u8"
printf '{"channels":[{"id":"demo","origin":"demo","source":"/live/master.m3u8","free":true}]}\n' >"$WORK/channels.json"
printf '{"caches":[]}\n' >"$WORK/caches.json"

REDIS_PORT=$(free_port)
spawn "$WORK/redis.log" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save "" \
  --appendonly no --logfile "" --protected-mode no
wait_tcp "$REDIS_PORT" 10 "$SPAWNED" || { echo "redis-server did not start" >&2; cat "$WORK/redis.log" >&2; exit 1; }
spawn "$WORK/origin.out" "$TEST_ORIGIN" --host 127.0.0.1 --port 0 --root "$WORK/root"
ORIGIN_PORT=$(wait_listening "$WORK/origin.out" 10 "$SPAWNED") || { cat "$WORK/origin.out" >&2; exit 1; }

# start_balancer NAME BACKEND: prints the port.
start_balancer() {
  local name=$1 backend=$2
  spawn "$WORK/$name.out" "$BALANCER" --config conf/balancer.json --set listen.port=0 \
    --set "channels_file=$WORK/channels.json" --set "caches_file=$WORK/caches.json" \
    --set "origins.demo.url=http://127.0.0.1:$ORIGIN_PORT/files" --set playback.allow_anonymous=true \
    --set "api.data_dir=$WORK/$name-api" --set api.products_file= --set server.access_log=false --set server.max_connections=100000000 --set server.max_connections_per_address=0 \
    --set log.level=warn --set "threads=$BAL_THREADS" $(media_playlist_sets "$BALANCER") \
    --set limits.max_streams=0 --set limits.max_traffic_mbps=0 --set limits.max_anonymous_per_address=0 \
    --set limits.max_entries=0 --set queue.max_tickets_per_address=0 \
    --set "admission.backend=$backend" --set "admission.redis.port=$REDIS_PORT"
  wait_listening "$WORK/$name.out" 10 "$SPAWNED" || { cat "$WORK/$name.out" >&2; exit 1; }
}
A_PORT=$(start_balancer a redis)
B_PORT=$(start_balancer b redis)
L_PORT=$(start_balancer local local)
log "redis $REDIS_PORT, balancers a=$A_PORT b=$B_PORT (redis) local=$L_PORT"

media="/hls/demo/live/hi/index.m3u8?viewer={v}"
log "(1) admission decisions through Redis from two balancers, ${SECONDS_EACH}s"
DECISIONS=$("$LOAD" --threads "$LOAD_THREADS" --seconds "$SECONDS_EACH" --fresh \
  "http://127.0.0.1:$A_PORT/hls/demo/live/master.m3u8?viewer={v}" \
  "http://127.0.0.1:$B_PORT/hls/demo/live/master.m3u8?viewer={v}")
echo "{\"bench\":\"decisions_two_balancers\",\"result\":$DECISIONS}"

for target in "local:$L_PORT" "redis:$A_PORT"; do
  name=${target%%:*}
  port=${target##*:}
  # Admit the 1000 viewers first, then measure their refreshes.
  "$LOAD" --threads 1 --seconds 1 --viewers 1000 "http://127.0.0.1:$port$media" >/dev/null
  log "(2) playlist path, admission.backend $name, ${SECONDS_EACH}s"
  R=$("$LOAD" --threads "$LOAD_THREADS" --seconds "$SECONDS_EACH" --viewers 1000 "http://127.0.0.1:$port$media")
  echo "{\"bench\":\"playlist_$name\",\"result\":$R}"
done
log "cores: $(nproc), load: $(loadavg), balancer threads: $BAL_THREADS, load threads: $LOAD_THREADS"

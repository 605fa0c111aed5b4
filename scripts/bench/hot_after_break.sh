#!/usr/bin/env bash
# A hot object after a break: what the first seconds of requests cost when a node's hot object
# (2 KiB, max-age=1, from an origin 200 ms away) sat 10 s without a request. Two nodes (two loops
# each) on one test origin, one after the other: with keep-warm (cache.keep_warm_s=30, the
# default) and without it (0). Each takes a warm 10 s run (wrk -c50 at full speed), then BREAKS
# times a 10 s break followed by three 1 s runs.
#   scripts/bench/hot_after_break.sh [BUILD_DIR (build)] [breaks (2)]
# Prints requests/s, p50, p99 and max of every run (wrk's latency: a connection's stalled
# requests count with the ones it could not send meanwhile), and each node's origin requests.
# Nothing else should run on the machine meanwhile.
set -euo pipefail
ROOT_DIR=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT_DIR/build}" && pwd)
BREAKS=${2:-2}
WRK=$(command -v wrk) || { echo "hot_after_break: wrk is not installed" >&2; exit 1; }
WORK=$(mktemp -d)
PIDS=()
# shellcheck source=scripts/bench/lib.sh
source "$ROOT_DIR/scripts/bench/lib.sh"  # stops the servers and removes WORK at exit
mkdir -p "$WORK/root"
spawn "$WORK/origin.log" "$BUILD/tests/support/test_origin" --root "$WORK/root"
ORIGIN_PORT=$(wait_listening "$WORK/origin.log" 10 "$SPAWNED")

# One wrk run (lib.sh's run_wrk: it counts errors and responses >= 400) of `seconds` against
# `url`, as one line; a run with any error says INVALID. Max is wrk's own, not in run_wrk's.
wrk_line() { # <label> <seconds> <url>
  local max
  run_wrk "$2" 50 "$3"
  max=$(awk '$1 == "Latency" && $2 ~ /^[0-9]/ { print $4 }' <<<"$W_OUT")
  printf '%s: req/s %s p50 %s ms p99 %s ms max %s%s\n' "$1" "$W_RPS" "$W_P50" "$W_P99" "$max" \
    "$([[ $W_FLAG == ok ]] || echo " INVALID: $W_FLAG")"
}

for keep_warm_s in 30 0; do
  object="/x/delay_ms=200,cc=max-age=1/gen/2K/hot-$keep_warm_s.bin"
  spawn "$WORK/node-$keep_warm_s.log" "$BUILD/src/cache_node/cache_node" \
    --config "$ROOT_DIR/conf/cache_node.json" --set listen.port=0 \
    --set "data_dir=$WORK/node-$keep_warm_s" --set "origins.demo.url=http://127.0.0.1:$ORIGIN_PORT" \
    --set signing.required=false --set server.access_log=false --set log.level=warn --set threads=2 \
    --set "cache.keep_warm_s=$keep_warm_s"
  node=$SPAWNED
  port=$(wait_listening "$WORK/node-$keep_warm_s.log" 10 "$node")
  url="http://127.0.0.1:$port/o/demo$object"
  curl -sf -o /dev/null "$url"
  wrk_line "keep_warm_s=$keep_warm_s warm, 10 s" 10 "$url"
  for ((b = 1; b <= BREAKS; b++)); do
    sleep 10  # the break: what is measured
    for s in 1 2 3; do wrk_line "keep_warm_s=$keep_warm_s after break $b, second $s" 1 "$url"; done
  done
  origin_requests=$(curl -sf "http://127.0.0.1:$ORIGIN_PORT/__stats?path=$object")
  echo "keep_warm_s=$keep_warm_s: origin requests $origin_requests"
  stop_pid "$node"
done

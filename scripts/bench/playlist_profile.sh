#!/usr/bin/env bash
# The per-viewer playlist's cost in the balancer, counted rather than timed: instructions and
# heap allocations per response under callgrind (the same on a busy machine as on a quiet one).
# One loop (threads 1), 1,000 viewers of a 10-segment live playlist over plain HTTP/1.1
# keep-alive (h2load --h1, 10 connections); the first 4,000 responses warm it and are not
# counted.
#   scripts/bench/playlist_profile.sh [BUILD_DIR (build)] [responses counted (20000)]
# Prints instructions and allocations (operator new, malloc, calloc) per response, and
# leaves the profile in BUILD_DIR/playlist_profile.callgrind for callgrind_annotate.
set -euo pipefail
ROOT_DIR=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT_DIR/build}" && pwd)
N=${2:-20000}
for tool in valgrind callgrind_control h2load; do
  command -v "$tool" >/dev/null || { echo "playlist_profile: $tool is not installed" >&2; exit 1; }
done
WORK=$(mktemp -d)
PIDS=()
# shellcheck source=scripts/bench/lib.sh
source "$ROOT_DIR/scripts/bench/lib.sh"  # stops the servers and removes WORK at exit
mkdir -p "$WORK/root/live"
{
  printf '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:500\n'
  for ((i = 500; i < 510; i++)); do printf '#EXTINF:2.000,\nseg%05d.ts\n' "$i"; done
} >"$WORK/root/live/index.m3u8"
spawn "$WORK/origin.log" "$BUILD/tests/support/test_origin" --root "$WORK/root"
ORIGIN_PORT=$(wait_listening "$WORK/origin.log" 10 "$SPAWNED")
spawn "$WORK/node.log" "$BUILD/src/cache_node/cache_node" --config "$ROOT_DIR/conf/cache_node.json" \
  --set listen.port=0 --set "data_dir=$WORK/node-data" --set "origins.demo.url=http://127.0.0.1:$ORIGIN_PORT" \
  --set signing.required=false --set server.access_log=false --set log.level=warn
NODE_PORT=$(wait_listening "$WORK/node.log" 10 "$SPAWNED")
mkdir -p "$WORK/balancer"
echo '{"channels":[{"id":"bench","origin":"demo","source":"/files/live/index.m3u8","free":true}]}' >"$WORK/balancer/channels.json"
echo "{\"caches\":[{\"id\":\"venue-a\",\"site\":\"venue\",\"url\":\"http://127.0.0.1:$NODE_PORT\",\"networks\":[]}]}" >"$WORK/balancer/caches.json"
read -ra MEDIA_SETS <<<"$(media_playlist_sets "$BUILD/src/balancer/balancer")"
spawn "$WORK/balancer.log" valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" \
  "$BUILD/src/balancer/balancer" --config "$ROOT_DIR/conf/balancer.json" \
  --set listen.port=0 \
  --set "channels_file=$WORK/balancer/channels.json" --set "caches_file=$WORK/balancer/caches.json" \
  --set "origins.demo.url=http://127.0.0.1:$ORIGIN_PORT" --set "api.data_dir=$WORK/balancer/api" \
  --set server.access_log=false --set server.max_connections=100000000 --set server.max_connections_per_address=0 --set limits.max_streams=1000000 --set playback.allow_anonymous=true \
  --set limits.max_traffic_mbps=0 --set limits.max_anonymous_per_address=0 --set threads=1 \
  "${MEDIA_SETS[@]}" --set log.level=warn
BPID=$SPAWNED
BPORT=$(wait_listening "$WORK/balancer.log" 120 "$BPID")
for ((i = 0; i < 400; i++)); do
  curl -sf --max-time 5 "http://127.0.0.1:$BPORT/health" | grep -q '"usable":true' && break; sleep 0.1
done
for ((v = 1; v <= 1000; v++)); do echo "http://127.0.0.1:$BPORT/hls/bench/files/live/index.m3u8?cache=venue-a&viewer=v$v"; done >"$WORK/uris.txt"
# Every response must be a 2xx with no failure, error or timeout (lib.sh's h2load_parse): a run
# with any counts something else.
run_h2load() {
  local out
  out=$(h2load --h1 -t 1 -c 10 -n "$1" -i "$WORK/uris.txt")
  h2load_parse "$out"
  if [[ -n $H_PROBLEM || ${H_2XX:-0} != "$1" ]]; then
    echo "playlist_profile: an invalid run (${H_PROBLEM:-${H_2XX:-0} of $1 were 2xx}):" >&2
    echo "$out" >&2
    exit 1
  fi
}
run_h2load 4000
callgrind_control -z "$BPID" >/dev/null 2>&1
run_h2load "$N"
callgrind_control -d "$BPID" >/dev/null 2>&1
OUT=""
for ((i = 0; i < 100; i++)); do
  OUT=$(find "$WORK" -name 'cg.out*' -size +0 | head -n 1)
  [[ -n $OUT ]] && break
  sleep 0.1
done
[[ -n $OUT ]] || { echo "playlist_profile: no profile was written" >&2; exit 1; }
cp "$OUT" "$BUILD/playlist_profile.callgrind"
# Calls into the allocator, from callgrind's call counts (cfn= lines and the calls= after them).
python3 - "$OUT" "$N" <<'PY'
import re, sys
path, n = sys.argv[1], int(sys.argv[2])
names, calls, callee, total = {}, {}, None, 0
for line in open(path, errors="replace"):
    m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
    if m:
        kind, index, name = m.groups()
        if name:
            names[index] = name
        callee = names.get(index, index) if kind == "cfn" else None
        continue
    m = re.match(r"^calls=(\d+)", line)
    if m and callee is not None:
        calls[callee] = calls.get(callee, 0) + int(m.group(1))
    m = re.match(r"^summary: (\d+)", line) or re.match(r"^totals: (\d+)", line)
    if m:
        total = int(m.group(1))
def count(pred):
    return sum(v for k, v in calls.items() if pred(k)) / n
print(f"responses counted: {n}")
print(f"instructions per response: {total / n:.0f}")
print(f"operator new per response: {count(lambda k: k.startswith('operator new')):.2f}")
print(f"malloc + calloc per response: {count(lambda k: k in ('malloc', 'calloc')):.2f}")
allocations = count(lambda k: k.startswith('operator new') or k in ('malloc', 'calloc'))
print(f"allocations per response: {allocations:.2f}")
PY

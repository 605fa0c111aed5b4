#!/usr/bin/env bash
# What one hostile client in the stand costs everyone else: a balancer and a cache node on
# test_origin, legit viewers polling a live playlist and its newest chunk from another loopback
# address, and one attack at a time against them:
#   cmcd     wrk replays one signed chunk link with a new CMCD report each time: a new 400-byte
#            session id and a new bitrate per request (the attack that took a node out of
#            rotation by growing its /health)
#   unread   20 connections of one address ask for a long playlist and never read the replies
#            (the process-wide unsent-bytes budget they used to fill)
#   blocking one viewer opens 200 blocking playlist reloads at once
# For each: the legit viewers' playlist and chunk latency (p50, p99) before and during it, the
# replies that were not 200, whether the balancer ever saw the node unusable (sampled every
# 100 ms), the node's /health size, and the servers' RSS before, during and after it (once what it held
# was let go: the node forgets a player's session after 30 s).
# Prints a table and writes a JSON results file. Not run in CI.
#
# Usage: scripts/bench/attack_bench.sh [--build DIR] [--out FILE]
# Environment: BENCH_ATTACKS ("cmcd unread blocking"), BENCH_ATTACK_SECONDS (10),
# BENCH_LEGIT_VIEWERS (20: each asks every 250 ms), BENCH_KEEP=1 keeps the temp dir.
# Everything listens on 127.0.0.1 (the viewers come from 127.0.0.2), lives in one temp dir and
# is stopped by pid on exit. Whole run: about 2 minutes (the CMCD flood waits 30 s for its sessions to go).
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
OUT_FILE=""
ATTACKS=${BENCH_ATTACKS:-"cmcd unread blocking"}
ATTACK_SECONDS=${BENCH_ATTACK_SECONDS:-10}
LEGIT_VIEWERS=${BENCH_LEGIT_VIEWERS:-20}
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) BUILD_DIR=$2; shift 2 ;;
    --out) OUT_FILE=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[[ $BUILD_DIR = /* ]] || BUILD_DIR="$ROOT_DIR/$BUILD_DIR"
BALANCER="$BUILD_DIR/src/balancer/balancer"
CACHE_NODE="$BUILD_DIR/src/cache_node/cache_node"
TEST_ORIGIN="$BUILD_DIR/tests/support/test_origin"
for bin in "$BALANCER" "$CACHE_NODE" "$TEST_ORIGIN"; do
  [[ -x $bin ]] || { echo "missing $bin: cmake --build $BUILD_DIR first" >&2; exit 1; }
done
WRK=$(command -v wrk || true)
[[ -n $WRK ]] || { echo "wrk is missing (scripts/setup.sh --bench)" >&2; exit 1; }
mkdir -p "$ROOT_DIR/bench-results"
OUT_FILE=${OUT_FILE:-$ROOT_DIR/bench-results/attack-$(date +%Y%m%d-%H%M%S).json}

WORK=$(mktemp -d)
PIDS=()
# shellcheck source=scripts/bench/lib.sh
source "$ROOT_DIR/scripts/bench/lib.sh"

# ---------------------------------------------------------------- origin, node, balancer
# A live playlist of 10 two-second chunks of 16 KiB that test_origin generates, and a long one
# (6,000 segments: the default window) for the unread attack.
mkdir -p "$WORK/root/live" "$WORK/root/long" "$WORK/root/tiny"
# The cmcd attack's link: a 64-byte chunk, so that its rate costs the node requests, not egress
# (a flood of large chunks would rightly mark the node overloaded by egress_mbps).
printf '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\n/gen/64/tiny.ts\n' \
  >"$WORK/root/tiny/index.m3u8"
{
  printf '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:100\n'
  for ((i = 100; i < 110; i++)); do printf '#EXTINF:2.000,\n/gen/16K/seg%05d.ts\n' "$i"; done
} >"$WORK/root/live/index.m3u8"
{
  printf '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n'
  for ((i = 0; i < 6000; i++)); do printf '#EXTINF:2.000,\n/gen/16K/long%05d.ts\n' "$i"; done
} >"$WORK/root/long/index.m3u8"

spawn "$WORK/origin.out" "$TEST_ORIGIN" --host 127.0.0.1 --port 0 --root "$WORK/root"
ORIGIN_PORT=$(wait_listening "$WORK/origin.out" 10 "$SPAWNED")
ORIGIN_URL="http://127.0.0.1:$ORIGIN_PORT"
cd "$ROOT_DIR"
mkdir -p "$WORK/node/data" "$WORK/balancer"
spawn "$WORK/node/log" "$CACHE_NODE" --config conf/cache_node.json --set listen.port=0 \
  --set data_dir="$WORK/node/data" --set origins.demo.url="$ORIGIN_URL" \
  --set server.access_log=false
NODE_PID=$SPAWNED
NODE_PORT=$(wait_listening "$WORK/node/log" 15 "$SPAWNED")
cat >"$WORK/balancer/channels.json" <<'JSON'
{"channels":[
  {"id":"live","origin":"demo","source":"/files/live/index.m3u8","free":true},
  {"id":"long","origin":"demo","source":"/files/long/index.m3u8","free":true},
  {"id":"tiny","origin":"demo","source":"/files/tiny/index.m3u8","free":true}
]}
JSON
cat >"$WORK/balancer/caches.json" <<JSON
{"caches":[{"id":"venue-a","site":"venue","url":"http://127.0.0.1:$NODE_PORT","networks":[]}]}
JSON
spawn "$WORK/balancer/log" "$BALANCER" --config conf/balancer.json --set listen.port=0 \
  --set channels_file="$WORK/balancer/channels.json" --set caches_file="$WORK/balancer/caches.json" \
  --set origins.demo.url="$ORIGIN_URL" --set server.access_log=false \
  --set playback.allow_anonymous=true --set limits.max_streams=100000 \
  --set limits.max_traffic_mbps=0 --set limits.max_anonymous_per_address=0 \
  $(media_playlist_sets "$BALANCER")
BAL_PID=$SPAWNED
BAL_PORT=$(wait_listening "$WORK/balancer/log" 15 "$SPAWNED")
cd - >/dev/null
BAL_URL="http://127.0.0.1:$BAL_PORT"
NODE_URL="http://127.0.0.1:$NODE_PORT"
for ((i = 0; i < 200; i++)); do
  curl -sS --max-time 2 "$BAL_URL/health" 2>/dev/null | grep -q '"usable":true' && break
  sleep 0.05
done
((i < 200)) || { echo "the balancer never found the node usable" >&2; exit 1; }
log "origin $ORIGIN_PORT, node $NODE_PORT, balancer $BAL_PORT"

# ---------------------------------------------------------------- the legit viewers
# Each asks the balancer for the live playlist (its own viewer id) and then the playlist's
# newest chunk on the node, every 250 ms, from 127.0.0.2; prints one JSON line of latencies.
cat >"$WORK/viewers.py" <<'PY'
import http.client, json, sys, threading, time, urllib.parse
bal, viewers, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + seconds
playlist_ms, chunk_ms, errors = [], [], []
lock = threading.Lock()
def get(conns, url):
    u = urllib.parse.urlsplit(url)
    c = conns.get(u.netloc)
    if c is None:
        c = conns[u.netloc] = http.client.HTTPConnection(u.hostname, u.port, timeout=5,
                                                         source_address=("127.0.0.2", 0))
    started = time.monotonic()
    try:
        c.request("GET", u.path + ("?" + u.query if u.query else ""))
        r = c.getresponse()
        body = r.read()
    except Exception as e:
        conns.pop(u.netloc, None)
        return None, str(e), (time.monotonic() - started) * 1000
    return r.status, body, (time.monotonic() - started) * 1000
def viewer(n):
    conns = {}
    while time.monotonic() < deadline:
        status, body, ms = get(conns, bal + "/hls/live/files/live/index.m3u8?cache=venue-a&viewer=legit%d" % n)
        with lock:
            (playlist_ms if status == 200 else errors).append(ms if status == 200 else "playlist %s" % status)
        if status == 200:
            chunk = [l for l in body.decode().splitlines() if l and not l.startswith("#")][-1]
            status, _, ms = get(conns, chunk)
            with lock:
                (chunk_ms if status == 200 else errors).append(ms if status == 200 else "chunk %s" % status)
        time.sleep(0.25)
threads = [threading.Thread(target=viewer, args=(n,)) for n in range(viewers)]
for t in threads: t.start()
for t in threads: t.join()
def q(v, p):
    v = sorted(v)
    return round(v[min(len(v) - 1, int(p * len(v)))], 2) if v else None
print(json.dumps({"playlists": len(playlist_ms), "playlist_p50_ms": q(playlist_ms, 0.5),
                  "playlist_p99_ms": q(playlist_ms, 0.99), "chunks": len(chunk_ms),
                  "chunk_p50_ms": q(chunk_ms, 0.5), "chunk_p99_ms": q(chunk_ms, 0.99),
                  "errors": len(errors), "first_errors": errors[:3]}))
PY

# Samples the balancer's view of the node every 100 ms until the file $WORK/stop exists;
# prints the samples in which it said the node was not usable (a sample the balancer did not
# answer in time says nothing).
watch_node() {
  local down=0 samples=0 line
  while [[ ! -e $WORK/stop ]] && ((samples < 1200)); do
    line=$(curl -sS --max-time 1 "$BAL_URL/metrics" 2>/dev/null | grep '^balancer_cache_up{cache="venue-a"}' || true)
    [[ $line == *" 0" ]] && down=$((down + 1))
    samples=$((samples + 1))
    sleep 0.1
  done
  echo "$down"
}

metric_sum() {  # metric_sum URL NAME: the sum of NAME's samples (0 when absent)
  curl -sS --max-time 2 "$1/metrics" 2>/dev/null | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { print s + 0 }'
}

# Waits (at most SECONDS) until no player session is kept on the node and no unread playlist
# reply on the balancer; prints the seconds it took.
wait_released() {
  local start=$SECONDS
  while ((SECONDS - start < $1)); do
    [[ $(metric_sum "$NODE_URL" playback_sessions_reporting) == 0 &&
       $(metric_sum "$BAL_URL" balancer_playlist_unsent_bytes) == 0 ]] && break
    sleep 0.5
  done
  echo $((SECONDS - start))
}

legit() {  # legit SECONDS: the viewers' JSON line
  python3 "$WORK/viewers.py" "$BAL_URL" "$LEGIT_VIEWERS" "$1"
}

signed_chunk() {  # a signed link to the 64-byte chunk, on the node
  curl -sS "$BAL_URL/hls/tiny/files/tiny/index.m3u8?cache=venue-a&viewer=attacker" | grep -v '^#' | tail -n1
}

# ---------------------------------------------------------------- the attacks
attack_cmcd() {
  local url path
  url=$(signed_chunk)
  path=${url#"$NODE_URL"}
  cat >"$WORK/cmcd.lua" <<LUA
local n = 0
local id = string.rep("x", 400)
request = function()
  n = n + 1
  return wrk.format("GET", "$path" .. "&CMCD=br%3D" .. (100 + n) .. "%2Csid%3D%22" .. id .. n .. "%22")
end
LUA
  "$WRK" -t1 -c8 -d"${ATTACK_SECONDS}s" -s "$WORK/cmcd.lua" "$NODE_URL" >"$WORK/attack.out" 2>&1
  awk '/Requests\/sec/ { print "attack requests/s " $2 }' "$WORK/attack.out"
}

attack_unread() {
  python3 - "$BAL_PORT" "$ATTACK_SECONDS" <<'PY'
import socket, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
socks = []
for i in range(20):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(b"GET /hls/long/files/long/index.m3u8?cache=venue-a&viewer=stuck%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
    socks.append(s)
time.sleep(seconds)
print("attack connections 20")
PY
}

attack_blocking() {
  local next
  next=$(curl -sS "$BAL_URL/hls/live/files/live/index.m3u8?viewer=greedy" | awk -F: '/MEDIA-SEQUENCE/ { print $2 + 10 }')
  python3 - "$BAL_PORT" "$ATTACK_SECONDS" "$next" <<'PY'
import socket, sys, time
port, seconds, msn = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
socks, refused = [], 0
for i in range(200):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /hls/live/files/live/index.m3u8?viewer=greedy&_HLS_msn=%s HTTP/1.1\r\nHost: x\r\n\r\n" % msn.encode())
    socks.append(s)
time.sleep(seconds)
print("attack connections 200")
PY
}

results=()
printf '\n%-9s %-8s %10s %10s %10s %10s %7s %9s %11s %9s %9s %9s\n' attack phase "pl p50" "pl p99" \
  "chunk p50" "chunk p99" errors node_down health_bytes "bal MiB" "node MiB" "after"
for attack in $ATTACKS; do
  # The long playlist read once by a viewer first: what the source cache keeps of it is every
  # viewer's, not the attack's.
  [[ $attack == unread ]] && curl -sS -o /dev/null "$BAL_URL/hls/long/files/long/index.m3u8?cache=venue-a&viewer=reader"
  baseline=$(legit 5)
  rss_bal_before=$(rss_kib "$BAL_PID") rss_node_before=$(rss_kib "$NODE_PID")
  rm -f "$WORK/stop"
  watch_node >"$WORK/down" &
  watcher=$!
  legit $((ATTACK_SECONDS)) >"$WORK/during" &
  viewers=$!
  "attack_$attack" >"$WORK/attack.note" &
  attacker=$!
  sleep $((ATTACK_SECONDS / 2))
  rss_bal_during=$(rss_kib "$BAL_PID") rss_node_during=$(rss_kib "$NODE_PID")
  wait "$viewers" "$attacker" || true
  touch "$WORK/stop"
  wait "$watcher" || true
  during=$(cat "$WORK/during")
  health_bytes=$(curl -sS "$NODE_URL/health" | wc -c)
  # What the servers still hold once the attack has gone and what it held was let go: the
  # players' sessions forgotten (the node's idle time, 30 s) and the unread replies closed,
  # then a few seconds for the loops' periodic give-back.
  settled_s=$(wait_released 60)
  sleep 3
  rss_bal_after=$(rss_kib "$BAL_PID") rss_node_after=$(rss_kib "$NODE_PID")
  for phase in before during; do
    line=$baseline
    [[ $phase == during ]] && line=$during
    read -r pl50 pl99 c50 c99 errs < <(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["playlist_p50_ms"], d["playlist_p99_ms"], d["chunk_p50_ms"], d["chunk_p99_ms"], d["errors"])' "$line")
    if [[ $phase == before ]]; then
      printf '%-9s %-8s %10s %10s %10s %10s %7s %9s %11s %9s %9s %9s\n' "$attack" "$phase" "$pl50" "$pl99" "$c50" "$c99" "$errs" "" "" \
        $((rss_bal_before / 1024)) $((rss_node_before / 1024)) ""
    else
      printf '%-9s %-8s %10s %10s %10s %10s %7s %9s %11s %9s %9s %9s\n' "$attack" "$phase" "$pl50" "$pl99" "$c50" "$c99" "$errs" "$(cat "$WORK/down")" "$health_bytes" \
        $((rss_bal_during / 1024)) $((rss_node_during / 1024)) "$((rss_bal_after / 1024))/$((rss_node_after / 1024)) (${settled_s} s)"
    fi
  done
  results+=("{\"attack\":\"$attack\",\"before\":$baseline,\"during\":$during,\"node_down_samples\":$(cat "$WORK/down"),\"health_bytes\":$health_bytes,\"attack_note\":\"$(tr '\n' ';' <"$WORK/attack.note")\",\"released_after_s\":$settled_s,\"rss_kib\":{\"balancer\":[$rss_bal_before,$rss_bal_during,$rss_bal_after],\"node\":[$rss_node_before,$rss_node_during,$rss_node_after]}}")
done
echo
echo "load average at the end: $(loadavg)"
printf '{"attacks":[%s],"load":"%s"}\n' "$(join "${results[@]}")" "$(loadavg)" >"$OUT_FILE"
log "results in $OUT_FILE"

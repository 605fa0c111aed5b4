#!/usr/bin/env bash
# A rehearsal on this machine with `audience` (docs/operations.md § Rehearsing a venue):
# the demo's live ladder (ffmpeg: 3 variants, 2 s segments) on test_origin, two cache
# nodes of the site "venue", the balancer (anonymous play, loopback exempt from the
# per-address limits), and `audience` playing one scenario of scripts/bench/audience/.
#   scripts/bench/audience_bench.sh steady        5,000 viewers in steady state
#   scripts/bench/audience_bench.sh kickoff       5,000 press play within 10 s
#   scripts/bench/audience_bench.sh node_kill     kill -9 of a cache node in steady state
#   scripts/bench/audience_bench.sh walk_out      20 % walk out of the venue
#   scripts/bench/audience_bench.sh queue         the limit at 80 % of the audience
#   scripts/bench/audience_bench.sh small         300 viewers, a node kill, a walk-out
#   scripts/bench/audience_bench.sh low_latency   1,000 viewers on an LL-HLS channel (ll_origin:
#                                                 ffmpeg-made CMAF, parts of 0.25 s, 1 s segments)
#   scripts/bench/audience_bench.sh low_latency_venue  the same channel: 1,000 press play within
#                                                 10 s, a node kill, a 20 % walk-out
#   scripts/bench/audience_bench.sh low_latency_freeze  the same, but the node freezes (SIGSTOP)
#                                                 for 20 s instead: its connections stay silent
#   scripts/bench/audience_bench.sh encoder_failure  the channel from two sources (a second origin
#                                                 server of the same encoder, the nodes' twin): the
#                                                 preferred one stalls 10 s (200, the same playlist),
#                                                 later the backup's origin is killed
#   scripts/bench/audience_bench.sh low_latency_encoder_failure  the LL channel from two ll_origins
#                                                 on one clock: the preferred one publishes nothing
#                                                 for 10 s, later the backup is killed
#   scripts/bench/audience_bench.sh low_latency_every_encoder_failure  the same channel through
#                                                 a freeze, a restart at 0, a stall and a kill, each
#                                                 of the source played at that moment
# TLS=1: the viewers play over HTTPS with HTTP/2, as phones do: the balancer and the nodes
# serve on TLS listeners (TLS 1.3, one self-signed ECDSA P-256 certificate), the balancer links
# the nodes' https URLs, and each viewer connects from a loopback address of its own
# (own_connections): one connection per viewer and host, its requests multiplexed on it.
# VIEWERS=N sets the audience size (default 5,000; small: 300; low_latency*: 1,000); the queue scenario's limit is
# 80 % of it. SEGMENT_S=N sets the ladder's segment duration (default 2; 6 makes a viewer's
# requests a third: 20,000 viewers fit the simulator on one core). Extra arguments go to
# audience (--set duration_s=..., --quiet). Results: $OUT
# (default bench-results/audience-<scenario>-<time>/): scenario.json, result.json,
# report.html, every server's log. Needs a build in $BUILD_DIR (default build/) with the
# targets audience balancer cache_node test_origin ll_origin, and ffmpeg.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
# shellcheck source=scripts/bench/lib.sh
source scripts/bench/lib.sh
NAME=${1:?usage: scripts/bench/audience_bench.sh steady|kickoff|node_kill|walk_out|queue|small|low_latency|low_latency_venue|low_latency_freeze|encoder_failure|low_latency_encoder_failure|low_latency_every_encoder_failure [audience args...]}
shift
TEMPLATE=scripts/bench/audience/$NAME.json
[[ -f $TEMPLATE ]] || { echo "no scenario $TEMPLATE" >&2; exit 2; }
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
for bin in src/audience/audience src/balancer/balancer src/cache_node/cache_node tests/support/test_origin tests/support/ll_origin; do
  [[ -x $BUILD_DIR/$bin ]] || { echo "missing $BUILD_DIR/$bin; build it: ninja -C $BUILD_DIR audience balancer cache_node test_origin ll_origin" >&2; exit 1; }
done
command -v ffmpeg >/dev/null || { echo "ffmpeg is required (the live source)" >&2; exit 1; }
OUT=${OUT:-$ROOT/bench-results/audience-$NAME-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
WORK=$(mktemp -d)
PIDS=()

SOURCE=/files/live/master.m3u8
if [[ $NAME == low_latency* ]]; then
  # 8 s of CMAF in two renditions (a keyframe a second, parts of 0.25 s), encoded once and
  # published part by part in a loop, as the demo's low-latency channel.
  log "low-latency source: ll_origin, 2 renditions (400k/1200k), parts of 0.25 s, 1 s segments"
  scripts/ll_material.sh "$WORK"
  LL_CLOCK_MS=$(date +%s%3N)
  spawn "$OUT/origin.log" "$BUILD_DIR/tests/support/ll_origin" --port 0 --segment 1 \
    --clock-start-ms "$LL_CLOCK_MS" --rendition "low=$WORK/low.mp4" --rendition "high=$WORK/high.mp4"
  ORIGIN_PID=$SPAWNED
  ORIGIN_PORT=$(wait_listening "$OUT/origin.log" 10 "$ORIGIN_PID") || { echo "the origin did not start" >&2; exit 1; }
  SOURCE=/master.m3u8
  if [[ $NAME == *encoder_failure ]]; then
    # The backup: the same media on the same clock, numbered from 1000, as a second encoder.
    spawn "$OUT/origin-b.log" "$BUILD_DIR/tests/support/ll_origin" --port 0 --segment 1 \
      --clock-start-ms "$LL_CLOCK_MS" --first-msn 1000 \
      --rendition "low=$WORK/low.mp4" --rendition "high=$WORK/high.mp4"
    ORIGIN_B_PID=$SPAWNED
    ORIGIN_B_PORT=$(wait_listening "$OUT/origin-b.log" 10 "$ORIGIN_B_PID") || { echo "the backup origin did not start" >&2; exit 1; }
  fi
else
  log "live source: ffmpeg, 3 variants (800k/400k/200k), ${SEGMENT_S:-2} s segments"
  spawn_live_ladder "$OUT/ffmpeg.log" "$WORK/origin" "${SEGMENT_S:-2}"
  FFMPEG_PID=$SPAWNED

  spawn "$OUT/origin.log" "$BUILD_DIR/tests/support/test_origin" --port 0 --root "$WORK/origin"
  ORIGIN_PID=$SPAWNED
  ORIGIN_PORT=$(wait_listening "$OUT/origin.log" 10 "$ORIGIN_PID") || { echo "the origin did not start" >&2; exit 1; }
  if [[ $NAME == encoder_failure ]]; then
    # The backup: a second origin server of the same encoder's output (an epoch-locked twin's
    # packager: the same names and bytes), the nodes' twin of the first.
    spawn "$OUT/origin-b.log" "$BUILD_DIR/tests/support/test_origin" --port 0 --root "$WORK/origin"
    ORIGIN_B_PID=$SPAWNED
    ORIGIN_B_PORT=$(wait_listening "$OUT/origin-b.log" 10 "$ORIGIN_B_PID") || { echo "the backup origin did not start" >&2; exit 1; }
  fi
fi
TWO_SOURCES=0
NODE_SOURCES=()
BALANCER_SOURCES=()
CHANNEL_SOURCE="\"origin\":\"demo\",\"source\":\"$SOURCE\""
if [[ $NAME == *encoder_failure ]]; then
  TWO_SOURCES=1
  NODE_SOURCES=(--set origins.demo-b.url="http://127.0.0.1:$ORIGIN_B_PORT")
  [[ $NAME == encoder_failure ]] && NODE_SOURCES+=(--set 'origins.demo.twin="demo-b"' --set 'origins.demo-b.twin="demo"')
  BALANCER_SOURCES=(--set origins.demo-b.url="http://127.0.0.1:$ORIGIN_B_PORT")
  CHANNEL_SOURCE="\"sources\":[{\"origin\":\"demo\",\"source\":\"$SOURCE\"},{\"origin\":\"demo-b\",\"source\":\"$SOURCE\"}],\"failover\":{\"failback\":\"manual\"}"
fi

TLS=${TLS:-0}
NODE_TLS=()
if [[ $TLS == 1 ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/key.pem" \
    -out "$WORK/cert.pem" -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null
  NODE_TLS=(--set listen.tls.enabled=true --set listen.tls.port=0 --set listen.tls.certificate="$WORK/cert.pem" --set listen.tls.key="$WORK/key.pem")
fi
# The TLS port a server printed in its "listening" line.
tls_port_of() { grep -m1 '"event" *: *"listening"' "$1" | sed -n 's/.*"tls_port" *: *\([0-9][0-9]*\).*/\1/p'; }

declare -A NODE_PID NODE_PORT NODE_URL
for node in a b; do
  spawn "$OUT/cache-$node.log" "$BUILD_DIR/src/cache_node/cache_node" --config conf/cache_node.json \
    --set node_id=venue-$node --set site=venue --set listen.port=0 --set listen.tls.enabled=false \
    --set data_dir="$WORK/cache-$node" --set origins.demo.url="http://127.0.0.1:$ORIGIN_PORT" \
    --set server.access_log=false --set server.max_connections=100000000 --set server.max_connections_per_address=0 --set overload.max_egress_mbps=100000 --set overload.max_connections=100000 \
    "${NODE_SOURCES[@]}" "${NODE_TLS[@]}"
  NODE_PID[$node]=$SPAWNED
  NODE_PORT[$node]=$(wait_listening "$OUT/cache-$node.log" 10 "$SPAWNED") || { echo "cache node $node did not start" >&2; exit 1; }
  NODE_URL[$node]=http://127.0.0.1:${NODE_PORT[$node]}
  [[ $TLS == 1 ]] && NODE_URL[$node]=https://127.0.0.1:$(tls_port_of "$OUT/cache-$node.log")
done

mkdir -p "$WORK/conf"
cat > "$WORK/conf/channels.json" <<JSON
{"channels":[{"id":"demo","title":"Demo",$CHANNEL_SOURCE,"free":true,"kind":"live"}]}
JSON
cat > "$WORK/conf/caches.json" <<JSON
{"caches":[{"id":"venue-a","site":"venue","url":"${NODE_URL[a]}","health_url":"http://127.0.0.1:${NODE_PORT[a]}/health","networks":[]},
           {"id":"venue-b","site":"venue","url":"${NODE_URL[b]}","health_url":"http://127.0.0.1:${NODE_PORT[b]}/health","networks":[]}]}
JSON
# Loopback is not a NIC: the example configuration's traffic limit (8,000 Mbit/s) and the
# nodes' egress overload threshold (900 Mbit/s) would queue viewers and send them to origin.
LIMITS=(--set limits.max_traffic_mbps=0)
VIEWERS=${VIEWERS:-$(case $NAME in small) echo 300 ;; low_latency*) echo 1000 ;; *) echo 5000 ;; esac)}
# The stream limit (10,000 in the example configuration) is the queue scenario's subject only:
# elsewhere every viewer of the audience is admitted, however many.
if [[ $NAME == queue ]]; then
  LIMITS+=(--set limits.max_streams=$((VIEWERS * 8 / 10)))
else
  LIMITS+=(--set limits.max_streams=$((VIEWERS > 10000 ? VIEWERS : 10000)))
fi
# Gates open on a running stream: a live window of 4 segments first (a viewer arriving
# on a 1-segment window starts at the live edge and stalls on every late segment).
log "waiting for 4 segments of the live window"
for ((i = 0; i < 150 * ${SEGMENT_S:-2}; i++)); do
  if [[ $NAME == low_latency* ]]; then
    (($(curl -s "http://127.0.0.1:$ORIGIN_PORT/low/index.m3u8" | grep -c EXTINF || true) >= 4)) && break
  else
    (($(grep -c EXTINF "$WORK/origin/live/v2/index.m3u8" 2>/dev/null || echo 0) >= 4)) && break
  fi
  sleep 0.1
done
spawn "$OUT/balancer.log" "$BUILD_DIR/src/balancer/balancer" --config conf/balancer.json \
  --set listen.port=0 --set listen.tls.enabled=false --set channels_file="$WORK/conf/channels.json" \
  --set caches_file="$WORK/conf/caches.json" --set origins.demo.url="http://127.0.0.1:$ORIGIN_PORT" \
  --set playback.allow_anonymous=true --set 'limits.per_address_exempt=["127.0.0.0/8"]' \
  --set api.data_dir="$WORK/api" --set server.access_log=false --set server.max_connections=100000000 --set server.max_connections_per_address=0 "${LIMITS[@]}" \
  "${BALANCER_SOURCES[@]}" "${NODE_TLS[@]}"
BALANCER_PID=$SPAWNED
BALANCER_PORT=$(wait_listening "$OUT/balancer.log" 10 "$BALANCER_PID") || { echo "the balancer did not start" >&2; exit 1; }
BALANCER_URL=http://127.0.0.1:$BALANCER_PORT
VIEWER_SETS=()
if [[ $TLS == 1 ]]; then
  BALANCER_URL=https://127.0.0.1:$(tls_port_of "$OUT/balancer.log")
  # Every viewer holds a connection to the balancer and one to its node.
  VIEWER_SETS=(--set own_connections=true --set ca_file="$WORK/cert.pem" --set max_host_connections=$((VIEWERS > 1024 ? 2 * VIEWERS : 2048)))
fi

PROCESSES="{\"name\":\"balancer\",\"pid\":$BALANCER_PID},{\"name\":\"venue-a\",\"pid\":${NODE_PID[a]}},{\"name\":\"venue-b\",\"pid\":${NODE_PID[b]}},{\"name\":\"origin\",\"pid\":$ORIGIN_PID}"
# The low-latency source was encoded once: no encoder runs.
[[ $NAME == low_latency* ]] || PROCESSES+=",{\"name\":\"ffmpeg\",\"pid\":$FFMPEG_PID}"
[[ $TWO_SOURCES == 1 ]] && PROCESSES+=",{\"name\":\"origin-b\",\"pid\":$ORIGIN_B_PID}"
METRICS="{\"name\":\"venue-a\",\"url\":\"http://127.0.0.1:${NODE_PORT[a]}/metrics\"},{\"name\":\"venue-b\",\"url\":\"http://127.0.0.1:${NODE_PORT[b]}/metrics\"}"
sed -e "s|@VIEWERS@|$VIEWERS|g" -e "s|@BALANCER@|$BALANCER_URL|" -e "s|@PROCESSES@|$PROCESSES|" -e "s|@METRICS@|$METRICS|" \
  -e "s|@ORIGIN@|http://127.0.0.1:$ORIGIN_PORT|g" -e "s|@ORIGIN_B@|http://127.0.0.1:${ORIGIN_B_PORT:-0}|g" \
  "$TEMPLATE" > "$OUT/scenario.json"
log "scenario $NAME: $OUT/scenario.json; load before: $(loadavg)"
STARTED_MS=$(date +%s%3N)
"$BUILD_DIR/src/audience/audience" "$OUT/scenario.json" --json "$OUT/result.json" --html "$OUT/report.html" "${VIEWER_SETS[@]}" "$@"
log "load after: $(loadavg)"
python3 - "$OUT/result.json" "$OUT/balancer.log" "$STARTED_MS" <<'PY'
import datetime, json, re, sys
d = json.load(open(sys.argv[1]))
# A channel's source switches, from the balancer's log, in seconds from the audience's start.
started = int(sys.argv[3]) / 1000
for line in open(sys.argv[2], errors="replace"):
    m = re.match(r"(\S+Z) warn balancer: (channel .*source .*)", line)
    if m:
        at = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
        print(f"at {at.timestamp() - started:.2f} s: {m.group(2)}")
r = d["requests"]
print(f"viewers started {d['viewers']['started']}, stalls {d['stalls']['count']} ({d['stalls']['stalled_s']} s) in {d['viewers']['with_stalls']} viewers, fatal {d['fatal']}, media playlists {d.get('media_playlists', {})}")
print(f"startup s: p50 {d['startup_s']['p50']} p95 {d['startup_s']['p95']} max {d['startup_s']['max']}")
print(f"media playlist ms: p50 {r['media']['latency_ms']['p50']} p99 {r['media']['latency_ms']['p99']}; segment ms p99 {r['segment']['latency_ms']['p99']}; part ms p99 {r['part']['latency_ms']['p99']}")
b = d["behind_live_s"]
print(f"behind live s: p50 {b['samples']['p50']} p95 {b['samples']['p95']} max {b['samples']['max']}; viewers' means p50 {b['viewer_mean']['p50']} p95 {b['viewer_mean']['p95']} max {b['viewer_mean']['max']}")
print(f"failover s: {d['failover_s']}; queue: {d['queue']}")
print(f"origin fetches: {d['origin_fetches']} (distinct segments asked {d['segments_distinct']})")
for name, w in d["windows"].items():
    print(f"window {name}: stalls {w['stalls']}, media playlist ms {w['media_playlist_ms']}, per viewer-minute {w['requests_per_viewer_minute']}")
print(f"processes: {d['processes']}")
PY
if [[ $TLS == 1 ]]; then
  # How the viewers came: TLS handshakes and the connections that went on in HTTP/2, per server.
  for server in balancer:$BALANCER_PORT venue-a:${NODE_PORT[a]} venue-b:${NODE_PORT[b]}; do
    figures=$(curl -s --max-time 5 "http://127.0.0.1:${server#*:}/metrics" |
      grep -E '^(tls_handshakes_total|http2_connections_total)' | tr '\n' ' ' || true)
    log "${server%%:*}: ${figures:-no metrics (not running)}"
  done
fi
log "report: $OUT/report.html"

#!/usr/bin/env bash
# How far behind live viewers are, through our stack and through the others, in one run.
#
# (1) Low-Latency HLS side by side: the same LL origin (ll_origin: ffmpeg-made CMAF, parts of
# 0.25 s, 1 s segments) behind our stack (the balancer and one cache node), nginx
# (proxy_cache with proxy_cache_lock) and Varnish (its defaults: streaming, request
# coalescing), one after the other. For each: VIEWERS simulated LL viewers (`audience`,
# blocking reloads, parts and hints, the top rendition) play for DURATION_S while a player
# (SIDE_PLAYER: hls.js by default, in lowLatencyMode, Debian's chromium; or Shaka Player or
# video.js/VHS in theirs) plays through it, beside a second page of the same player playing
# straight from a twin origin (same material, same clock, its own process, so its requests are
# not counted). Reported per server: the player's latency behind live by EXT-X-PROGRAM-DATE-TIME
# (p50/p95/max) and stalls, the same of the direct page, the simulated viewers' latency and
# stalls, and the origin's requests per part published: part requests and media playlist
# requests (blocking reloads) of the top rendition.
#
# (2) Each player (hls.js, Shaka Player, video.js/VHS) on the regular channel (ffmpeg live,
# 2 s segments, test_origin) and on the LL channel in its low-latency mode: through the stack
# and straight from the origin, side by side, PLAYER_S seconds each: the latency the stack
# adds.
#   scripts/bench/latency_bench.sh
# Environment: VIEWERS (200), DURATION_S (60), PLAYER_S (30), BENCH_PARTS ("side_by_side
# players"), BENCH_PEERS ("stack nginx varnish"), SIDE_PLAYER (hlsjs|shaka|videojs: the
# player of part (1)), BENCH_PLAYERS ("hlsjs shaka videojs": those of part (2)),
# PART_HOLD_BACK (the LL origin's PART-HOLD-BACK in s; ll_origin's default, 3 part targets),
# LL_ORIGIN_VERBOSE=1 (the origins log every request), LL_MATERIAL=light (320x180 at 15 fps:
# cheaper for the browsers to decode beside the servers),
# BUILD_DIR (build/), OUT (bench-results/latency-<time>/), BENCH_KEEP=1 keeps the temp dir.
# Needs the targets audience balancer cache_node ll_origin test_origin, ffmpeg, node with the
# browser tests' packages (scripts/browser_test.sh installs them) and chromium; nginx and
# varnishd (scripts/setup.sh --bench) or their rows say why they are missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
# shellcheck source=scripts/bench/lib.sh
source scripts/bench/lib.sh
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
for bin in src/audience/audience src/balancer/balancer src/cache_node/cache_node tests/support/ll_origin tests/support/test_origin; do
  [[ -x $BUILD_DIR/$bin ]] || { echo "missing $BUILD_DIR/$bin; build it: ninja -C $BUILD_DIR audience balancer cache_node ll_origin test_origin" >&2; exit 1; }
done
command -v ffmpeg >/dev/null || { echo "ffmpeg is required (the material)" >&2; exit 1; }
command -v node >/dev/null || { echo "node is required (scripts/setup.sh)" >&2; exit 1; }
[[ -d tests/browser/node_modules/playwright-core && -f web/node_modules/hls.js/dist/hls.min.js ]] ||
  { echo "the browser tests' packages are missing: run scripts/browser_test.sh --only none once" >&2; exit 1; }
VIEWERS=${VIEWERS:-200}
DURATION_S=${DURATION_S:-60}
PLAYER_S=${PLAYER_S:-30}
WANTED_PARTS=${BENCH_PARTS:-"side_by_side players"}
WANTED_PEERS=${BENCH_PEERS:-"stack nginx varnish"}
WANTED_PLAYERS=${BENCH_PLAYERS:-"hlsjs shaka videojs"}
SIDE_PLAYER=${SIDE_PLAYER:-hlsjs}
[[ $SIDE_PLAYER =~ ^(hlsjs|shaka|videojs)$ ]] || { echo "SIDE_PLAYER must be hlsjs, shaka or videojs" >&2; exit 2; }
OUT=${OUT:-$ROOT/bench-results/latency-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
WORK=$(mktemp -d)
PIDS=()

log "material: ffmpeg, 2 renditions ($([[ ${LL_MATERIAL:-} == light ]] && echo "320x180, 15 fps" || echo "640x360, 30 fps")), parts of 0.25 s"
scripts/ll_material.sh "$WORK/material"
ORIGIN_ARGS=()
[[ -n ${PART_HOLD_BACK:-} ]] && ORIGIN_ARGS=(--part-hold-back "$PART_HOLD_BACK")
# LL_ORIGIN_VERBOSE=1: the origin logs each request it counts (origin.log).
[[ ${LL_ORIGIN_VERBOSE:-0} == 1 ]] && ORIGIN_ARGS+=(--verbose)
start_origin() { # <name>: sets ORIGIN_PORT
  spawn "$OUT/$1.log" "$BUILD_DIR/tests/support/ll_origin" --port 0 --segment 1 "${ORIGIN_ARGS[@]}" \
    --rendition "low=$WORK/material/low.mp4" --rendition "high=$WORK/material/high.mp4"
  ORIGIN_PORT=$(wait_listening "$OUT/$1.log" 10 "$SPAWNED") || { echo "$1 did not start" >&2; exit 1; }
}
start_origin origin
ORIGIN=http://127.0.0.1:$ORIGIN_PORT
start_origin twin
TWIN=http://127.0.0.1:$ORIGIN_PORT
LIVE=""
if [[ $WANTED_PARTS == *players* ]]; then
  log "live source: ffmpeg, 3 variants (800k/400k/200k), 2 s segments, program dates"
  spawn_live_ladder "$OUT/ffmpeg.log" "$WORK/live"
  spawn "$OUT/live-origin.log" "$BUILD_DIR/tests/support/test_origin" --port 0 --root "$WORK/live"
  LIVE=http://127.0.0.1:$(wait_listening "$OUT/live-origin.log" 10 "$SPAWNED") || { echo "test_origin did not start" >&2; exit 1; }
fi

# ---------------------------------------------------------------- the servers
declare -A PEER_URL=() PEER_PLAYLIST=() PEER_SKIP=() PEER_NOTE=()
start_stack() {
  spawn "$OUT/cache-node.log" "$BUILD_DIR/src/cache_node/cache_node" --config conf/cache_node.json \
    --set node_id=venue-a --set site=venue --set listen.port=0 --set listen.tls.enabled=false \
    --set data_dir="$WORK/cache-node" --set origins.demo.url="$ORIGIN" --set origins.live.url="${LIVE:-$ORIGIN}" \
    --set server.access_log=false --set server.max_connections=100000000 --set server.max_connections_per_address=0 --set overload.max_egress_mbps=100000 --set overload.max_connections=100000
  local node_port
  node_port=$(wait_listening "$OUT/cache-node.log" 10 "$SPAWNED") || { PEER_SKIP[stack]="the cache node did not start"; return; }
  mkdir -p "$WORK/conf"
  echo '{"channels":[{"id":"ll","title":"Low latency","origin":"demo","source":"/master.m3u8","free":true,"kind":"live"},
  {"id":"live","title":"Regular","origin":"live","source":"/files/live/master.m3u8","free":true,"kind":"live"}]}' \
    >"$WORK/conf/channels.json"
  echo "{\"caches\":[{\"id\":\"venue-a\",\"site\":\"venue\",\"url\":\"http://127.0.0.1:$node_port\",\"networks\":[]}]}" \
    >"$WORK/conf/caches.json"
  spawn "$OUT/balancer.log" "$BUILD_DIR/src/balancer/balancer" --config conf/balancer.json \
    --set listen.port=0 --set listen.tls.enabled=false --set channels_file="$WORK/conf/channels.json" \
    --set caches_file="$WORK/conf/caches.json" --set origins.demo.url="$ORIGIN" --set origins.live.url="${LIVE:-$ORIGIN}" \
    --set playback.allow_anonymous=true --set 'limits.per_address_exempt=["127.0.0.0/8"]' \
    --set limits.max_traffic_mbps=0 --set api.data_dir="$WORK/api" --set server.access_log=false --set server.max_connections=100000000 --set server.max_connections_per_address=0
  local port
  port=$(wait_listening "$OUT/balancer.log" 10 "$SPAWNED") || { PEER_SKIP[stack]="the balancer did not start"; return; }
  PEER_URL[stack]=http://127.0.0.1:$port
  PEER_PLAYLIST[stack]=/hls/ll/master.m3u8
  PEER_NOTE[stack]="conf/balancer.json and conf/cache_node.json, one node, access logs off"
}

start_nginx() {
  local port
  port=$(free_port)
  # Cache-Control as the origin sends it (playlists max-age=1, parts 60, errors no-store); the
  # lock makes one origin request per URL however many ask at once.
  start_nginx_in "$WORK/nginx" "${NGINX_WORKERS:-auto}" "$port" "
  proxy_cache_path cache levels=1:2 keys_zone=ll:16m max_size=512m inactive=60s use_temp_path=off;
  upstream origin {
    server 127.0.0.1:${ORIGIN#http://127.0.0.1:};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$port $NGINX_LISTEN;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_cache ll;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 5s;
      proxy_cache_lock_age 5s;
      proxy_read_timeout 10s;
    }
  }" || { PEER_SKIP[nginx]=$NGINX_ERROR; return; }
  PEER_URL[nginx]=http://127.0.0.1:$port
  PEER_PLAYLIST[nginx]=/master.m3u8
  PEER_NOTE[nginx]="$NGINX_VERSION, worker_processes ${NGINX_WORKERS:-auto}, proxy_cache + proxy_cache_lock (timeout and age 5 s), origin's Cache-Control"
}

start_varnish() {
  local varnishd dir port
  varnishd=$(find_bin varnishd)
  [[ -n $varnishd ]] || { PEER_SKIP[varnish]="varnishd not installed (apt-get install varnish)"; return; }
  dir="$WORK/varnish"
  port=$(free_port)
  mkdir -p "$dir"
  # The built-in VCL: the origin's Cache-Control, streaming, a waiting list per object.
  cat >"$dir/bench.vcl" <<EOF
vcl 4.1;
backend origin { .host = "127.0.0.1"; .port = "${ORIGIN#http://127.0.0.1:}"; .first_byte_timeout = 10s; }
EOF
  spawn "$dir/out" "$varnishd" -F -j none -a "127.0.0.1:$port" -f "$dir/bench.vcl" -n "$dir/n" -s malloc,256m
  wait_tcp "$port" 30 "$SPAWNED" || { PEER_SKIP[varnish]="failed to start: $(tail -n 5 "$dir/out" | tr '\n' ' ')"; return; }
  PEER_URL[varnish]=http://127.0.0.1:$port
  PEER_PLAYLIST[varnish]=/master.m3u8
  PEER_NOTE[varnish]="$("$varnishd" -V 2>&1 | head -n1 | sed 's/^varnishd (\(varnish-[^ ]*\).*/\1/'), built-in VCL (origin's Cache-Control, streaming, coalescing), -s malloc,256m"
}

PEERS=()
for peer in $WANTED_PEERS; do
  case $peer in
    stack) start_stack ;;
    nginx) start_nginx ;;
    varnish) start_varnish ;;
    *) echo "unknown peer $peer (stack, nginx, varnish)" >&2; exit 2 ;;
  esac
  PEERS+=("$peer")
done

# ---------------------------------------------------------------- one server's run
origin_stats() { curl -sS --max-time 5 "$ORIGIN/__stats"; }
stat_of() { # <json> <key>
  local v
  v=$(printf '%s' "$1" | grep -o "\"$2\":[0-9]*" | head -n1 | cut -d: -f2)
  echo "${v:-0}"
}

# A scenario of LL viewers arriving over 5 s and playing; the window is the player page's.
scenario() { # <peer>
  cat <<JSON
{"name": "low latency side by side: $1", "balancer": "${PEER_URL[$1]}", "channel": "ll",
 "playlist": "${PEER_PLAYLIST[$1]}", "duration_s": $((DURATION_S + 25)), "max_viewers": $VIEWERS,
 "max_host_connections": 2048,
 "player": {"variant": "top", "steering": false, "start_buffer_s": 0.5, "low_latency": true,
            "caches": [$([[ $1 == stack ]] && echo '"venue-a"')]},
 "phases": [{"at_s": 0, "do": "arrive", "viewers": $VIEWERS, "over_s": 5},
            {"at_s": 20, "until_s": $((DURATION_S + 20)), "do": "window", "name": "measured"}]}
JSON
}

ROWS=()
run_peer() { # <peer>
  local peer=$1 dir=$OUT/$1 before after players audience_pid rc=0
  mkdir -p "$dir"
  scenario "$peer" >"$dir/scenario.json"
  before=$(origin_stats)
  log "$peer: $VIEWERS LL viewers and $SIDE_PLAYER for ${DURATION_S} s (load $(loadavg))"
  "$BUILD_DIR/src/audience/audience" "$dir/scenario.json" --json "$dir/result.json" --quiet >"$dir/audience.log" 2>&1 &
  audience_pid=$!
  # An anonymous viewer of the stack names itself and the node it pinged, as the app does.
  local through=${PEER_URL[$peer]}${PEER_PLAYLIST[$peer]}
  [[ $peer == stack ]] && through+="?viewer=bench-$SIDE_PLAYER&cache=venue-a"
  # The player starts with the simulated viewers; what it measures (after a 15 s warm-up)
  # lies within their window.
  players=$(timeout $((DURATION_S + 120)) node scripts/bench/players_latency.mjs --player "$SIDE_PLAYER" --through "$through" \
    --direct "$TWIN/master.m3u8" --seconds "$DURATION_S" --warmup 15 2>"$dir/players.err") || rc=$?
  after=$(origin_stats)
  # Our servers' own account of the run (origin fetches by trigger, coalescing, prefetch).
  [[ $peer == stack ]] && curl -sS --max-time 5 "${PEER_URL[stack]}/metrics" >"$dir/balancer-metrics.txt" 2>/dev/null
  wait "$audience_pid" || log "$peer: audience exited with $? (see $dir/audience.log)"
  printf '%s\n' "$players" >"$dir/players.json"
  [[ $rc == 0 ]] || log "$peer: the players exited with $rc: $(tail -n 3 "$dir/players.err" | tr '\n' ' ')"
  local parts part_req pl_req low_part
  parts=$(($(stat_of "$after" parts_published) - $(stat_of "$before" parts_published)))
  part_req=$(($(stat_of "$after" high/part) - $(stat_of "$before" high/part)))
  pl_req=$(($(stat_of "$after" high/playlist) - $(stat_of "$before" high/playlist)))
  low_part=$(($(stat_of "$after" low/part) - $(stat_of "$before" low/part)))
  ROWS+=("$(python3 - "$peer" "$dir" "$parts" "$part_req" "$pl_req" "$low_part" "${PEER_NOTE[$peer]}" "$SIDE_PLAYER" <<'PY'
import json, sys
peer, d, parts, part_req, pl_req, low_part, note, player = sys.argv[1:9]
parts, part_req, pl_req, low_part = int(parts), int(part_req), int(pl_req), int(low_part)
row = {"server": peer, "note": note, "player": player, "origin": {"parts_published": parts,
       "part_requests_per_part": round(part_req / parts, 2) if parts else None,
       "playlist_requests_per_part": round(pl_req / parts, 2) if parts else None,
       "other_rendition_part_requests": low_part}}
try:
    row["browser"] = json.load(open(d + "/players.json"))
except Exception as e:
    row["browser"] = {"error": "no result: " + str(e)}
try:
    r = json.load(open(d + "/result.json"))
    w = r.get("windows", {}).get("measured", {})
    row["audience"] = {"viewers_started": r["viewers"]["started"], "stalls": r["stalls"]["count"],
                       "stalls_in_window": w.get("stalls"), "fatal": r["fatal"],
                       "behind_live_s": r["behind_live_s"]["samples"],
                       "media_playlist_ms": r["requests"]["media"]["latency_ms"],
                       "part_ms": r["requests"]["part"]["latency_ms"]}
except Exception as e:
    row["audience"] = {"error": "no result: " + str(e)}
print(json.dumps(row))
PY
)")
}

# The twin and the origin publish from the same clock; wait for both live windows.
for ((i = 0; i < 100; i++)); do
  (($(curl -s "$ORIGIN/high/index.m3u8" | grep -c EXTINF || true) >= 4)) && break
  sleep 0.1
done
if [[ $WANTED_PARTS == *side_by_side* ]]; then
  for peer in "${PEERS[@]}"; do
    if [[ -n ${PEER_SKIP[$peer]:-} ]]; then
      ROWS+=("{\"server\":\"$peer\",\"skipped\":$(json_str "${PEER_SKIP[$peer]}")}")
      log "$peer: skipped: ${PEER_SKIP[$peer]}"
      continue
    fi
    run_peer "$peer"
  done
fi

# ---------------------------------------------------------------- (2) each player, through and direct
PLAYER_ROWS=()
if [[ $WANTED_PARTS == *players* ]]; then
  if [[ -z ${PEER_URL[stack]:-} ]]; then
    if [[ -z ${PEER_SKIP[stack]:-} ]]; then start_stack; fi
  fi
  log "waiting for 4 segments of the regular channel's live window"
  for ((i = 0; i < 300; i++)); do
    (($(grep -c EXTINF "$WORK/live/live/v2/index.m3u8" 2>/dev/null || echo 0) >= 4)) && break
    sleep 0.1
  done
  for player in $WANTED_PLAYERS; do
    for channel in live ll; do
      dir=$OUT/players/$player-$channel
      mkdir -p "$dir"
      if [[ -z ${PEER_URL[stack]:-} ]]; then
        PLAYER_ROWS+=("{\"player\":\"$player\",\"channel\":\"$channel\",\"skipped\":$(json_str "${PEER_SKIP[stack]:-no stack}")}")
        continue
      fi
      # /hls/<channel><source path>, as an anonymous viewer that pinged the node.
      if [[ $channel == ll ]]; then
        source_path=/master.m3u8 direct=$TWIN/master.m3u8 ll=1
      else
        source_path=/files/live/master.m3u8 direct=$LIVE/files/live/master.m3u8 ll=0
      fi
      through="${PEER_URL[stack]}/hls/$channel$source_path?viewer=bench-$player-$channel&cache=venue-a"
      log "$player on the $channel channel: through the stack and direct, ${PLAYER_S} s (load $(loadavg))"
      rc=0
      measured=$(timeout $((PLAYER_S + 120)) node scripts/bench/players_latency.mjs --player "$player" \
        --ll "$ll" --through "$through" --direct "$direct" \
        --seconds "$PLAYER_S" --warmup 10 2>"$dir/players.err") || rc=$?
      [[ $rc == 0 ]] || log "$player $channel: exited with $rc: $(tail -n 3 "$dir/players.err" | tr '\n' ' ')"
      [[ -n $measured ]] || measured="{\"error\":$(json_str "exit $rc: $(tail -n 3 "$dir/players.err")")}"
      printf '%s\n' "$measured" >"$dir/players.json"
      PLAYER_ROWS+=("{\"player\":\"$player\",\"channel\":\"$channel\",\"result\":$measured}")
    done
  done
fi

{
  printf '{"bench":"latency","viewers":%s,"duration_s":%s,"player_s":%s,"part_target_s":0.25,"cores":%s,"load":"%s",' \
    "$VIEWERS" "$DURATION_S" "$PLAYER_S" "$(nproc)" "$(loadavg)"
  printf '"side_by_side":[%s],"players":[%s]}\n' "$(join "${ROWS[@]}")" "$(join "${PLAYER_ROWS[@]}")"
} >"$OUT/result.json"
python3 - "$OUT/result.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
fmt = lambda v: "-" if v is None else f"{v}"
if d["side_by_side"]:
    player = d["side_by_side"][0].get("player", "player")
    print(f"(1) LL-HLS side by side: {d['viewers']} simulated LL viewers + {player} per server, {d['duration_s']} s, parts of 0.25 s")
    print(f"{'server':8} {player + ' p50':>10} {'p95':>6} {'max':>6} {'stalls':>6} {'direct p50':>10} {'added':>6} | "
          f"{'sim p50':>7} {'p95':>6} {'stalls':>6} | {'origin part/part':>16} {'playlist/part':>13}")
for r in d["side_by_side"]:
    if r.get("skipped"):
        print(f"{r['server']:8} skipped: {r['skipped']}")
        continue
    h, a, o = r["browser"], r["audience"], r["origin"]
    t, dr = h.get("through", {}), h.get("direct", {})
    lat = t.get("latency_s", {})
    sim = a.get("behind_live_s", {}) or {}
    print(f"{r['server']:8} {fmt(lat.get('p50')):>10} {fmt(lat.get('p95')):>6} {fmt(lat.get('max')):>6} "
          f"{fmt(t.get('stalls')):>6} {fmt(dr.get('latency_s', {}).get('p50')):>10} {fmt(h.get('added_s')):>6} | "
          f"{fmt(sim.get('p50')):>7} {fmt(sim.get('p95')):>6} {fmt(a.get('stalls_in_window')):>6} | "
          f"{fmt(o['part_requests_per_part']):>16} {fmt(o['playlist_requests_per_part']):>13}")
if d["players"]:
    print(f"(2) each player through the stack and direct, {d['player_s']} s each")
    print(f"{'player':8} {'channel':8} {'through p50':>11} {'p95':>6} {'stalls':>6} {'direct p50':>10} {'stalls':>6} {'added':>6}")
for r in d["players"]:
    res = r.get("result") or {}
    if r.get("skipped") or res.get("error"):
        print(f"{r['player']:8} {r['channel']:8} {r.get('skipped') or res.get('error')}")
        continue
    t, dr = res["through"], res["direct"]
    print(f"{r['player']:8} {r['channel']:8} {fmt(t['latency_s']['p50']):>11} {fmt(t['latency_s']['p95']):>6} {t['stalls']:>6} "
          f"{fmt(dr['latency_s']['p50']):>10} {dr['stalls']:>6} {fmt(res.get('added_s')):>6}")
PY
log "result: $OUT/result.json"

#!/usr/bin/env bash
# Compares the Balancer cache node (threads: 1 and threads: 2) with nginx and Varnish on this
# machine, in one run, all in front of the same test_origin:
#   (a) hit throughput (wrk) for three cached objects: 2 KiB, a live media playlist of
#       about 1.5 KiB (m3u8 content type) and a 1 MiB chunk, against nginx serving the
#       same bytes as static files (worker_processes auto), plus nginx proxy_cache and
#       Varnish with the object cached;
#   (b) first-byte latency of a herd of N waiters (N=100, 1000) on a cold 1 MiB chunk
#       whose origin answers after 200 ms and sends at 50 Mbit/s, origin fetches, and the
#       targets: p95 <= origin + 50 ms at N=100, <= origin + 150 ms at N=1000;
#   (c) slow origin: 1 MiB over ~7 s, N=100: first byte and origin fetches;
#   (d) one site of 3 cache nodes (site_nodes, threads: 1 each): the (b) herd of N spread
#       over the 3 nodes at once against the same herd on one node; targets: origin 1 fetch
#       per chunk, herd first-byte p95 <= the single node's + 20 ms;
#   (e) prefetch: time to first byte of a viewer's first request for a 1 MiB chunk (origin
#       200 ms to first byte), cold against prefetched (POST /prefetch, then the request once
#       the node has it); target: prefetched p95 <= 10 ms, X-Cache HIT.
#   (f) a hot object refreshed: 2 KiB whose origin says max-age=1 and answers after 200 ms,
#       wrk at 50 connections on each cache as configured (node: conf/cache_node.json; nginx:
#       the origin's lifetime, proxy_cache_use_stale updating + background_update; Varnish:
#       ttl 1 s, its default grace) against nginx serving the same bytes as a static file;
#       target: p99 <= 2 x nginx_static's p99.
#   (g) memory per connection: a fresh node (threads: 2) and a fresh nginx static, each holding
#       N idle keep-alive connections, then N busy ones (wrk): VmRSS over the baseline.
# Prints a table and writes a JSON results file. Not run in CI.
#
# Usage: scripts/bench/cache_node_bench.sh [--build DIR] [--out FILE] [--quick]
#   --build DIR  build tree with tests/support/{test_origin,herd} and, if built,
#                src/cache_node/cache_node (default: build, or $BUILD_DIR)
#   --out FILE   JSON results (default: bench-results/cache_node-<time>.json)
#   --quick      wrk 3 s, no slow-origin case (a smoke run, about a minute)
# Environment: BENCH_WRK_SECONDS (10), BENCH_CONNECTIONS ("64": wrk connections, a list),
# BENCH_THREADS ("1 2": the cache node's threads, one node each), BENCH_NGINX_WORKERS
# (the last of BENCH_THREADS: one worker per loop of ours; lib.sh's start_nginx_in, varnish_tuning
# and BENCH_BACKLOG (4096) set every peer's and our own accept queue), BENCH_WRK_THREADS (2), BENCH_HERD_SIZES ("100 1000"), BENCH_PEERS ("cache_node
# nginx varnish"), BENCH_SITE=0 skips (d), BENCH_PREFETCH_CHUNKS (20; 0 skips (e)),
# BENCH_MEMORY_CONNECTIONS ("6000": N of (g), a list; 0 skips), BENCH_KEEP=1 keeps the temp dir
# with the server logs. A missing peer (nginx, varnishd, wrk, cache_node) is reported and
# skipped; the script still exits 0.
#
# Everything listens on 127.0.0.1 (ephemeral or free ports), lives in one temp dir
# and is stopped by pid on exit. Whole run: about 5 minutes.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
OUT_FILE=""
QUICK=0
WRK_SECONDS=${BENCH_WRK_SECONDS:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
CN_THREAD_COUNTS=${BENCH_THREADS:-"1 2"}
NGINX_WORKERS=${BENCH_NGINX_WORKERS:-${CN_THREAD_COUNTS##* }}  # one worker per loop of ours
WRK_THREADS=${BENCH_WRK_THREADS:-2}
HERD_SIZES=${BENCH_HERD_SIZES:-"100 1000"}
MEMORY_CONNECTIONS=${BENCH_MEMORY_CONNECTIONS:-"6000"}
WANTED_PEERS=${BENCH_PEERS:-"cache_node nginx varnish"}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD_DIR=$2; shift 2 ;;
    --out) OUT_FILE=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $BUILD_DIR = /* ]] || BUILD_DIR="$ROOT_DIR/$BUILD_DIR"
[[ $QUICK = 1 ]] && WRK_SECONDS=3

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

LOAD_START=$(loadavg)
log "work dir $WORK; load average $LOAD_START on $(nproc) cores"

# ---------------------------------------------------------------- content
# The hit objects are files under the origin's --root: the caches fetch them from
# /files/hit/..., nginx_static reads the same files from disk.
mkdir -p "$WORK/root/hit"
head -c 2048 /dev/urandom >"$WORK/root/hit/object-2k.bin"
head -c 1048576 /dev/urandom >"$WORK/root/hit/chunk-1m.ts"
# A live media playlist as packagers write it: 14 segments of 4 s, each with its
# EXT-X-PROGRAM-DATE-TIME (about 1.5 KiB).
{
  printf '#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:183420\n'
  printf '#EXT-X-DISCONTINUITY-SEQUENCE:2\n#EXT-X-INDEPENDENT-SEGMENTS\n'
  for ((i = 0; i < 14; i++)); do
    printf '#EXT-X-PROGRAM-DATE-TIME:2024-05-04T18:%02d:%02d.000Z\n#EXTINF:4.000,\nvideo_1080p/segment_%08d.ts\n' \
      $((30 + i * 4 / 60)) $((i * 4 % 60)) $((183420 + i))
  done
} >"$WORK/root/hit/live.m3u8"
# name|file under root|content type every peer should send
OBJECTS=("2k|hit/object-2k.bin|application/octet-stream"
  "playlist|hit/live.m3u8|application/vnd.apple.mpegurl"
  "1m|hit/chunk-1m.ts|video/mp2t")

# ---------------------------------------------------------------- start the origin
spawn "$WORK/origin.out" "$TEST_ORIGIN" --host 127.0.0.1 --port 0 --root "$WORK/root"
ORIGIN_PORT=$(wait_listening "$WORK/origin.out" 10 "$SPAWNED") || {
  echo "test_origin did not start:" >&2; cat "$WORK/origin.out" >&2; exit 1; }
ORIGIN_URL="http://127.0.0.1:$ORIGIN_PORT"
log "test_origin on port $ORIGIN_PORT"

# ---------------------------------------------------------------- start the peers
# Peers: cache_node_t<N> (one per BENCH_THREADS entry), nginx_static and nginx_proxy (one
# nginx), varnish. PEER_URL: base of the herd URLs (+ /x/.../gen/...); HIT_BASE: base of
# the hit objects (+ /hit/...).
declare -A PEER_URL=() HIT_BASE=() PEER_SKIP=() PEER_NOTE=() PEER_PID=() PEER_LOG=() PEER_DIED=()
PEERS=()        # every running peer, in table order
HERD_PEERS=()   # the caches

start_cache_node() {
  local name=$1 threads=$2 port
  if [[ ! -x $CACHE_NODE ]]; then
    PEER_SKIP[$name]="not built ($CACHE_NODE missing; cmake --build $BUILD_DIR --target cache_node)"
    return
  fi
  mkdir -p "$WORK/$name/data"
  # conf/cache_node.json is relative to the project root. Its stdout and stderr share
  # one log; the listening line is found by its "event" key.
  cd "$ROOT_DIR"
  spawn "$WORK/$name/log" "$CACHE_NODE" --config conf/cache_node.json --set listen.port=0 \
    --set threads="$threads" --set data_dir="$WORK/$name/data" \
    --set origins.demo.url="$ORIGIN_URL" --set signing.required=false --set server.access_log=false --set server.max_connections=100000000 --set server.max_connections_per_address=0 \
    --set server.listen_backlog="$PEER_BACKLOG"
  cd - >/dev/null
  if ! port=$(wait_listening "$WORK/$name/log" 15 "$SPAWNED"); then
    PEER_SKIP[$name]="failed to start: $(tail -n 5 "$WORK/$name/log" | tr '\n' ' ')"
    return
  fi
  PEER_URL[$name]="http://127.0.0.1:$port/o/demo"
  HIT_BASE[$name]="http://127.0.0.1:$port/o/demo/files"
  PEER_PID[$name]=$SPAWNED
  PEER_LOG[$name]="$WORK/$name/log"
  PEER_NOTE[$name]="conf/cache_node.json, threads: $threads, signing off, access log off"
  PEERS+=("$name")
  HERD_PEERS+=("$name")
}

start_nginx() {
  local port
  port=$(free_port)
  # origin's playlists say "Cache-Control: max-age=1", which proxy_cache would obey (the
  # playlist object would be refetched every second), hence proxy_ignore_headers; our cache
  # node obeys it and revalidates once a second (counted in the origin column).
  if ! start_nginx_in "$WORK/nginx" "$NGINX_WORKERS" "$port" "
  proxy_cache_path cache levels=1:2 keys_zone=bench:32m max_size=4g inactive=60m use_temp_path=off;
  upstream origin {
    server 127.0.0.1:$ORIGIN_PORT;
    keepalive 32;
  }
  server {
    listen 127.0.0.1:$port $NGINX_LISTEN;
    location /static/ {
      alias $WORK/root/;
    }
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_cache bench;
      proxy_cache_lock on;          # one origin fetch per object; lock_timeout/age 5 s (defaults)
      proxy_cache_valid 200 60m;
      proxy_ignore_headers Cache-Control Expires;
      add_header X-Cache-Status \$upstream_cache_status;
    }
    # (f): the origin's own lifetime; while refreshing, the stale copy (one background fetch).
    location ~ ^/x/[^/]*/gen/2K/hot- {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_cache bench;
      proxy_cache_lock on;
      proxy_cache_use_stale updating;
      proxy_cache_background_update on;
      add_header X-Cache-Status \$upstream_cache_status;
    }
  }"; then
    PEER_SKIP[nginx_static]=$NGINX_ERROR
    PEER_SKIP[nginx_proxy]=$NGINX_ERROR
    return
  fi
  HIT_BASE[nginx_static]="http://127.0.0.1:$port/static"
  PEER_URL[nginx_proxy]="http://127.0.0.1:$port"
  HIT_BASE[nginx_proxy]="http://127.0.0.1:$port/files"
  PEER_PID[nginx_static]=$NGINX_PID PEER_PID[nginx_proxy]=$NGINX_PID
  PEER_LOG[nginx_static]="$WORK/nginx/error.log" PEER_LOG[nginx_proxy]="$WORK/nginx/error.log"
  PEER_NOTE[nginx_static]="$NGINX_VERSION ($(nproc) cores), the files from disk: $NGINX_TUNING"
  PEER_NOTE[nginx_proxy]="the same nginx, proxy_cache + proxy_cache_lock on, proxy_ignore_headers Cache-Control Expires"
  PEERS+=(nginx_static nginx_proxy)
  HERD_PEERS+=(nginx_proxy)
}

start_varnish() {
  local varnishd dir="$WORK/varnish" port
  varnishd=$(find_bin varnishd)
  if [[ -z $varnishd ]]; then
    PEER_SKIP[varnish]="varnishd not installed (apt-get install varnish)"
    return
  fi
  port=$(free_port)
  mkdir -p "$dir"
  # Everything cached for an hour: return (deliver) skips the built-in rules that would
  # follow origin's Cache-Control (the playlist says max-age=1).
  cat >"$dir/bench.vcl" <<EOF
vcl 4.1;
backend origin { .host = "127.0.0.1"; .port = "$ORIGIN_PORT"; }
sub vcl_backend_response {
  if (bereq.url ~ "/hot-") {
    # (f): the origin's lifetime (1 s), Varnish's default grace (10 s).
    set beresp.ttl = 1s;
    return (deliver);
  }
  set beresp.ttl = 1h;
  return (deliver);
}
EOF
  # -j none: no privilege separation, so it runs the same as root or not. Threads for the
  # largest crowd: the most wrk connections or the 1000-client herd (lib.sh, varnish_tuning),
  # at least 600 started up front for the herd's waiters.
  local most=1000 c
  for c in $CONNECTIONS; do ((c > most)) && most=$c; done
  varnish_tuning "${CN_THREAD_COUNTS##* }" "$most"
  ((most < 6000)) && VARNISH_TUNING+=(-p thread_pool_min=600)
  spawn "$dir/out" "$varnishd" -F -j none -a "127.0.0.1:$port" -f "$dir/bench.vcl" \
    -n "$dir/n" -s malloc,256m "${VARNISH_TUNING[@]}"
  if ! wait_tcp "$port" 30 "$SPAWNED"; then
    PEER_SKIP[varnish]="failed to start: $(tail -n 5 "$dir/out" | tr '\n' ' ')"
    return
  fi
  PEER_URL[varnish]="http://127.0.0.1:$port"
  HIT_BASE[varnish]="http://127.0.0.1:$port/files"
  PEER_PID[varnish]=$SPAWNED
  PEER_LOG[varnish]="$dir/out"
  PEER_NOTE[varnish]="$("$varnishd" -V 2>&1 | head -n1 | sed 's/^varnishd (\(varnish-[^ ]*\).*/\1/'), -s malloc,256m, VCL: beresp.ttl = 1h + return (deliver), $VARNISH_TUNING_NOTE"
  PEERS+=(varnish)
  HERD_PEERS+=(varnish)
}

WANTED_NAMES=()  # every peer asked for, for the report
for peer in $WANTED_PEERS; do
  case "$peer" in
    cache_node)
      for t in $CN_THREAD_COUNTS; do
        start_cache_node "cache_node_t$t" "$t"
        WANTED_NAMES+=("cache_node_t$t")
      done
      ;;
    nginx) start_nginx; WANTED_NAMES+=(nginx_static nginx_proxy) ;;
    varnish) start_varnish; WANTED_NAMES+=(varnish) ;;
    *) echo "unknown peer $peer in BENCH_PEERS" >&2; exit 2 ;;
  esac
done
for name in "${WANTED_NAMES[@]}"; do
  if [[ -n ${PEER_SKIP[$name]:-} ]]; then
    log "SKIP $name: ${PEER_SKIP[$name]}"
  else
    log "$name ready (${PEER_NOTE[$name]})"
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

# JSON fragments and table rows collected as we go.
J_WRK=()
J_HERD=()
J_SLOW=()
T_WRK=()
T_HERD=()
T_SLOW=()

# ---------------------------------------------------------------- (a) hit throughput
WRK=$(command -v wrk || true)
WRK_NOTE=""
declare -A RPS=() PROB=() MOVED=() HOT_P99=() HOT_PROB=()
if [[ -z $WRK ]]; then
  WRK_NOTE="wrk not installed (apt-get install wrk): hit throughput skipped"
  log "SKIP (a): $WRK_NOTE"
elif [[ ${#PEERS[@]} -eq 0 ]]; then
  WRK_NOTE="no peer running"
else
  # nginx_static first: every other row's ratio is to it.
  HIT_PEERS=()
  [[ -n ${PEER_PID[nginx_static]:-} ]] && HIT_PEERS+=(nginx_static)
  for peer in "${PEERS[@]}"; do [[ $peer = nginx_static ]] || HIT_PEERS+=("$peer"); done
  for asked in $CONNECTIONS; do
    conns=$(fit_connections "$asked")
    ((conns == asked)) || log "(a) $asked connections do not fit the open-file limit ($(ulimit -n)): $conns instead"
    for entry in "${OBJECTS[@]}"; do
      IFS='|' read -r object file ctype_want <<<"$entry"
      bytes=$(wc -c <"$WORK/root/$file")
      for peer in "${HIT_PEERS[@]}"; do
        peer_alive "$peer" || continue
        url="${HIT_BASE[$peer]}/$file"
        # Warm the cache (twice: some caches store on the first complete response only),
        # then check what the second GET got: status, size, content type.
        curl -sS --max-time 30 -o /dev/null "$url" || true
        check=$(curl -sS --max-time 30 -o "$WORK/check.body" -w '%{http_code} %{size_download} %{content_type}' "$url" || echo "000 0 none")
        read -r status got ctype <<<"$check"
        problem=""
        [[ $status = 200 ]] || problem="warm-up status $status"
        cmp -s "$WORK/check.body" "$WORK/root/$file" || problem="${problem:+$problem, }body differs from the file ($got bytes)"
        [[ ${ctype%%;*} = "$ctype_want" ]] || problem="${problem:+$problem, }Content-Type ${ctype:-none}"
        [[ -n $problem ]] && log "WARNING: $peer $object: $problem"
        before=""
        [[ $peer = nginx_static ]] || before=$(origin_count "/files/$file")
        load=$(loadavg)
        log "(a) wrk $peer $object, $conns connections, for ${WRK_SECONDS}s (load $load)"
        cpu0=$(tree_cpu_ticks "${PEER_PID[$peer]}")
        read -r user0 kernel0 < <(tree_user_kernel_ticks "${PEER_PID[$peer]}")
        loops0=""
        [[ $peer = cache_node* ]] && loops0=$(loop_ticks "${PEER_PID[$peer]}")
        t_start=$(now_us)
        tcp_memory_watch_start
        run_wrk "$WRK_SECONDS" "$conns" "$url"
        tcp_memory_watch_stop
        # The server's CPU per good response (nginx: master and workers; Varnish: its tree),
        # steadier than req/s on a shared machine.
        us_per_req=-
        cpu_pct=$(awk -v a="$cpu0" -v b="$(tree_cpu_ticks "${PEER_PID[$peer]}")" -v hz="$CLK_TCK" \
          -v us=$(($(now_us) - t_start)) 'BEGIN { printf "%.0f", (b - a) / hz * 100 / (us / 1000000) }')
        [[ ${W_RPS:-0} =~ ^[0-9.]+$ ]] && awk -v r="$W_RPS" 'BEGIN { exit !(r > 0) }' &&
          us_per_req=$(awk -v c="$cpu_pct" -v r="$W_RPS" 'BEGIN { printf "%.1f", c / 100 * 1e6 / r }')
        user_kernel=$(user_kernel_us "${PEER_PID[$peer]}" "$user0" "$kernel0" "${W_RPS:-0}" "$t_start")
        user_us=n/a kernel_us=n/a
        [[ $user_kernel = */* ]] && user_us=${user_kernel%/*} kernel_us=${user_kernel#*/}
        loops=-
        [[ -n $loops0 ]] && loops=$(loop_busy "$loops0" "$(loop_ticks "${PEER_PID[$peer]}")" $(($(now_us) - t_start)))
        peer_alive "$peer" || true
        fetches=-
        if [[ $peer != nginx_static ]]; then
          after=$(origin_count "/files/$file")
          fetches="?"
          [[ -n $before && -n $after ]] && fetches=$((after - before))
        fi
        RPS[$peer/$object/$conns]=$W_RPS
        PROB[$peer/$object/$conns]=$W_PROBLEM
        MOVED[$peer/$object/$conns]=$W_MOVED_MIBPS
        [[ $W_FLAG = ok ]] || log "WARNING: $peer $object c$conns: INVALID run, $W_PROBLEM"
        # A ratio only of two clean runs (lib.sh, checked_ratio); bytes moved likewise.
        vs=- moved_vs=-
        if [[ $peer != nginx_static && -n ${PEER_PID[nginx_static]:-} ]]; then
          checked_ratio "$object c$conns, $peer vs nginx_static" "$peer" "$W_RPS" "$W_PROBLEM" \
            nginx_static "${RPS[nginx_static/$object/$conns]:-}" "${PROB[nginx_static/$object/$conns]:-}"
          vs=$CHECKED_RATIO moved_vs=INVALID
          [[ $vs = INVALID ]] || moved_vs=$(ratio "$W_MOVED_MIBPS" "${MOVED[nginx_static/$object/$conns]:-}")
        fi
        mibps=$(awk -v r="${W_RPS:-0}" -v b="$bytes" 'BEGIN { printf "%.1f", r * b / 1048576 }')
        # The issue's targets for our node: 2 KiB and playlist >= 1.1 x nginx static, 1 MiB >= 1.2 x.
        target=""
        if [[ $peer = cache_node* && $vs =~ ^[0-9.]+$ ]]; then
          want=1.1
          [[ $object = 1m ]] && want=1.2
          target="; target >= $want x: $(verdict "$vs" "$want" ge)"
        fi
        T_WRK+=("$(printf '%-14s %-8s %7s %5s %9s %8s %8s %8s %8s %9s %8s %6s %6s %7s %7s %11s %7s  %s' "$peer" "$object" "$bytes" \
          "$conns" "${W_RPS:-n/a}" "$mibps" "${W_MOVED_MIBPS:-n/a}" "$W_P50" "$W_P99" "${W_NON2XX}/${W_SOCKERR}" "$vs" "$moved_vs" "$fetches" \
          "$TCP_MEM_PEAK_PCT" "$us_per_req" "$user_kernel" "$loops" \
          "$W_FLAG${problem:+; $problem}$target")")
        J_WRK+=("{\"peer\":\"$peer\",\"object\":\"$object\",\"object_bytes\":$bytes,\"content_type\":$(json_str "$ctype"),\"connections\":$conns,\"warm_status\":$((10#$status)),\"check_problem\":$(json_str "$problem"),$(wrk_json),\"mib_per_s\":$mibps,\"problem\":$(json_str "$W_PROBLEM"),\"ratio_to_nginx_static\":$(num_or_null "$(sed 's/^[-A-Z].*//' <<<"$vs")"),\"moved_ratio_to_nginx_static\":$(num_or_null "$(sed 's/^[-A-Z].*//' <<<"$moved_vs")"),\"tcp_memory_peak_pages\":$(num_or_null "$TCP_MEM_PEAK"),\"tcp_memory_peak_pct_of_pressure\":$(num_or_null "$TCP_MEM_PEAK_PCT"),\"origin_requests_during_run\":$(num_or_null "${fetches//[-?]/}"),\"server_cpu_us_per_response\":$(num_or_null "${us_per_req/-/}"),\"server_user_us_per_response\":$(num_or_null "$user_us"),\"server_kernel_us_per_response\":$(num_or_null "$kernel_us"),\"loop_busy_pct\":$(json_str "${loops/#-/}"),\"loadavg_before\":$(json_str "$load")}")
      done
    done
  done
fi

# ---------------------------------------------------------------- herds
# herd_row SCENARIO PEER N URL ORIGIN_PATH TIMEOUT_MS -> appends table + JSON rows. In (b)
# the cache rows are held to the target: fb_p95 <= ORIGIN_FB + 50 ms (N=100) or + 150 ms
# (N=1000), every waiter complete and byte-exact, one origin fetch.
ORIGIN_FB=""
herd_row() {
  local scenario=$1 peer=$2 n=$3 url=$4 opath=$5 timeout_ms=$6 json fetches ok p95 limit="" result="-" why=()
  log "($scenario) herd $peer N=$n"
  json=$(timeout $((timeout_ms / 1000 + 60)) "$HERD" --url "$url" -n "$n" --verify-gen \
    --timeout-ms "$timeout_ms" --json 2>/dev/null || echo '{"setup_error":"herd failed or timed out"}')
  fetches=$(origin_count "$opath")
  [[ $peer = "origin(direct)" ]] || peer_alive "$peer" || true
  ok=$(json_top "$json" ok)
  p95=$(json_in "$json" first_byte_ms p95)
  if [[ $scenario = b && $peer = "origin(direct)" ]]; then
    ORIGIN_FB=$(json_in "$json" first_byte_ms max)
  elif [[ $scenario = b && -n $ORIGIN_FB ]]; then
    case $n in
      100) limit=$(awk -v o="$ORIGIN_FB" 'BEGIN { printf "%.0f", o + 50 }') ;;
      1000) limit=$(awk -v o="$ORIGIN_FB" 'BEGIN { printf "%.0f", o + 150 }') ;;
    esac
    if [[ -n $limit ]]; then
      [[ $(verdict "$p95" "$limit" le) = PASS ]] || why+=("p95")
      [[ ${ok:-0} = "$n" ]] || why+=("ok ${ok:-0}/$n")
      [[ ${fetches:-0} = 1 ]] || why+=("${fetches:-?} fetches")
      if ((${#why[@]} == 0)); then result=PASS; else result="FAIL($(join "${why[@]}"))"; fi
    fi
  fi
  local row
  row=$(printf '%-15s %5s %5s %9s %9s %9s %9s %6s %7s  %s' "$peer" "$n" "${ok:-?}" \
    "$(json_in "$json" first_byte_ms p50)" "${p95:-?}" "$(json_in "$json" first_byte_ms max)" \
    "$(json_in "$json" total_ms p95)" "${fetches:-?}" "${limit:--}" "$result")
  local record
  record="{\"scenario\":\"$scenario\",\"peer\":\"$peer\",\"n\":$n,\"origin_requests\":${fetches:-null},\"target_fb_p95_ms\":$(num_or_null "$limit"),\"target\":$(json_str "$result"),\"herd\":$json}"
  if [[ $scenario = b ]]; then T_HERD+=("$row"); J_HERD+=("$record"); else T_SLOW+=("$row"); J_SLOW+=("$record"); fi
}

# (b) origin answers after 200 ms, then 50 Mbit/s; behaviour in the path (/x/...) so
# every peer forwards it whatever it does with query strings. A new object per row.
FAST="/x/delay_ms=200,rate_kbps=50000"
herd_row b "origin(direct)" 1 "$ORIGIN_URL$FAST/gen/1M/b-origin-$RUN_ID.ts" \
  "$FAST/gen/1M/b-origin-$RUN_ID.ts" 30000
for n in $HERD_SIZES; do
  for peer in "${HERD_PEERS[@]}"; do
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
  for peer in "${HERD_PEERS[@]}"; do
    peer_alive "$peer" || continue
    path="$SLOW/gen/1M/c-$peer-$RUN_ID.ts"
    herd_row c "$peer" 100 "${PEER_URL[$peer]}$path" "$path" 60000
  done
fi
# ---------------------------------------------------------------- (d) one site of 3 nodes
# Three nodes that name each other in site_nodes: each chunk has one owner, which fetches
# it from origin; the others fetch it from the owner. The herd of N is split over the three
# nodes (three herd processes started together); its p95 is the worst of the three.
T_SITE=()
J_SITE=()
SITE_NOTE=""
site_herd() {  # site_herd LABEL PATH URL... -> one table row and one JSON record
  local label=$1 path=$2 json p95 worst="" ok_sum=0 fetches i k
  shift 2
  local urls=("$@") per=$(( ${SITE_N} / $# )) pids=()
  for i in "${!urls[@]}"; do
    timeout 120 "$HERD" --url "${urls[$i]}$path" -n "$per" --verify-gen --timeout-ms 60000 --json \
      >"$WORK/site-$label-$i.json" 2>/dev/null &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || true; done
  local records=()
  for i in "${!urls[@]}"; do
    json=$(cat "$WORK/site-$label-$i.json" 2>/dev/null || echo '{"setup_error":"herd failed"}')
    p95=$(json_in "$json" first_byte_ms p95)
    k=$(json_top "$json" ok)
    ok_sum=$((ok_sum + ${k:-0}))
    worst=$(awk -v a="${worst:-0}" -v b="${p95:-0}" 'BEGIN { print (b > a ? b : a) }')
    records+=("$json")
  done
  fetches=$(origin_count "$path")
  SITE_ROW_P95=$worst
  SITE_ROW_FETCHES=${fetches:-?}
  SITE_ROW_OK=$ok_sum
  T_SITE+=("$(printf '%-22s %5s %5s %9s %6s' "$label" "$((per * ${#urls[@]}))" "$ok_sum" "$worst" "${fetches:-?}")")
  J_SITE+=("{\"label\":\"$label\",\"n\":$((per * ${#urls[@]})),\"ok\":$ok_sum,\"fb_p95_ms_worst\":$(num_or_null "$worst"),\"origin_requests\":${fetches:-null},\"herds\":[$(join "${records[@]}")]}")
}
SITE_N=$(awk '{ print $1 }' <<<"$HERD_SIZES")
SITE_N=$(( (SITE_N / 3) * 3 ))
if [[ ${BENCH_SITE:-1} = 0 ]]; then
  SITE_NOTE="skipped (BENCH_SITE=0)"
elif [[ ! -x $CACHE_NODE ]]; then
  SITE_NOTE="cache_node not built"
else
  SITE_IDS=(site-a site-b site-c)
  SITE_PORTS=()
  SITE_URLS=()
  for id in "${SITE_IDS[@]}"; do SITE_PORTS+=("$(free_port)"); done
  site_args=(--set 'site_key="bench-site-key-0000001"')
  for i in 0 1 2; do site_args+=(--set "site_nodes.${SITE_IDS[$i]}.url=\"http://127.0.0.1:${SITE_PORTS[$i]}\""); done
  for i in 0 1 2; do
    mkdir -p "$WORK/${SITE_IDS[$i]}/data"
    cd "$ROOT_DIR"
    spawn "$WORK/${SITE_IDS[$i]}/log" "$CACHE_NODE" --config conf/cache_node.json --set node_id="\"${SITE_IDS[$i]}\"" \
      --set listen.port="${SITE_PORTS[$i]}" --set threads=1 --set data_dir="$WORK/${SITE_IDS[$i]}/data" \
      --set origins.demo.url="$ORIGIN_URL" --set signing.required=false --set server.access_log=false --set server.max_connections=100000000 --set server.max_connections_per_address=0 "${site_args[@]}"
    cd - >/dev/null
    if ! wait_listening "$WORK/${SITE_IDS[$i]}/log" 15 "$SPAWNED" >/dev/null; then
      SITE_NOTE="${SITE_IDS[$i]} failed to start: $(tail -n 3 "$WORK/${SITE_IDS[$i]}/log" | tr '\n' ' ')"
      break
    fi
    SITE_URLS+=("http://127.0.0.1:${SITE_PORTS[$i]}/o/demo")
  done
  if [[ -z $SITE_NOTE ]]; then
    log "(d) herd of $SITE_N on one node, then over the 3 nodes of a site"
    site_herd "one node" "$FAST/gen/1M/d-single-$RUN_ID.ts" "${SITE_URLS[0]}"
    SINGLE_P95=$SITE_ROW_P95
    site_herd "site of 3 nodes" "$FAST/gen/1M/d-site-$RUN_ID.ts" "${SITE_URLS[@]}"
    limit=$(awk -v s="${SINGLE_P95:-0}" 'BEGIN { printf "%.0f", s + 20 }')
    why=()
    [[ $(verdict "$SITE_ROW_P95" "$limit" le) = PASS ]] || why+=("p95")
    [[ $SITE_ROW_OK = "$SITE_N" ]] || why+=("ok $SITE_ROW_OK/$SITE_N")
    [[ $SITE_ROW_FETCHES = 1 ]] || why+=("$SITE_ROW_FETCHES fetches")
    if ((${#why[@]} == 0)); then SITE_RESULT=PASS; else SITE_RESULT="FAIL($(join "${why[@]}"))"; fi
    T_SITE[1]="${T_SITE[1]} $(printf '%7s  %s' "$limit" "$SITE_RESULT")"
  fi
fi
[[ -n $SITE_NOTE ]] && log "SKIP (d): $SITE_NOTE"

# ---------------------------------------------------------------- (e) prefetch
# One node with a prefetch key. Cold: a new chunk per request. Prefetched: the chunk is
# named to the node first, and asked for once the node counts it stored (as a player
# three segments behind the live edge would find it).
PREFETCH_CHUNKS=${BENCH_PREFETCH_CHUNKS:-20}
PREFETCH_NOTE=""
T_PREFETCH=()
J_PREFETCH=()
PREFETCH_KEY="bench-prefetch-key-0000000001"
p95_of() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) { print "n/a"; exit } i = int(NR * 0.95 + 0.999); if (i > NR) i = NR; printf "%.2f", v[i] }'; }
p50_of() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) { print "n/a"; exit } i = int(NR * 0.5 + 0.999); printf "%.2f", v[i] }'; }
ttfb_ms() {  # ttfb_ms URL -> "<ms> <X-Cache>"
  curl -sS --max-time 30 -o /dev/null -D "$WORK/prefetch.headers" -w '%{time_starttransfer}' "$1" |
    awk '{ printf "%.2f", $1 * 1000 }'
  printf ' %s\n' "$(tr -d '\r' <"$WORK/prefetch.headers" | sed -n 's/^[Xx]-[Cc]ache: //p')"
}
if [[ $PREFETCH_CHUNKS = 0 ]]; then
  PREFETCH_NOTE="skipped (BENCH_PREFETCH_CHUNKS=0)"
elif [[ ! -x $CACHE_NODE ]]; then
  PREFETCH_NOTE="cache_node not built"
else
  mkdir -p "$WORK/prefetch/data"
  cd "$ROOT_DIR"
  spawn "$WORK/prefetch/log" "$CACHE_NODE" --config conf/cache_node.json --set listen.port=0 --set threads=1 \
    --set data_dir="$WORK/prefetch/data" --set origins.demo.url="$ORIGIN_URL" --set signing.required=false \
    --set server.access_log=false --set server.max_connections=100000000 --set server.max_connections_per_address=0 --set "prefetch.keys=[\"$PREFETCH_KEY\"]"
  cd - >/dev/null
  if ! pport=$(wait_listening "$WORK/prefetch/log" 15 "$SPAWNED"); then
    PREFETCH_NOTE="node failed to start: $(tail -n 3 "$WORK/prefetch/log" | tr '\n' ' ')"
  else
    PBASE="http://127.0.0.1:$pport"
    log "(e) first viewer of $PREFETCH_CHUNKS chunks, cold then prefetched"
    : >"$WORK/prefetch.cold"
    : >"$WORK/prefetch.warm"
    not_hit=0
    for ((i = 1; i <= PREFETCH_CHUNKS; i++)); do
      read -r ms _ < <(ttfb_ms "$PBASE/o/demo$FAST/gen/1M/e-cold-$i-$RUN_ID.ts")
      echo "$ms" >>"$WORK/prefetch.cold"
      path="$FAST/gen/1M/e-pre-$i-$RUN_ID.ts"
      curl -sS --max-time 10 -o /dev/null -X POST -H "Authorization: Bearer $PREFETCH_KEY" \
        -H 'Content-Type: application/json' --data "{\"chunks\":[\"/o/demo$path\"]}" "$PBASE/prefetch" || true
      for ((w = 0; w < 200; w++)); do
        stored=$(curl -sS --max-time 5 "$PBASE/metrics" | sed -n 's/^cache_prefetch_completed_total{result="stored"} \([0-9]*\).*/\1/p')
        [[ ${stored:-0} -ge $i ]] && break
        sleep 0.05
      done
      read -r ms xcache < <(ttfb_ms "$PBASE/o/demo$path")
      echo "$ms" >>"$WORK/prefetch.warm"
      [[ $xcache = HIT ]] || not_hit=$((not_hit + 1))
    done
    cold_p50=$(p50_of <"$WORK/prefetch.cold") cold_p95=$(p95_of <"$WORK/prefetch.cold")
    warm_p50=$(p50_of <"$WORK/prefetch.warm") warm_p95=$(p95_of <"$WORK/prefetch.warm")
    why=()
    [[ $(verdict "$warm_p95" 10 le) = PASS ]] || why+=("p95")
    [[ $not_hit = 0 ]] || why+=("$not_hit not HIT")
    if ((${#why[@]} == 0)); then PREFETCH_RESULT=PASS; else PREFETCH_RESULT="FAIL($(join "${why[@]}"))"; fi
    T_PREFETCH+=("$(printf '%-12s %5s %9s %9s %7s  %s' cold "$PREFETCH_CHUNKS" "$cold_p50" "$cold_p95" - -)")
    T_PREFETCH+=("$(printf '%-12s %5s %9s %9s %7s  %s' prefetched "$PREFETCH_CHUNKS" "$warm_p50" "$warm_p95" 10 "$PREFETCH_RESULT")")
    J_PREFETCH+=("{\"chunks\":$PREFETCH_CHUNKS,\"cold_ttfb_ms\":{\"p50\":$(num_or_null "$cold_p50"),\"p95\":$(num_or_null "$cold_p95")},\"prefetched_ttfb_ms\":{\"p50\":$(num_or_null "$warm_p50"),\"p95\":$(num_or_null "$warm_p95")},\"prefetched_not_hit\":$not_hit,\"target\":$(json_str "$PREFETCH_RESULT")}")
  fi
fi
[[ -n $PREFETCH_NOTE ]] && log "SKIP (e): $PREFETCH_NOTE"

# ---------------------------------------------------------------- (f) a hot object refreshed
# Every second the copy expires and a refresh takes the origin's 200 ms: does a viewer wait
# for it? 2 KiB, max-age=1 from the origin, a new object per peer; nginx_static serves the
# same bytes from disk (never refreshed) as the yardstick. Tails measured right:
# - warmed first: a 2 s wrk run, not measured, at the same connections (the cold copy's first
#   fetch, 200 ms, would otherwise be in the measured window: wrk counts it and, for every
#   connection queued behind it, a synthetic slow sample - a "p99" of 65-87 ms was that);
# - then at full speed (each server's own rate: a faster server also leaves wrk less CPU, so
#   these tails are not comparable) and paced: every connection waits HOT_DELAY_MS after each
#   answer (wrk's Lua delay(); wrk2's constant rate is not in Debian), so every server gets about
#   the same request rate (connections x 1000 / (delay + latency), stated per row), and the p99s
#   are compared at that rate. Target: paced p99 <= 1.5 x nginx_static's paced p99.
T_HOT=()
J_HOT=()
HOT_NOTE=""
HOT_CONNS=${BENCH_HOT_CONNECTIONS:-50}
HOT_DELAY_MS=${BENCH_HOT_DELAY_MS:-2}
HOT="/x/delay_ms=200,cc=max-age=1"
cat >"$WORK/paced.lua" <<'LUA'
-- wrk -s paced.lua URL -- DELAY_MS: each connection waits DELAY_MS after an answer before
-- sending its next request (wrk's latency is counted from the send, so without the wait).
local wait_ms = 0
function init(args) wait_ms = tonumber(args[1]) or 0 end
function delay() return wait_ms end
LUA
if [[ -z $WRK ]]; then
  HOT_NOTE="wrk not installed"
else
  head -c 2048 /dev/urandom >"$WORK/root/hit/hot-static.bin"
  HOT_PEERS=()
  [[ -n ${PEER_PID[nginx_static]:-} ]] && HOT_PEERS+=(nginx_static)
  HOT_PEERS+=("${HERD_PEERS[@]}")
  for peer in "${HOT_PEERS[@]}"; do
    peer_alive "$peer" || continue
    if [[ $peer = nginx_static ]]; then
      url="${HIT_BASE[$peer]}/hit/hot-static.bin" path=""
    else
      path="$HOT/gen/2K/hot-$peer-$RUN_ID.bin"
      url="${PEER_URL[$peer]}$path"
    fi
    curl -sS --max-time 10 -o /dev/null "$url" || true
    run_wrk 2 "$HOT_CONNS" "$url" >/dev/null  # warm-up, not measured
    before=""
    [[ -n $path ]] && before=$(origin_count "$path")
    for mode in full paced; do
      load=$(loadavg)
      log "(f) wrk $peer, hot object, $HOT_CONNS connections, $mode, for ${WRK_SECONDS}s (load $load)"
      if [[ $mode = full ]]; then
        run_wrk "$WRK_SECONDS" "$HOT_CONNS" "$url"
      else
        run_wrk "$WRK_SECONDS" "$HOT_CONNS" "$url" "$WORK/paced.lua" "$HOT_DELAY_MS"
      fi
      HOT_P99[$peer/$mode]=$W_P99 HOT_PROB[$peer/$mode]=$W_PROBLEM
      limit=- result=- vs=-
      if [[ $peer != nginx_static && -n ${HOT_P99[nginx_static/$mode]:-} ]]; then
        checked_ratio "hot object $mode, $peer p99 vs nginx_static's" "$peer" "$W_P99" "$W_PROBLEM" \
          nginx_static "${HOT_P99[nginx_static/$mode]}" "${HOT_PROB[nginx_static/$mode]}"
        vs=$CHECKED_RATIO
        if [[ $mode = paced ]]; then
          limit=$(awk -v p="${HOT_P99[nginx_static/$mode]}" 'BEGIN { if (p > 0) printf "%.2f", 1.5 * p }')
          result=$(verdict "$vs" 1.5 le)
          [[ $vs = INVALID ]] && result=INVALID
        fi
      fi
      [[ $W_FLAG = ok ]] || result="$result ($W_FLAG)"
      T_HOT+=("$(printf '%-15s %-6s %10s %8s %8s %8s %8s %5s  %s' "$peer" "$mode" "${W_RPS:-n/a}" "$W_P50" "$W_P99" "$vs" "$limit" "${load%% *}" "$result")")
      J_HOT+=("{\"peer\":\"$peer\",\"mode\":\"$mode\",\"connections\":$HOT_CONNS,\"delay_ms\":$([[ $mode = paced ]] && echo "$HOT_DELAY_MS" || echo 0),$(wrk_json),\"problem\":$(json_str "$W_PROBLEM"),\"p99_ratio_to_nginx_static\":$(num_or_null "$(sed 's/^[-A-Z].*//' <<<"$vs")"),\"target_p99_ms\":$(num_or_null "${limit/-/}"),\"target\":$(json_str "$result"),\"loadavg_before\":$(json_str "$load")}")
    done
    # Origin requests for the object over both measured runs.
    if [[ -n $path ]]; then
      after=$(origin_count "$path")
      [[ -n $before && -n $after ]] && T_HOT[-1]="${T_HOT[-1]}; origin $((after - before)) in $((2 * WRK_SECONDS)) s"
    fi
    # The control: the same node, paced the same, on a 2 KiB object that lives an hour (never
    # refreshed during the run). Its tail against the hot one's is what the refresh costs;
    # against nginx_static's, what the machine and the node's serving cost.
    if [[ $peer = cache_node* ]]; then
      url="${PEER_URL[$peer]}/x/cc=max-age=3600/gen/2K/steady-$peer-$RUN_ID.bin"
      curl -sS --max-time 10 -o /dev/null "$url" || true
      run_wrk 2 "$HOT_CONNS" "$url" >/dev/null
      load=$(loadavg)
      log "(f) wrk $peer, steady object (control), $HOT_CONNS connections, paced, for ${WRK_SECONDS}s (load $load)"
      run_wrk "$WRK_SECONDS" "$HOT_CONNS" "$url" "$WORK/paced.lua" "$HOT_DELAY_MS"
      checked_ratio "steady object paced, $peer p99 vs nginx_static's" "$peer" "$W_P99" "$W_PROBLEM" \
        nginx_static "${HOT_P99[nginx_static/paced]:-}" "${HOT_PROB[nginx_static/paced]:-}"
      T_HOT+=("$(printf '%-15s %-6s %10s %8s %8s %8s %8s %5s  %s' "${peer}:steady" paced "${W_RPS:-n/a}" "$W_P50" "$W_P99" "$CHECKED_RATIO" - "${load%% *}" "control: an object never refreshed in the run")")
      J_HOT+=("{\"peer\":\"$peer\",\"mode\":\"paced\",\"object\":\"steady (control)\",\"connections\":$HOT_CONNS,\"delay_ms\":$HOT_DELAY_MS,$(wrk_json),\"problem\":$(json_str "$W_PROBLEM"),\"p99_ratio_to_nginx_static\":$(num_or_null "$CHECKED_RATIO"),\"loadavg_before\":$(json_str "$load")}")
    fi
  done
fi
[[ -n $HOT_NOTE ]] && log "SKIP (f): $HOT_NOTE"

# ---------------------------------------------------------------- (g) memory per connection
# A fresh server each (the allocator keeps what earlier runs used), the 2 KiB hit answered
# once, then N idle keep-alive connections and N busy ones (connection_memory, lib.sh).
T_MEM=()
J_MEM=()
MEM_SECTION_NOTE=""
if [[ -z $WRK ]]; then
  MEM_SECTION_NOTE="wrk not installed"
elif [[ $MEMORY_CONNECTIONS = 0 ]]; then
  MEM_SECTION_NOTE="BENCH_MEMORY_CONNECTIONS=0"
else
  for asked in $MEMORY_CONNECTIONS; do
    n=$(fit_connections "$asked")
    start_cache_node "cache_node_mem$n" 2
    if [[ -n ${PEER_PID[cache_node_mem$n]:-} ]]; then
      # Twice: the first answer may come before the copy is stored.
      curl -sS --max-time 10 -o /dev/null "${HIT_BASE[cache_node_mem$n]}/hit/object-2k.bin" || true
      measure_connection_memory g cache_node "${PEER_PID[cache_node_mem$n]}" \
        "${HIT_BASE[cache_node_mem$n]}/hit/object-2k.bin" "$n"
    else
      log "SKIP (g) cache_node: ${PEER_SKIP[cache_node_mem$n]:-did not start}"
    fi
    if start_nginx_static "$WORK/nginx_mem$n" "$WORK/root"; then
      measure_connection_memory g nginx_static "$NGINX_PID" "$NGINX_STATIC_URL/hit/object-2k.bin" "$n"
    else
      log "SKIP (g) nginx_static: $NGINX_ERROR"
    fi
  done
fi
[[ -n $MEM_SECTION_NOTE ]] && log "SKIP (g): $MEM_SECTION_NOTE"

LOAD_END=$(loadavg)

# ---------------------------------------------------------------- report
{
  echo
  echo "Cache node benchmark $RUN_ID on $(nproc) cores, $(uname -sr)"
  echo "  load average (1/5/15 min): start $LOAD_START, end $LOAD_END"
  for peer in "${WANTED_NAMES[@]}"; do
    if [[ -n ${PEER_DIED[$peer]:-} ]]; then
      printf '  %-14s %s\n  %-14s DIED during the run: %s\n' "$peer" "${PEER_NOTE[$peer]}" "" "${PEER_DIED[$peer]}"
    elif [[ -n ${PEER_PID[$peer]:-} ]]; then
      printf '  %-14s %s\n' "$peer" "${PEER_NOTE[$peer]}"
    else
      printf '  %-14s SKIPPED: %s\n' "$peer" "${PEER_SKIP[$peer]}"
    fi
  done
  echo
  echo "(a) Hit throughput, wrk -t$WRK_THREADS -c<conns> -d${WRK_SECONDS}s --latency on a cached object, the same bytes"
  echo "    everywhere: 2k = 2048 random bytes (octet-stream); playlist = a live media playlist, 14 segments"
  echo "    with EXT-X-PROGRAM-DATE-TIME, $(wc -c <"$WORK/root/hit/live.m3u8") bytes (application/vnd.apple.mpegurl); 1m = a 1 MiB chunk (video/mp2t)."
  echo "    req/s counts good responses only; err = responses >= 400 / socket errors: a run with any is"
  echo "    flagged ERR(...) and INVALID, no ratio; vs_static = req/s / nginx_static's for the same object;"
  echo "    MiB/s = whole responses; moved = MiB/s read by wrk, responses cut off by the run's end included,"
  echo "    and mv_vs its ratio to nginx_static's (with thousands of 1 MiB transfers sharing the loopback,"
  echo "    few end within a short run and req/s depends on how evenly a server shares the bytes: moved"
  echo "    is the throughput); tcpmem% = the kernel's TCP memory at its peak during the run, in % of"
  echo "    net.ipv4.tcp_mem's pressure threshold (100 or more: send buffers were capped for every server);"
  echo "    origin = origin requests during the run (0 for a hit); us/resp = the server's CPU microseconds"
  echo "    per good response (nginx: master and workers); usr/sys = the same split into user and kernel"
  echo "    time; loops% = each event loop's busy share of its"
  echo "    thread (loop 0/loop 1/...); check = wrk errors and the warm-up GET"
  echo "    (status 200, body equal to the file, Content-Type)"
  if [[ -n $WRK_NOTE ]]; then
    echo "    SKIPPED: $WRK_NOTE"
  else
    printf '%-14s %-8s %7s %5s %9s %8s %8s %8s %8s %9s %8s %6s %6s %7s %7s %11s %7s  %s\n' peer object bytes conns req/s MiB/s \
      moved p50_ms p99_ms err vs_static mv_vs origin tcpmem% us/resp usr/sys loops% check
    printf '%s\n' "${T_WRK[@]}"
  fi
  echo
  echo "(b) Herd on a cold 1 MiB chunk; origin: 200 ms to first byte, then 50 Mbit/s"
  echo "    first byte / total in ms from the common start; ok = complete and byte-exact;"
  echo "    origin = requests the origin got for the object; target = fb_p95 limit, origin's own first"
  echo "    byte (${ORIGIN_FB:-?} ms, one client, direct) + 50 ms at N=100, + 150 ms at N=1000; PASS also needs"
  echo "    every waiter ok and one origin fetch"
  printf '%-15s %5s %5s %9s %9s %9s %9s %6s %7s  %s\n' peer N ok fb_p50 fb_p95 fb_max tot_p95 origin target result
  printf '%s\n' "${T_HERD[@]}"
  if [[ $QUICK = 0 ]]; then
    echo
    echo "(c) Slow origin: 1 MiB at 1200 kbit/s (about 7 s), N=100"
    printf '%-15s %5s %5s %9s %9s %9s %9s %6s %7s  %s\n' peer N ok fb_p50 fb_p95 fb_max tot_p95 origin target result
    printf '%s\n' "${T_SLOW[@]}"
  fi
  echo
  echo "(d) One site of 3 cache nodes (site_nodes; threads: 1 each) against one node: the (b) herd of N"
  echo "    (origin 200 ms to first byte, then 50 Mbit/s), split evenly over the nodes; fb_p95 = the worst"
  echo "    of the three herds' p95; target: origin 1 fetch, fb_p95 <= the single node's + 20 ms"
  if [[ -n $SITE_NOTE ]]; then
    echo "    SKIPPED: $SITE_NOTE"
  else
    printf '%-22s %5s %5s %9s %6s %7s  %s\n' setup N ok fb_p95 origin target result
    printf '%s\n' "${T_SITE[@]}"
  fi
  echo
  echo "(e) Prefetch: time to first byte (curl, ms) of a viewer's first request for a 1 MiB chunk whose"
  echo "    origin answers after 200 ms; cold = nobody asked before, prefetched = named by POST /prefetch"
  echo "    and asked for once stored; target: prefetched p95 <= 10 ms, every one a HIT"
  if [[ -n $PREFETCH_NOTE ]]; then
    echo "    SKIPPED: $PREFETCH_NOTE"
  else
    printf '%-12s %5s %9s %9s %7s  %s\n' first_viewer chunks ttfb_p50 ttfb_p95 target result
    printf '%s\n' "${T_PREFETCH[@]}"
  fi
  echo
  echo "(f) A hot object refreshed: 2 KiB, origin max-age=1 and 200 ms per answer, wrk -c$HOT_CONNS -d${WRK_SECONDS}s"
  echo "    after a 2 s warm-up; full = as fast as each server goes; paced = each connection waits"
  echo "    ${HOT_DELAY_MS} ms after every answer (about the same request rate for every server: see req/s);"
  echo "    nginx_static serves the same size from disk; p99_x = p99 / nginx_static's in the same mode;"
  echo "    origin = origin requests for the object in both runs; target: paced p99 <= 1.5 x nginx_static's;"
  echo "    <node>:steady = the same node, paced, on an object that lives an hour (the refresh's share of the tail)"
  if [[ -n $HOT_NOTE ]]; then
    echo "    SKIPPED: $HOT_NOTE"
  else
    printf '%-15s %-6s %10s %8s %8s %8s %8s %5s  %s\n' peer mode req/s p50_ms p99_ms p99_x target load result
    printf '%s\n' "${T_HOT[@]}"
  fi
  echo
  echo "(g) Memory per connection: VmRSS (KiB) of a fresh server (nginx: master and workers) after one"
  echo "    2 KiB hit (base), holding N idle keep-alive connections (idle), then 3 s into wrk -c N (busy),"
  echo "    5 s after wrk ended (after; kept_KiB = after - base); B/idle and B/busy = bytes per connection over base"
  if [[ -n $MEM_SECTION_NOTE ]]; then
    echo "    SKIPPED: $MEM_SECTION_NOTE"
  else
    echo "$MEMORY_HEADER"
    printf '%s\n' "${T_MEM[@]}"
  fi
  echo
} | tee "$WORK/table.txt"

PEER_JSON=()
for peer in "${WANTED_NAMES[@]}"; do
  if [[ -n ${PEER_PID[$peer]:-} ]]; then
    PEER_JSON+=("\"$peer\":{\"available\":true,\"note\":$(json_str "${PEER_NOTE[$peer]}"),\"died\":$(json_str "${PEER_DIED[$peer]:-}")}")
  else
    PEER_JSON+=("\"$peer\":{\"available\":false,\"reason\":$(json_str "${PEER_SKIP[$peer]}")}")
  fi
done
mkdir -p "$(dirname "$OUT_FILE")"
cat >"$OUT_FILE" <<EOF
{"run_id":"$RUN_ID","date":"$(date -u +%Y-%m-%dT%H:%M:%SZ)","cores":$(nproc),"kernel":$(json_str "$(uname -sr)"),
 "loadavg":{"start":$(json_str "$LOAD_START"),"end":$(json_str "$LOAD_END")},
 "quick":$([[ $QUICK = 1 ]] && echo true || echo false),"wrk_seconds":$WRK_SECONDS,"wrk_threads":$WRK_THREADS,
 "peers":{$(join "${PEER_JSON[@]}")},
 "hit_throughput":[$(join "${J_WRK[@]}")],
 "hit_throughput_note":$(json_str "$WRK_NOTE"),
 "herd_origin_first_byte_ms":$(num_or_null "$ORIGIN_FB"),
 "herd_fast_origin":[$(join "${J_HERD[@]}")],
 "herd_slow_origin":[$(join "${J_SLOW[@]}")],
 "site_herd":[$(join "${J_SITE[@]}")],
 "site_herd_note":$(json_str "$SITE_NOTE"),
 "prefetch":[$(join "${J_PREFETCH[@]}")],
 "prefetch_note":$(json_str "$PREFETCH_NOTE"),
 "hot_object_refreshed":[$(join "${J_HOT[@]}")],
 "hot_object_refreshed_note":$(json_str "$HOT_NOTE"),
 "memory_per_connection":[$(join "${J_MEM[@]}")],
 "memory_per_connection_note":$(json_str "$MEM_SECTION_NOTE"),
 "invalid":$(invalid_json)}
EOF
invalid_summary | tee -a "$WORK/table.txt"
log "results written to $OUT_FILE"
exit "$(bench_status)"

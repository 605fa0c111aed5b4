#!/usr/bin/env bash
# Runs the HTTP cache test suite (http-cache-tests, the suite behind cache-tests.fyi: RFC 9111
# behaviours classed as required, optimal or checks) against the Balancer cache node, nginx
# (proxy_cache, cache lock) and Varnish, in one run, each in front of the suite's own origin
# server, and reports each one's required/optimal pass counts and the node's failing required
# tests. The suite is pinned by scripts/bench/cache_conformance/package-lock.json (npm ci).
#
# Every cache runs with no lifetime of its own for responses that state none (the node's
# cache.default_ttl_*_s = 0, Varnish's default_ttl 0; nginx caches only what states one),
# so the suite can see what each does with what the origin says. The suite's client sends its
# set-up requests (PUT /config/..., GET /state/...) to the origin server and its test requests
# through the cache, by way of adapter.mjs: the cache node serves the origin under /o/cct/.
#
# Usage: scripts/bench/cache_conformance.sh [--build DIR] [--out DIR]
#   --build DIR  build tree with src/cache_node/cache_node (default: build, or $BUILD_DIR)
#   --out DIR    where the results go (default: bench-results/cache-conformance-<time>/):
#                <cache>.json (the suite's results), summary.json, summary.md
# Environment: BENCH_PEERS ("cache_node nginx varnish"), BENCH_KEEP=1 keeps the temp dir
# with the servers' logs. A missing peer is reported and skipped; the script still exits 0.
# Needs node and npm (scripts/setup.sh), nginx and varnish (scripts/setup.sh --bench).
# Everything listens on 127.0.0.1; about 2 minutes per cache.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
OUT_DIR=""
WANTED_PEERS=${BENCH_PEERS:-"cache_node nginx varnish"}
SUITE_DIR="$ROOT_DIR/scripts/bench/cache_conformance"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD_DIR=$2; shift 2 ;;
    --out) OUT_DIR=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $BUILD_DIR = /* ]] || BUILD_DIR="$ROOT_DIR/$BUILD_DIR"
CACHE_NODE="$BUILD_DIR/src/cache_node/cache_node"
OUT_DIR=${OUT_DIR:-"$ROOT_DIR/bench-results/cache-conformance-$(date -u +%Y%m%dT%H%M%SZ)"}
mkdir -p "$OUT_DIR"

WORK=$(mktemp -d)
PIDS=()
# shellcheck source=scripts/bench/lib.sh
source "$ROOT_DIR/scripts/bench/lib.sh"

command -v node >/dev/null || { log "node is missing: scripts/setup.sh installs it"; exit 1; }
if [[ ! -d $SUITE_DIR/node_modules/http-cache-tests ]]; then
  log "installing the suite (npm ci, pinned by package-lock.json)"
  (cd "$SUITE_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
SUITE="$SUITE_DIR/node_modules/http-cache-tests"

# ---- the suite's origin server
SERVER_PORT=$(free_port)
spawn "$WORK/server.log" env npm_config_protocol=http npm_config_port="$SERVER_PORT" \
  npm_config_pidfile="$WORK/server.pid" node --no-warnings "$SUITE/server/server.mjs"
wait_tcp "$SERVER_PORT" 15 "$SPAWNED" || { log "the suite's server did not start: $(tail -n 5 "$WORK/server.log")"; exit 1; }
SERVER_URL="http://127.0.0.1:$SERVER_PORT"

declare -A CACHE_BASE=() PEER_SKIP=() PEER_NOTE=()

start_cache_node() {
  if [[ ! -x $CACHE_NODE ]]; then
    PEER_SKIP[cache_node]="not built ($CACHE_NODE missing)"
    return
  fi
  mkdir -p "$WORK/cache_node/data"
  cd "$ROOT_DIR"
  spawn "$WORK/cache_node/log" "$CACHE_NODE" --config conf/cache_node.json --set listen.port=0 --set threads=1 \
    --set data_dir="$WORK/cache_node/data" --set origins.cct.url="$SERVER_URL" --set 'origins.cct.query="keep"' --set 'origins.cct.forward_request_headers=["Req-Num","Test-ID"]' \
    --set signing.required=false --set cache.default_ttl_segment_s=0 --set cache.default_ttl_playlist_s=0 \
    --set cache.default_ttl_other_s=0 --set server.access_log=false --set server.max_connections=100000000 --set server.max_connections_per_address=0
  cd - >/dev/null
  local port
  if ! port=$(wait_listening "$WORK/cache_node/log" 15 "$SPAWNED"); then
    PEER_SKIP[cache_node]="failed to start: $(tail -n 5 "$WORK/cache_node/log" | tr '\n' ' ')"
    return
  fi
  CACHE_BASE[cache_node]="http://127.0.0.1:$port/o/cct"
  PEER_NOTE[cache_node]="conf/cache_node.json, threads 1, signing off, default lifetimes 0"
}

start_nginx() {
  local port
  port=$(free_port)
  if ! start_nginx_in "$WORK/nginx" 1 "$port" "
  proxy_cache_path cache levels=1:2 keys_zone=cct:16m max_size=1g inactive=60m use_temp_path=off;
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass $SERVER_URL;
      proxy_http_version 1.1;
      proxy_cache cct;
      proxy_cache_lock on;
      proxy_cache_revalidate on;
    }
  }"; then
    PEER_SKIP[nginx]=$NGINX_ERROR
    return
  fi
  CACHE_BASE[nginx]="http://127.0.0.1:$port"
  PEER_NOTE[nginx]="nginx $NGINX_VERSION, proxy_cache with proxy_cache_lock and proxy_cache_revalidate"
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
  printf 'vcl 4.1;\nbackend origin { .host = "127.0.0.1"; .port = "%s"; }\n' "$SERVER_PORT" >"$dir/default.vcl"
  spawn "$dir/out" "$varnishd" -F -j none -a "127.0.0.1:$port" -f "$dir/default.vcl" -n "$dir/n" \
    -s malloc,64m -t 0
  if ! wait_tcp "$port" 30 "$SPAWNED"; then
    PEER_SKIP[varnish]="failed to start: $(tail -n 5 "$dir/out" | tr '\n' ' ')"
    return
  fi
  CACHE_BASE[varnish]="http://127.0.0.1:$port"
  PEER_NOTE[varnish]="$("$varnishd" -V 2>&1 | head -n1 | sed 's/^varnishd (\(varnish-[^ ]*\).*/\1/'), built-in VCL, default_ttl 0"
}

RAN=()
for peer in $WANTED_PEERS; do
  case $peer in
    cache_node) start_cache_node ;;
    nginx) start_nginx ;;
    varnish) start_varnish ;;
    *) log "unknown peer $peer"; continue ;;
  esac
  if [[ -n ${PEER_SKIP[$peer]:-} ]]; then
    log "$peer skipped: ${PEER_SKIP[$peer]}"
    continue
  fi
  adapter_port=$(free_port)
  spawn "$WORK/adapter-$peer.log" node "$SUITE_DIR/adapter.mjs" "$adapter_port" "$SERVER_URL" "${CACHE_BASE[$peer]}"
  adapter_pid=$SPAWNED
  wait_tcp "$adapter_port" 10 "$adapter_pid" || { log "adapter for $peer did not start"; continue; }
  log "$peer: running the suite (${PEER_NOTE[$peer]})"
  started=$SECONDS
  if ! (cd "$SUITE" && timeout 600 env npm_config_base="http://127.0.0.1:$adapter_port" npm_config_id="" npm_package_config_id="" \
      node --no-warnings cli.mjs >"$OUT_DIR/$peer.json" 2>"$WORK/client-$peer.log"); then
    log "$peer: the suite's client failed: $(tail -n 5 "$WORK/client-$peer.log" | tr '\n' ' ')"
    continue
  fi
  log "$peer: done in $((SECONDS - started)) s"
  stop_pid "$adapter_pid"
  RAN+=("$peer=$OUT_DIR/$peer.json")
done

[[ ${#RAN[@]} -gt 0 ]] || { log "no cache ran"; exit 0; }
(cd "$SUITE_DIR" && node summarize.mjs "$OUT_DIR/summary.json" "${RAN[@]}") | tee "$OUT_DIR/summary.md"
{
  echo
  for peer in "${!PEER_NOTE[@]}"; do echo "- $peer: ${PEER_NOTE[$peer]}"; done
  for peer in "${!PEER_SKIP[@]}"; do echo "- $peer skipped: ${PEER_SKIP[$peer]}"; done
  echo "- load average: $(loadavg)"
} | tee -a "$OUT_DIR/summary.md"
log "results in $OUT_DIR (summary.json lists each cache's failing required tests)"

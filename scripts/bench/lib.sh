# shellcheck shell=bash disable=SC2034
# Helpers shared by the benchmark scripts (sourced, not run). The caller sets WORK (a
# temp dir removed at exit unless BENCH_KEEP=1) and PIDS=() before starting servers, and
# WRK (the wrk binary) before run_wrk. Results come back in global variables (SPAWNED,
# NGINX_*, W_*), hence SC2034 off.

log() { printf '[bench] %s\n' "$*" >&2; }
BENCH_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Stadium-scale rows need one descriptor per connection in wrk and in the server: the soft
# limit goes up to the hard one for everything started from here.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# fit_connections N: N, or the most this process's open-file limit leaves room for (wrk and
# each server hold one descriptor per connection, plus a few hundred of their own).
fit_connections() {
  local limit
  limit=$(ulimit -n)
  if [[ $limit != unlimited ]] && (($1 > limit - 300)); then echo $((limit - 300)); else echo "$1"; fi
}

# Servers run in their own process group (setsid, so pgid == pid): stopping the group
# also stops their children (nginx workers, the varnish child, curl of a poller).
stop_pid() {
  local pid=$1 i
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# spawn LOG CMD...: starts CMD in the background in a new process group; sets SPAWNED.
spawn() {
  local log=$1
  shift
  if command -v setsid >/dev/null; then
    setsid "$@" >"$log" 2>&1 &
  else
    "$@" >"$log" 2>&1 &
  fi
  SPAWNED=$!
  PIDS+=("$SPAWNED")
}

cleanup() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
  if [[ ${BENCH_KEEP:-0} = 1 ]]; then
    log "kept $WORK (logs of every server)"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port that was free a moment ago (for servers that cannot report an ephemeral one).
free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
    return
  fi
  local port
  while :; do
    port=$((20000 + RANDOM % 30000))
    (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
}

# wait_tcp PORT SECONDS PID: true once PORT accepts connections, false if PID dies or time is up.
wait_tcp() {
  local port=$1 deadline=$((SECONDS + $2)) pid=$3
  while ((SECONDS < deadline)); do
    (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# wait_listening FILE SECONDS PID: prints the port of the {"event":"listening",...} line.
wait_listening() {
  local file=$1 deadline=$((SECONDS + $2)) pid=$3 port
  while ((SECONDS < deadline)); do
    port=$(grep -m1 '"event" *: *"listening"' "$file" 2>/dev/null |
      sed -n 's/.*"port" *: *\([0-9][0-9]*\).*/\1/p' || true)
    if [[ -n $port ]]; then echo "$port"; return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

json_str() {
  local s
  s=$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | tr '\n\t' '  ')
  printf '"%s"' "$s"
}
# wrk latency ("850.00us", "1.20ms", "2.01s") in milliseconds; "null" when empty.
to_ms() {
  [[ -n $1 ]] || { echo null; return; }
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v) }
    else if (v ~ /m$/) { sub(/m$/, "", v); v *= 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
    printf "%.2f", v }'
}
join() { local IFS=,; echo "$*"; }
now_us() { echo "${EPOCHREALTIME/./}"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "n/a"; }
# num_or_null VALUE: VALUE when it is a number, else null ("n/a", "INVALID", empty).
num_or_null() { [[ ${1:-} =~ ^-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$ ]] && echo "$1" || echo null; }
# VmRSS of PID in KiB (empty when the process is gone).
rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status" 2>/dev/null || true; }
# VmRSS of PID and its children (nginx's workers, Varnish's child) in KiB.
tree_rss_kib() {
  local total pid
  total=$(rss_kib "$1")
  total=${total:-0}
  for pid in $(pgrep -P "$1" 2>/dev/null); do total=$((total + $(rss_kib "$pid" || echo 0))); done
  echo "$total"
}
# connection_memory PID URL N: what a server's connections cost, from the VmRSS of PID's tree
# (start it fresh and answer URL once before: the allocator keeps what earlier connections
# used). MEM_IDLE_B: bytes per idle keep-alive connection (N herd clients answered once, then
# holding their connections); MEM_ACTIVE_B: bytes per busy one (wrk with N connections, read
# 3 s into a 5 s run, after the idle ones closed: memory they left is reused, so this is the
# busy connections' peak over the same baseline); MEM_BASE_KIB, MEM_IDLE_KIB, MEM_ACTIVE_KIB;
# MEM_NOTE says what went wrong. Needs HERD (tests/support/herd) and WRK.
connection_memory() {
  local pid=$1 url=$2 n=$3 herd_pid answered="" i wrk_pid
  MEM_IDLE_B="" MEM_ACTIVE_B="" MEM_IDLE_KIB="" MEM_ACTIVE_KIB="" MEM_AFTER_KIB="" MEM_NOTE=""
  MEM_BASE_KIB=$(tree_rss_kib "$pid")
  "$HERD" --url "$url" -n "$n" --keep-alive --hold-s 120 --timeout-ms 60000 \
    >"$WORK/memory-herd.out" 2>"$WORK/memory-herd.err" &
  herd_pid=$!
  for ((i = 0; i < 900; i++)); do
    answered=$(sed -n 's/^holding \([0-9]*\)$/\1/p' "$WORK/memory-herd.err")
    [[ -n $answered ]] && break
    kill -0 "$herd_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -n $answered ]] && ((answered > 0)); then
    sleep 1  # the last answers leave the server's buffers
    MEM_IDLE_KIB=$(tree_rss_kib "$pid")
    MEM_IDLE_B=$(awk -v a="$MEM_BASE_KIB" -v b="$MEM_IDLE_KIB" -v n="$answered" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
    ((answered == n)) || MEM_NOTE="$answered of $n idle clients answered"
  else
    MEM_NOTE="the idle clients were not answered: $(tail -n 2 "$WORK/memory-herd.err" | tr '\n' ' ')"
  fi
  kill "$herd_pid" 2>/dev/null || true
  wait "$herd_pid" 2>/dev/null || true
  sleep 1  # the server sees the closes
  "$WRK" -t"${WRK_THREADS:-2}" -c"$n" -d5s "$url" >"$WORK/memory-wrk.out" 2>&1 &
  wrk_pid=$!
  sleep 3
  MEM_ACTIVE_KIB=$(tree_rss_kib "$pid")
  wait "$wrk_pid" 2>/dev/null || true
  # What stays resident once the burst has gone: the closes seen and a few seconds for a
  # server's own give-back (ours: every 2 s, once 64 connections have closed).
  sleep 5
  MEM_AFTER_KIB=$(tree_rss_kib "$pid")
  W_OUT=$(cat "$WORK/memory-wrk.out")
  wrk_parse
  if [[ $W_FLAG = ok ]]; then
    MEM_ACTIVE_B=$(awk -v a="$MEM_BASE_KIB" -v b="$MEM_ACTIVE_KIB" -v n="$n" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
  else
    MEM_NOTE="${MEM_NOTE:+$MEM_NOTE; }busy: wrk $W_FLAG"
  fi
}
# measure_connection_memory SECTION PEER PID URL N: URL answered once, connection_memory,
# the server stopped, the figures recorded (record_connection_memory).
measure_connection_memory() {
  local section=$1 peer=$2 pid=$3 url=$4 n=$5
  curl -sS --max-time 10 -o /dev/null "$url" || true
  log "($section) $peer: $n idle, then $n busy connections"
  connection_memory "$pid" "$url" "$n"
  kill -0 "$pid" 2>/dev/null || MEM_NOTE="${MEM_NOTE:+$MEM_NOTE; }the server died during the run"
  stop_pid "$pid"
  [[ -n $MEM_NOTE ]] && log "WARNING: ($section) $peer: $MEM_NOTE"
  record_connection_memory "$peer" "$n"
}
# record_connection_memory PEER N: the last connection_memory figures as a row of T_MEM and
# an object of J_MEM (arrays of the caller); the header row is MEMORY_HEADER.
MEMORY_HEADER=$(printf '%-14s %6s %9s %9s %9s %9s %9s %9s %9s  %s' peer N base idle busy after kept_KiB B/idle B/busy note)
record_connection_memory() {
  local kept="?"
  [[ -n $MEM_AFTER_KIB && -n $MEM_BASE_KIB ]] && kept=$((MEM_AFTER_KIB - MEM_BASE_KIB))
  T_MEM+=("$(printf '%-14s %6s %9s %9s %9s %9s %9s %9s %9s  %s' "$1" "$2" "$MEM_BASE_KIB" "${MEM_IDLE_KIB:-?}" \
    "${MEM_ACTIVE_KIB:-?}" "${MEM_AFTER_KIB:-?}" "$kept" "${MEM_IDLE_B:-n/a}" "${MEM_ACTIVE_B:-n/a}" "${MEM_NOTE:-ok}")")
  J_MEM+=("{\"peer\":\"$1\",\"connections\":$2,\"vmrss_kib_base\":$(num_or_null "$MEM_BASE_KIB"),\"vmrss_kib_idle\":$(num_or_null "$MEM_IDLE_KIB"),\"vmrss_kib_busy\":$(num_or_null "$MEM_ACTIVE_KIB"),\"vmrss_kib_after\":$(num_or_null "$MEM_AFTER_KIB"),\"bytes_per_idle_connection\":$(num_or_null "$MEM_IDLE_B"),\"bytes_per_busy_connection\":$(num_or_null "$MEM_ACTIVE_B"),\"note\":$(json_str "$MEM_NOTE")}")
}
# user + system CPU time of PID in clock ticks.
# Clock ticks per second of /proc/<pid>/stat's CPU times.
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# CPU ticks of a process and its children (nginx's master and workers).
tree_cpu_ticks() {
  local total pid
  total=$(cpu_ticks "$1")
  for pid in $(pgrep -P "$1" 2>/dev/null); do total=$((total + $(cpu_ticks "$pid"))); done
  echo "$total"
}
# tree_user_kernel_ticks PID: "<user ticks> <kernel ticks>" of a process and its children.
tree_user_kernel_ticks() {
  local pid
  for pid in "$1" $(pgrep -P "$1" 2>/dev/null); do
    awk '{ print $14, $15 }' "/proc/$pid/stat" 2>/dev/null || echo "0 0"
  done | awk '{ u += $1; k += $2 } END { print u + 0, k + 0 }'
}
# user_kernel_us PID USER0 KERNEL0 REQS_PER_S START_US: "<user µs>/<kernel µs>" of CPU per
# response of PID and its children since START_US (now_us), when their ticks were USER0 and
# KERNEL0 (tree_user_kernel_ticks); "-" without a rate.
user_kernel_us() {
  local user1 kernel1
  read -r user1 kernel1 < <(tree_user_kernel_ticks "$1")
  awk -v u0="$2" -v k0="$3" -v u1="$user1" -v k1="$kernel1" -v r="$4" -v us=$(($(now_us) - $5)) \
    -v hz="$CLK_TCK" 'BEGIN {
    n = r * us / 1e6
    if (n <= 0) { print "-"; exit }
    printf "%.1f/%.1f", (u1 - u0) / hz * 1e6 / n, (k1 - k0) / hz * 1e6 / n }'
}
# loop_ticks PID: "<ticks of loop 0> <ticks of loop 1> ..." for one of our servers: loop 0 is
# the main thread, loop N the thread named loop-N (service_host.cc).
loop_ticks() {
  local task comm out=() n
  out[0]=$(awk '{ print $14 + $15 }' "/proc/$1/task/$1/stat" 2>/dev/null || echo 0)
  for task in /proc/"$1"/task/*; do
    comm=$(cat "$task/comm" 2>/dev/null) || continue
    [[ $comm =~ ^loop-([0-9]+)$ ]] || continue
    n=${BASH_REMATCH[1]}
    out[n]=$(awk '{ print $14 + $15 }' "$task/stat" 2>/dev/null || echo 0)
  done
  echo "${out[*]}"
}
# loop_busy "BEFORE" "AFTER" MICROSECONDS: each loop's busy share in % of its thread, "63/51".
loop_busy() {
  awk -v a="$1" -v b="$2" -v us="$3" -v hz="$CLK_TCK" 'BEGIN {
    n = split(a, x, " "); split(b, y, " "); out = ""
    for (i = 1; i <= n; i++) out = out (i > 1 ? "/" : "") sprintf("%.0f", (y[i] - x[i]) / hz * 100 / (us / 1000000))
    print out }'
}
# syscall_count_start PID FILE SECONDS: counts each system call PID and its children (nginx's
# workers) enter for SECONDS (perf stat on the syscalls tracepoints), into FILE; the perf's pid
# is SYSCALL_COUNT_PID. syscalls_per_response FILE RESPONSES: the ten most frequent, per
# response, "read 1.02, writev 1.00, ...".
syscall_count_start() {
  local pids
  pids=$(join "$1" $(pgrep -P "$1" 2>/dev/null))
  perf stat -x, -e 'syscalls:sys_enter_*' -p "$pids" -o "$2" -- sleep "$3" >/dev/null 2>&1 &
  SYSCALL_COUNT_PID=$!
}
syscalls_per_response() {
  awk -F, -v n="$2" '$3 ~ /^syscalls:sys_enter_/ && $1 + 0 > 0 {
      sub(/^syscalls:sys_enter_/, "", $3); print $1 / n, $3 }' "$1" 2>/dev/null |
    sort -rg | head -n 10 | awk '{ printf "%s%s %.2f", (NR > 1 ? ", " : ""), $2, $1 }'
}
# Path of a server binary on PATH or in /usr/sbin (Debian puts nginx and varnishd there).
find_bin() {
  if command -v "$1" 2>/dev/null; then return; fi
  [[ -x /usr/sbin/$1 ]] && echo "/usr/sbin/$1"
  return 0
}

# verdict VALUE LIMIT le|ge: PASS, FAIL, or n/a when VALUE is empty or n/a.
verdict() {
  awk -v v="$1" -v lim="$2" -v op="$3" 'BEGIN {
    if (v == "" || v == "n/a") print "n/a"
    else if ((op == "le" && v + 0 <= lim) || (op == "ge" && v + 0 >= lim)) print "PASS"
    else print "FAIL" }'
}
# ratio A B: A / B with two decimals, n/a unless both are positive numbers.
# media_playlist_sets BALANCER [CONF]: prints "--set steering.media_masters=false" when that
# balancer knows the key. A channel whose source is a bare media playlist then answers with the
# rewritten media playlist itself, the path these benchmarks measure (a build that knows the key
# answers the channel's entry URL with a master of its own making otherwise; an older build
# always answered with the media playlist and refuses the key).
media_playlist_sets() {
  local conf=${2:-conf/balancer.json}
  if (cd "$ROOT_DIR" && "$1" --config "$conf" --set steering.media_masters=false --check-config) >/dev/null 2>&1; then
    echo "--set steering.media_masters=false"
  fi
}
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else printf "n/a" }'; }

# spawn_live_ladder LOG DIR [SEGMENT_S]: ffmpeg encoding a live test pattern in real time, 3
# variants (800k/400k/200k, 640x360/480x270/320x180, a keyframe each segment), SEGMENT_S-second
# segments (default 2), 8 listed, with program dates, under DIR/live/ (master.m3u8,
# v0..v2/index.m3u8); sets SPAWNED.
spawn_live_ladder() {
  local log=$1 dir=$2 segment_s=${3:-2}
  mkdir -p "$dir/live"
  spawn "$log" ffmpeg -hide_banner -loglevel error -re \
    -f lavfi -i "testsrc2=size=640x360:rate=25" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -filter_complex "[0:v]split=3[a][b][c];[b]scale=480:270[b2];[c]scale=320:180[c2]" \
    -map "[a]" -map 1:a -map "[b2]" -map 1:a -map "[c2]" -map 1:a \
    -c:v libx264 -preset ultrafast -tune zerolatency -g $((25 * segment_s)) -keyint_min $((25 * segment_s)) \
    -sc_threshold 0 -pix_fmt yuv420p -b:v:0 800k -b:v:1 400k -b:v:2 200k -c:a aac -b:a 64k -ac 2 \
    -f hls -hls_time "$segment_s" -hls_list_size 8 -hls_flags delete_segments+independent_segments+temp_file+program_date_time \
    -master_pl_name master.m3u8 -var_stream_map "v:0,a:0 v:1,a:1 v:2,a:2" \
    -hls_segment_filename "$dir/live/v%v/seg_%05d.ts" "$dir/live/v%v/index.m3u8"
}

# ---------------------------------------------------------------- peers at their best
# Every peer runs with what our servers have (src/http/server/http_server.cc,
# connection_limits.cc) and with what its own documentation advises for this load:
# - accept queue: ours listens with server.listen_backlog (4096; the kernel caps it at
#   net.core.somaxconn) - PEER_BACKLOG, the same for nginx (listen backlog=) and Varnish
#   (listen_depth);
# - open files: ours run with the bench's RLIMIT_NOFILE (the hard limit, raised above) - nginx
#   gets it as worker_rlimit_nofile and as worker_connections (every descriptor a worker can
#   open may be a client), Varnish inherits it;
# - accepting: our loops share one listening socket (no SO_REUSEPORT) and libevent's listener
#   accepts until EAGAIN on every wake-up - nginx: one shared socket, multi_accept on (all
#   pending connections per wake-up), accept_mutex off (every worker waits on the socket, the
#   kernel wakes one: nginx's default since 1.11.3, stated); BENCH_NGINX_REUSEPORT=1 gives each
#   worker a socket of its own (reuseport) instead;
# - workers: one per loop of ours - the callers pass our thread count (auto = one per core,
#   which is our loop count here) as worker_processes, and Varnish gets as many thread pools.
PEER_BACKLOG=${BENCH_BACKLOG:-4096}
NGINX_LISTEN="backlog=$PEER_BACKLOG"
if [[ ${BENCH_NGINX_REUSEPORT:-0} = 1 ]]; then NGINX_LISTEN+=" reuseport"; fi

# varnish_tuning POOLS CONNECTIONS: sets VARNISH_TUNING, varnishd's -p arguments for a run of
# up to CONNECTIONS clients, as Varnish's parameter docs (varnishd -x parameter) advise:
# - thread_pools POOLS: one pool per core (our loops); more than one per CPU wastes;
# - thread_pool_min: Varnish gives each busy session a worker thread; threads started up front
#   (at least a tenth of the clients) so that a herd does not wait for thread creation;
# - thread_pool_max: room for every client at once (default 5,000 a pool);
# - thread_queue_limit: sessions waiting for a thread are queued, not dropped (default 20,
#   which drops them under a connection herd: errors, not throughput);
# - listen_depth PEER_BACKLOG: the accept queue ours have (default 1,024).
varnish_tuning() {
  local pools=$1 conns=$2 min max
  min=$(((conns / 10 + pools - 1) / pools))
  ((min < 100)) && min=100
  max=$(((conns + pools - 1) / pools + 200))
  ((max < 5000)) && max=5000
  VARNISH_TUNING=(-p "thread_pools=$pools" -p "thread_pool_min=$min" -p "thread_pool_max=$max"
    -p "thread_queue_limit=$((conns > 1000 ? conns : 1000))" -p "listen_depth=$PEER_BACKLOG")
  VARNISH_TUNING_NOTE="thread_pools $pools, thread_pool_min $min, thread_pool_max $max, listen_depth $PEER_BACKLOG, thread_queue_limit $((conns > 1000 ? conns : 1000))"
}

# ---------------------------------------------------------------- nginx
# start_nginx_in DIR WORKERS PORT HTTP: nginx with its own prefix DIR and config at its best
# (above, and: access log off, sendfile, an open-file cache, keep-alive for 100,000 requests,
# the content types test_origin sends), HTTP = the rest of the http {} block (upstreams,
# servers listening on PORT with $NGINX_LISTEN). Sets NGINX_PID, NGINX_VERSION and NGINX_TUNING
# (a one-line summary for reports); on failure sets NGINX_ERROR and returns 1.
start_nginx_in() {
  local dir=$1 workers=$2 port=$3 http=$4 nginx user_line="" files
  NGINX_PID="" NGINX_VERSION="" NGINX_ERROR=""
  nginx=$(find_bin nginx)
  if [[ -z $nginx ]]; then
    NGINX_ERROR="nginx not installed (apt-get install nginx-light)"
    return 1
  fi
  mkdir -p "$dir"
  files=$(ulimit -n)
  [[ $files = unlimited ]] && files=1048576
  # Run as root, workers would switch to "nobody" and lose access to the temp dir.
  [[ $(id -u) = 0 ]] && user_line="user root root;"
  cat >"$dir/nginx.conf" <<CONF
$user_line
worker_processes $workers;
daemon off;
pid nginx.pid;
error_log error.log warn;
# Our servers' open-file limit (the bench's ulimit -n).
worker_rlimit_nofile $files;
events {
  # Every descriptor a worker may open can be a client's.
  worker_connections $files;
  # Our loops accept every pending connection on each wake-up (libevent's listener).
  multi_accept on;
  # Every worker waits on the shared socket, as our loops do (the default since 1.11.3).
  accept_mutex off;
  use epoll;
}
http {
  # Ours run with server.access_log=false.
  access_log off;
  # nginx's docs for static files: no copy through user space (sendfile), the head and the
  # body's start in one segment (tcp_nopush), the last one sent at once (tcp_nodelay).
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  # No open/fstat/close per request: descriptors of served files kept and checked every
  # second (nginx's smallest step), so a live playlist rewritten on disk is served at most
  # ~1 s old (the balancer promises 0.5 s: nginx is given the cheaper bargain).
  open_file_cache max=10000 inactive=60s;
  open_file_cache_valid 1s;
  open_file_cache_errors on;
  keepalive_requests 100000;
  types {
    application/vnd.apple.mpegurl m3u8;
    video/mp2t ts;
  }
  default_type application/octet-stream;
  client_body_temp_path client_body;
  proxy_temp_path proxy_temp;
  fastcgi_temp_path fastcgi_temp;
  uwsgi_temp_path uwsgi_temp;
  scgi_temp_path scgi_temp;
$http
}
CONF
  spawn "$dir/out" "$nginx" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log"
  if ! wait_tcp "$port" 10 "$SPAWNED"; then
    NGINX_ERROR="failed to start: $(tail -n 5 "$dir/error.log" "$dir/out" 2>/dev/null | tr '\n' ' ')"
    return 1
  fi
  NGINX_PID=$SPAWNED
  NGINX_VERSION=$("$nginx" -v 2>&1 | sed 's/.*version: //')
  NGINX_TUNING="worker_processes $workers, worker_connections and worker_rlimit_nofile $files, listen $NGINX_LISTEN, multi_accept on, accept_mutex off, access_log off, sendfile + tcp_nopush, open_file_cache (valid 1s), keepalive_requests 100000"
}

# start_nginx_static DIR ROOT: an nginx of its own (BENCH_NGINX_WORKERS, auto) serving ROOT
# under /static/; sets NGINX_PID and NGINX_STATIC_URL (ending in /static), or NGINX_ERROR and
# returns 1.
start_nginx_static() {
  local port
  port=$(free_port)
  start_nginx_in "$1" "${NGINX_WORKERS:-auto}" "$port" "
  server {
    listen 127.0.0.1:$port $NGINX_LISTEN;
    location /static/ { alias $2/; }
  }" || return 1
  NGINX_STATIC_URL="http://127.0.0.1:$port/static"
}

# ---------------------------------------------------------------- TCP memory
# Past the second value of net.ipv4.tcp_mem (pages: "pressure") the kernel stops growing
# sockets' send buffers and shrinks those whose writers ask for more: at stadium connection
# counts that, not the server, can cap bulk throughput. tcp_memory_watch_start samples the TCP
# memory in use (/proc/net/sockstat) every 0.5 s until tcp_memory_watch_stop, which sets
# TCP_MEM_PEAK (pages) and TCP_MEM_PEAK_PCT (the peak in % of the pressure threshold: 100 or
# more, the run was under pressure; n/a when unknown).
tcp_memory_pages() {
  awk '$1 == "TCP:" { for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat 2>/dev/null
}
tcp_memory_watch_start() {
  TCP_MEM_FILE="$WORK/tcp_memory_peak"
  echo 0 >"$TCP_MEM_FILE"
  (
    peak=0
    for ((i = 0; i < 3600; i++)); do  # at most 30 minutes, and not past the bench itself
      kill -0 $$ 2>/dev/null || break
      now=$(tcp_memory_pages)
      if [[ $now =~ ^[0-9]+$ ]] && ((now > peak)); then
        peak=$now
        echo "$peak" >"$TCP_MEM_FILE"
      fi
      sleep 0.5
    done
  ) &
  TCP_MEM_WATCHER=$!
}
tcp_memory_watch_stop() {
  local pressure
  kill "$TCP_MEM_WATCHER" 2>/dev/null || true
  wait "$TCP_MEM_WATCHER" 2>/dev/null || true
  TCP_MEM_PEAK=$(cat "$TCP_MEM_FILE" 2>/dev/null || echo 0)
  pressure=$(awk '{ print $2 }' /proc/sys/net/ipv4/tcp_mem 2>/dev/null || true)
  TCP_MEM_PEAK_PCT=n/a
  if [[ $TCP_MEM_PEAK =~ ^[0-9]+$ && $pressure =~ ^[0-9]+$ ]] && ((TCP_MEM_PEAK > 0 && pressure > 0)); then
    TCP_MEM_PEAK_PCT=$((TCP_MEM_PEAK * 100 / pressure))
  fi
}

# ---------------------------------------------------------------- wrk
# run_wrk SECONDS CONNECTIONS URL [LUA_SCRIPT [SCRIPT_ARGS...]]: one wrk run, $WRK_THREADS
# threads (default 2), --latency. wrk counts every response with status >= 400 and prints the
# count as "Non-2xx or 3xx responses"; those, and socket errors (connect, read, write,
# timeout), are not throughput: W_RPS counts the good responses only and W_FLAG says what
# went wrong. Sets:
#   W_OUT     wrk's output           W_REQS, W_SECS  responses and duration as wrk reports them
#   W_RPS     good responses per s   W_RAW_RPS       wrk's Requests/sec (errors included)
#   W_NON2XX  responses >= 400       W_SOCKERR       socket errors, total; W_SOCKERR_TEXT as printed
#   W_P50, W_P99  latency in ms ("null" when missing)
#   W_MOVED_MIBPS MiB read per second, responses not completed within the run included
#   W_FLAG    "ok", or "ERR(...)" naming the errors, or "ERR(no result)"
#   W_PROBLEM empty when the run was clean, else what went wrong ("481 timeout", "no result")
#   W_ESTABLISHED  wrk's connections established 1 s into a run of 3 s or more (from ss; empty
#             without ss): fewer than asked means the run measured connection setup as much as
#             serving (a herd's SYNs dropped by a full accept queue come back 1 s, 3 s ... later),
#             which makes it INVALID too.
run_wrk() {
  local secs=$1 conns=$2 url=$3 script=${4:-} args port wrk_pid spread=() sources
  args=(-t"${WRK_THREADS:-2}" -c"$conns" -d"${secs}s" --latency)
  [[ -n $script ]] && args+=(-s "$script")
  args+=("$url")
  if (($# > 4)); then args+=(-- "${@:5}"); fi
  W_ESTABLISHED=""
  port=$(sed -n 's|^[a-z]*://[^/:]*:\([0-9]*\).*|\1|p' <<<"$url")
  # Above SPREAD_ABOVE connections, wrk connects from one loopback address per 5,000.
  if ((conns > SPREAD_ABOVE)) && spread_sources_library; then
    sources=$(((conns + 4999) / 5000))
    spread=(env LD_PRELOAD="$SPREAD_LIBRARY" SPREAD_SOURCES="$sources")
    log "wrk: $conns connections from $sources loopback addresses (spread_sources.c)"
  fi
  # WRK_ENV (an array): variables wrk runs with, such as a library to preload (its
  # LD_PRELOAD replaces spread_sources' one).
  if ((${#WRK_ENV[@]} > 0)); then spread=(env "${spread[@]:1}" "${WRK_ENV[@]}"); fi
  timeout $((secs + 30)) "${spread[@]}" "$WRK" "${args[@]}" >"$WORK/run_wrk.out" 2>&1 &
  wrk_pid=$!
  # With a connection per request (WRK_CONNECTION_CLOSE=1) some are always between two.
  if ((secs >= 3)) && [[ -n $port && ${WRK_CONNECTION_CLOSE:-0} != 1 ]] && command -v ss >/dev/null; then
    sleep 1
    W_ESTABLISHED=$(ss -Htn state established "( dport = :$port )" 2>/dev/null | wc -l)
  fi
  wait "$wrk_pid" 2>/dev/null || true
  W_OUT=$(cat "$WORK/run_wrk.out")
  wrk_parse
  if [[ -n $W_ESTABLISHED && $W_PROBLEM != "no result" ]] && ((W_ESTABLISHED < conns)); then
    W_PROBLEM="${W_PROBLEM:+$W_PROBLEM, }$W_ESTABLISHED of $conns connections established 1 s in"
    W_FLAG="ERR(${W_PROBLEM})"
  fi
}
# preload_library NAME [LIBS...]: builds scripts/bench/NAME.c into $WORK/NAME.so, a library
# for LD_PRELOAD on a client (linked with -ldl and LIBS); false when it does not build (the
# compiler's words in $WORK/NAME.err).
preload_library() {
  local name=$1
  shift
  cc -O2 -shared -fPIC -o "$WORK/$name.so" "$BENCH_LIB_DIR/$name.c" -ldl "$@" 2>"$WORK/$name.err"
}
# spread_sources_library: builds spread_sources.c into $WORK once (SPREAD_LIBRARY); false, with
# a line in the log, when it cannot be built (then wrk connects from one address).
SPREAD_ABOVE=${BENCH_SPREAD_ABOVE:-8000}
WRK_ENV=()
SPREAD_LIBRARY=""
spread_sources_library() {
  [[ -n $SPREAD_LIBRARY ]] && return 0
  [[ ${SPREAD_FAILED:-} == 1 ]] && return 1
  if preload_library spread_sources; then
    SPREAD_LIBRARY="$WORK/spread_sources.so"
    return 0
  fi
  SPREAD_FAILED=1
  log "WARNING: spread_sources.c did not build ($(head -n 1 "$WORK/spread_sources.err")): wrk connects from 127.0.0.1 alone"
  return 1
}
# wrk_parse: the W_* values above from $W_OUT.
wrk_parse() {
  local line
  line=$(sed -n 's/^ *\([0-9][0-9]*\) requests in \([0-9.]*[a-z]*\),.*/\1 \2/p' <<<"$W_OUT")
  W_REQS=${line%% *}
  W_SECS=""
  [[ -n $line ]] && W_SECS=$(awk -v ms="$(to_ms "${line#* }")" 'BEGIN { printf "%.3f", ms / 1000 }')
  W_RAW_RPS=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$W_OUT")
  W_NON2XX=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' <<<"$W_OUT")
  W_NON2XX=${W_NON2XX:-0}
  W_SOCKERR_TEXT=$(sed -n 's/.*Socket errors: *\(.*\)/\1/p' <<<"$W_OUT")
  W_SOCKERR=$(awk -F'[, ]+' '{ s = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+$/) s += $i; print s }' \
    <<<"${W_SOCKERR_TEXT:-0}")
  # Bytes read per second, whole responses or not (wrk's Transfer/sec, powers of 1024).
  W_MOVED_MIBPS=$(awk '$1 == "Transfer/sec:" {
      v = $2; unit = v; sub(/^[0-9.]+/, "", unit); sub(/[A-Z]+$/, "", v)
      f = unit == "B" ? 1 / 1048576 : unit == "KB" ? 1 / 1024 : unit == "MB" ? 1 : unit == "GB" ? 1024 : unit == "TB" ? 1048576 : 0
      if (f > 0) printf "%.1f", v * f }' <<<"$W_OUT")
  W_P50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$W_OUT")")
  W_P99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$W_OUT")")
  W_RPS=""
  if [[ -n $W_REQS && -n $W_SECS ]]; then
    W_RPS=$(awk -v r="$W_REQS" -v e="$W_NON2XX" -v s="$W_SECS" 'BEGIN { if (s > 0) printf "%.0f", (r - e) / s }')
  fi
  W_PROBLEM=""
  if [[ -z $W_RPS ]]; then
    W_FLAG="ERR(no result)"
    W_PROBLEM="no result"
    W_RPS=""
  elif ((W_REQS - W_NON2XX <= 0)); then
    W_FLAG="ERR(no good response)"
    W_PROBLEM="0 good responses${W_SOCKERR_TEXT:+, socket errors: $W_SOCKERR_TEXT}"
  elif ((W_NON2XX > 0 || W_SOCKERR > 0)); then
    W_FLAG="ERR(${W_NON2XX} status>=400, ${W_SOCKERR} socket: ${W_SOCKERR_TEXT:-none})"
    # "3 status>=400, 481 timeout, 2 connect": only the counts that are not 0.
    W_PROBLEM=$(awk -v e="$W_NON2XX" -v t="${W_SOCKERR_TEXT:-}" 'BEGIN {
      out = e > 0 ? e " status>=400" : ""
      n = split(t, f, /[, ]+/)
      for (i = 1; i < n; i += 2) if (f[i + 1] + 0 > 0) out = out (out == "" ? "" : ", ") f[i + 1] " " f[i]
      print out }')
  else
    W_FLAG=ok
  fi
}
# The W_* values as JSON members (no braces).
wrk_json() {
  printf '"requests":%s,"seconds":%s,"good_requests_per_s":%s,"wrk_requests_per_s":%s,"moved_mib_per_s":%s,"status_ge_400":%s,"socket_errors":%s,"socket_errors_text":%s,"latency_p50_ms":%s,"latency_p99_ms":%s,"errors":%s' \
    "$(num_or_null "$W_REQS")" "$(num_or_null "$W_SECS")" "$(num_or_null "$W_RPS")" \
    "$(num_or_null "$W_RAW_RPS")" "$(num_or_null "$W_MOVED_MIBPS")" "$W_NON2XX" "$W_SOCKERR" "$(json_str "${W_SOCKERR_TEXT:-none}")" \
    "$W_P50" "$W_P99" "$([[ $W_FLAG = ok ]] && echo false || echo true)"
}

# h2load_parse OUTPUT: h2load's figures. Sets H_RPS, H_MBPS, H_OK (answered), H_FAILED, H_2XX
# and H_PROBLEM (empty when no request failed, errored or timed out and none was answered >= 400,
# as W_PROBLEM). The status codes, not "succeeded" - 2xx: with --warm-up-time a response whose
# head came during the warm-up counts as succeeded but its status is not counted.
h2load_parse() {
  local h2out=$1 errored timeout ge400
  H_RPS=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s, \([0-9.]*\)\([KMG]*\)B\/s.*/\1/p' <<<"$h2out")
  H_MBPS=$(sed -n 's/^finished in [^,]*, [0-9.]* req\/s, \([0-9.]*\)\([KMG]*\)B\/s.*/\1 \2/p' <<<"$h2out" |
    awk '{ f = $2 == "G" ? 1024 : $2 == "M" ? 1 : $2 == "K" ? 1 / 1024 : 1 / 1048576; printf "%.1f", $1 * f }')
  H_OK=$(sed -n 's/^requests: .* \([0-9]*\) succeeded, \([0-9]*\) failed.*/\1/p' <<<"$h2out")
  H_FAILED=$(sed -n 's/^requests: .* [0-9]* succeeded, \([0-9]*\) failed.*/\1/p' <<<"$h2out")
  errored=$(sed -n 's/^requests: .* \([0-9]*\) errored.*/\1/p' <<<"$h2out")
  ge400=$(sed -n 's/^status codes: .* \([0-9]*\) 4xx, \([0-9]*\) 5xx.*/\1 \2/p' <<<"$h2out" | awk '{ print $1 + $2 }')
  timeout=$(sed -n 's/^requests: .* \([0-9]*\) timeout.*/\1/p' <<<"$h2out")
  # "succeeded" counts any answer: the 2xx are the ones that count.
  H_2XX=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' <<<"$h2out")
  H_PROBLEM=""
  if [[ -z $H_RPS || -z $H_OK ]]; then
    H_PROBLEM="no result"
    H_RPS=0 H_MBPS=0
  else
    H_PROBLEM=$(awk -v f="${H_FAILED:-0}" -v e="${errored:-0}" -v t="${timeout:-0}" -v x="${ge400:-0}" 'BEGIN {
      out = f > 0 ? f " failed" : ""
      if (e > 0) out = out (out == "" ? "" : ", ") e " errored"
      if (t > 0) out = out (out == "" ? "" : ", ") t " timeout"
      if (x > 0) out = out (out == "" ? "" : ", ") x " status>=400"
      print out }')
  fi
}

# ---------------------------------------------------------------- invalid runs
# A run in which any server, ours or a peer, had errors - connect, read or write errors,
# timeouts, responses >= 400 (wrk: W_PROBLEM; h2load: H_PROBLEM) - measured something else
# than serving: it is INVALID and never becomes a ratio. checked_ratio is the one place where
# the benches divide one run's figure by another's; every comparison it refused is listed by
# invalid_summary, and bench_status turns them into the bench's exit status (3).
INVALID_RUNS=()
# checked_ratio WHAT NAME VALUE PROBLEM BASE_NAME BASE_VALUE BASE_PROBLEM: sets CHECKED_RATIO
# to VALUE / BASE_VALUE (two decimals; n/a unless both are positive numbers) when both runs
# were clean; else to "INVALID" and records "WHAT: NAME (PROBLEM); BASE_NAME (BASE_PROBLEM)"
# (the runs with problems only) in INVALID_RUNS. No subshell: $(checked_ratio ...) would
# lose the record.
checked_ratio() {
  local what=$1 name=$2 value=$3 problem=$4 base=$5 base_value=$6 base_problem=$7 why=""
  if [[ -z $problem && -z $base_problem ]]; then
    CHECKED_RATIO=$(ratio "$value" "$base_value")
    return 0
  fi
  [[ -n $problem ]] && why="$name ($problem)"
  [[ -n $base_problem ]] && why="${why:+$why; }$base ($base_problem)"
  CHECKED_RATIO=INVALID
  INVALID_RUNS+=("$what: $why")
}
# invalid_summary: what checked_ratio refused, for the report (a line each, or one saying
# none was).
invalid_summary() {
  if ((${#INVALID_RUNS[@]} == 0)); then
    echo "Every compared run was clean: no errors, timeouts or responses >= 400 in any server's run."
    return 0
  fi
  echo "INVALID: ${#INVALID_RUNS[@]} comparison(s) left without a ratio, a server had errors in its run:"
  printf '  INVALID %s\n' "${INVALID_RUNS[@]}"
}
# invalid_json: the same as a JSON array of strings.
invalid_json() {
  local entry out=()
  for entry in "${INVALID_RUNS[@]}"; do out+=("$(json_str "$entry")"); done
  printf '[%s]' "$(join "${out[@]}")"
}
# bench_status: the exit status a bench ends with: 3 when a comparison was invalid, else 0.
bench_status() { ((${#INVALID_RUNS[@]} == 0)) && echo 0 || echo 3; }

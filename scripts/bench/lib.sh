# shellcheck shell=bash
# Helpers shared by the benchmark scripts (sourced, not run). The caller sets WORK (a
# temp dir removed at exit unless BENCH_KEEP=1) and PIDS=() before starting servers.

log() { printf '[bench] %s\n' "$*" >&2; }

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

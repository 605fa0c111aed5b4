#!/usr/bin/env bash
# Benchmarks the balancer's REST API against its playlist path, in one run on this machine:
#   (1) playlist: wrk on the per-viewer rewritten live media playlist
#       (GET /hls/<ch>/...?cache=venue-a&viewer=v<N>, 1000 distinct anonymous viewers through
#       a wrk Lua request(), 10 segments, signed links to a real cache node);
#   (2) GET /api/v1/channels with Authorization: Bearer <token> (one user, one token);
#   (3) GET /api/v1/access?channel=<ch>&cache=venue-a with the same bearer token (session,
#       entitlement, admission, a signed playback ticket in every answer);
#   (4) the playlist load of (1) paced to a fixed rate that leaves headroom (wrk with a few
#       connections and a Lua delay() between a response and the next request), alone and
#       then while a second client sends logins at a fixed rate (200/s: batches of 20 every
#       100 ms, each on a new connection). The balancer runs with the production KDF
#       (Argon2id m=19456 KiB, t=2, p=1 on api.kdf_threads workers; a build from before
#       Argon2id: PBKDF2-SHA256, 600000 iterations, one worker) and login limits raised so that
#       every login reaches the password check: at most api.kdf_queue wait, the rest get 503
#       busy. The point: playlist p99 must not move, since no event loop runs the KDF; then the
#       paced load alone once more.
#   (5) a sign-in storm at the gates: BENCH_STORM_USERS distinct users (added before the
#       server starts) arrive over BENCH_STORM_ARRIVAL_S seconds, each signing in once and,
#       on 503 busy, waiting the answer's Retry-After and trying again (as the app does), while
#       the paced playlist load of (4) runs beside it. Reports verified sign-ins per second
#       sustained (first to last success), the time each user took to get in (p50/p95/max), the
#       busy answers and their Retry-After, playlist p99 during the storm, the balancer's CPU
#       and peak RSS.
# Prints a table (req/s and p99 per row, ratios to the playlist path, playlist p99 with and
# without logins, login outcomes by status and verified logins per second) and writes a JSON
# results file. Not run in CI.
#
# Usage: scripts/bench/api_bench.sh [--build DIR] [--conf FILE] [--out FILE] [--quick] [--storm-only]
#   --build DIR  build tree with src/balancer/balancer, src/cache_node/cache_node and
#                tests/support/test_origin (default: build, or $BUILD_DIR)
#   --conf FILE  the balancer's main config (default: conf/balancer.json; a build from before
#                Argon2id needs the conf/balancer.json of its own tree)
#   --out FILE   JSON results (default: bench-results/api-<time>.json)
#   --quick      wrk runs of 3 s (a smoke run, under a minute)
#   --storm-only only (5), the sign-in storm (after the paced playlist load alone)
# Environment: BENCH_WRK_SECONDS (10: every measured run, the login phase too),
# BENCH_WRK_THREADS (2), BENCH_CONNECTIONS (50: runs 1-3), BENCH_VIEWERS (1000),
# BENCH_PACED_CONNECTIONS (10), BENCH_PACED_RATE (2000: playlist requests/s asked in (4)),
# BENCH_LOGIN_RATE (200: logins/s in (4)), BENCH_LOGIN_BATCH (20: logins per batch),
# BENCH_KDF_MEMORY_KIB (19456), BENCH_KDF_PASSES (2), BENCH_KDF_THREADS (the password-check
# workers; default: conf, 0 = one per core), BENCH_KDF_ITERATIONS (600000: a build from before
# Argon2id), BENCH_STORM_USERS (400), BENCH_STORM_ARRIVAL_S (5), BENCH_THREADS (the balancer's
# threads; default: conf, 0 = one per core), BENCH_KEEP=1 keeps the temp dir with the server logs.
#
# Everything listens on 127.0.0.1 (ephemeral ports), lives in one temp dir and is stopped by
# pid on exit. The load generators (wrk, the login client) share the machine's cores with the
# servers. Needs wrk (scripts/setup.sh --bench), curl and python3. Whole run: about 2 minutes.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
OUT_FILE=""
WRK_SECONDS=${BENCH_WRK_SECONDS:-10}
WRK_THREADS=${BENCH_WRK_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-50}
VIEWERS=${BENCH_VIEWERS:-1000}
PACED_CONNS=${BENCH_PACED_CONNECTIONS:-10}
PACED_RATE=${BENCH_PACED_RATE:-2000}
LOGIN_RATE=${BENCH_LOGIN_RATE:-200}
LOGIN_BATCH=${BENCH_LOGIN_BATCH:-20}
KDF_ITERATIONS=${BENCH_KDF_ITERATIONS:-600000}
KDF_MEMORY_KIB=${BENCH_KDF_MEMORY_KIB:-19456}
KDF_PASSES=${BENCH_KDF_PASSES:-2}
KDF_THREADS=${BENCH_KDF_THREADS:-}
STORM_USERS=${BENCH_STORM_USERS:-400}
STORM_ARRIVAL_S=${BENCH_STORM_ARRIVAL_S:-5}
STORM_ONLY=0
CONF=conf/balancer.json
BAL_THREADS=${BENCH_THREADS:-}
WINDOW=10   # segments in the playlist

while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD_DIR=$2; shift 2 ;;
    --out) OUT_FILE=$2; shift 2 ;;
    --conf) CONF=$2; shift 2 ;;
    --quick) WRK_SECONDS=3; shift ;;
    --storm-only) STORM_ONLY=1; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $BUILD_DIR = /* ]] || BUILD_DIR="$ROOT_DIR/$BUILD_DIR"
[[ $CONF = /* ]] || CONF="$ROOT_DIR/$CONF"

BALANCER="$BUILD_DIR/src/balancer/balancer"
CACHE_NODE="$BUILD_DIR/src/cache_node/cache_node"
TEST_ORIGIN="$BUILD_DIR/tests/support/test_origin"
for bin in "$BALANCER" "$CACHE_NODE" "$TEST_ORIGIN"; do
  if [[ ! -x $bin ]]; then
    echo "missing $bin; build it first: cmake --build $BUILD_DIR --target balancer cache_node test_origin" >&2
    exit 1
  fi
done
for tool in curl timeout python3 wrk; do
  command -v "$tool" >/dev/null || { echo "$tool is required (wrk: scripts/setup.sh --bench)" >&2; exit 1; }
done
WRK=$(command -v wrk)
if ((LOGIN_BATCH < 1 || LOGIN_RATE < LOGIN_BATCH || PACED_RATE < 1 || PACED_CONNS < 1)); then
  echo "BENCH_LOGIN_RATE must be >= BENCH_LOGIN_BATCH >= 1; BENCH_PACED_RATE and BENCH_PACED_CONNECTIONS >= 1" >&2
  exit 2
fi

RUN_ID="$(date +%Y%m%d-%H%M%S)-$$"
if [[ -z $OUT_FILE ]]; then
  mkdir -p bench-results
  OUT_FILE="bench-results/api-$RUN_ID.json"
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/api-bench.XXXXXX")
PIDS=()
# shellcheck source=scripts/bench/lib.sh
source "$ROOT_DIR/scripts/bench/lib.sh"

LOAD_START=$(loadavg)
log "work dir $WORK; load average $LOAD_START on $(nproc) cores"

# ---------------------------------------------------------------- origin, cache node, balancer
# static/index.m3u8: a live media playlist (no ENDLIST) that never changes.
mkdir -p "$WORK/root/static"
{
  printf '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:500\n'
  for ((i = 500; i < 500 + WINDOW; i++)); do printf '#EXTINF:2.000,\nseg%05d.ts\n' "$i"; done
} >"$WORK/root/static/index.m3u8"
SOURCE_BYTES=$(wc -c <"$WORK/root/static/index.m3u8")

spawn "$WORK/origin.out" "$TEST_ORIGIN" --host 127.0.0.1 --port 0 --root "$WORK/root"
ORIGIN_PORT=$(wait_listening "$WORK/origin.out" 10 "$SPAWNED") || {
  echo "test_origin did not start:" >&2; cat "$WORK/origin.out" >&2; exit 1; }
ORIGIN_URL="http://127.0.0.1:$ORIGIN_PORT"
log "test_origin on port $ORIGIN_PORT"

# conf/*.json are relative to the project root.
cd "$ROOT_DIR"
mkdir -p "$WORK/cache_node/data" "$WORK/balancer"
spawn "$WORK/cache_node/log" "$CACHE_NODE" --config "$(dirname "$CONF")/cache_node.json" --set listen.port=0 \
  --set data_dir="$WORK/cache_node/data" --set origins.demo.url="$ORIGIN_URL" \
  --set server.access_log=false --set server.max_connections=100000000 --set server.max_connections_per_address=0
CACHE_PORT=$(wait_listening "$WORK/cache_node/log" 15 "$SPAWNED") || {
  echo "cache_node did not start:" >&2; tail -n 20 "$WORK/cache_node/log" >&2; exit 1; }
log "cache_node on port $CACHE_PORT"

cat >"$WORK/balancer/channels.json" <<'JSON'
{"channels":[
  {"id":"static","title":"Bench (free)","origin":"demo","source":"/files/static/index.m3u8","free":true},
  {"id":"demo-premium","title":"Bench (paid)","origin":"demo","source":"/files/static/index.m3u8","product":"premium-pass"}
]}
JSON
cat >"$WORK/balancer/caches.json" <<JSON
{"caches":[{"id":"venue-a","site":"venue","url":"http://127.0.0.1:$CACHE_PORT","networks":[]}]}
JSON
# The same overrides for the server and for "balancer user add" (same api.data_dir).
# Room for a million viewers, no traffic limit, no per-address bound (every bench viewer comes
# from loopback), login limits far above the login rate (every login reaches the KDF).
SETS=(--set listen.port=0 --set channels_file="$WORK/balancer/channels.json"
  --set caches_file="$WORK/balancer/caches.json" --set origins.demo.url="$ORIGIN_URL"
  --set server.access_log=false --set server.max_connections=100000000 --set server.max_connections_per_address=0 --set limits.max_streams=1000000 --set limits.max_traffic_mbps=0
  --set limits.max_anonymous_per_address=0 --set playback.allow_anonymous=true
  --set api.data_dir="$WORK/api" --set api.demo_payments=true
  --set api.login_limits.per_address=1000000 --set api.login_limits.per_login=1000000)
[[ -n $BAL_THREADS ]] && SETS+=(--set threads="$BAL_THREADS")
# shellcheck disable=SC2207  # the function prints nothing or one "--set key=value" pair
SETS+=($(media_playlist_sets "$BALANCER" "$CONF"))
# Argon2id when the build knows it (api.kdf_memory_kib), else the PBKDF2 of older builds.
if "$BALANCER" --check-config --config "$CONF" "${SETS[@]}" --set api.kdf_memory_kib="$KDF_MEMORY_KIB" \
  --set api.kdf_allow_weak_for_tests=true >/dev/null 2>&1; then
  KDF=argon2id
  SETS+=(--set api.kdf_memory_kib="$KDF_MEMORY_KIB" --set api.kdf_passes="$KDF_PASSES")
  ((KDF_MEMORY_KIB < 19456 || KDF_PASSES < 2)) && SETS+=(--set api.kdf_allow_weak_for_tests=true)
  [[ -n $KDF_THREADS ]] && SETS+=(--set api.kdf_threads="$KDF_THREADS")
  KDF_SHOWN="Argon2id m=$KDF_MEMORY_KIB KiB, t=$KDF_PASSES, p=1, api.kdf_threads ${KDF_THREADS:-from the conf} (0 = one per core)"
else
  KDF=pbkdf2
  SETS+=(--set api.kdf_iterations="$KDF_ITERATIONS")
  ((KDF_ITERATIONS < 600000)) && SETS+=(--set api.kdf_allow_weak_for_tests=true)
  KDF_SHOWN="PBKDF2-SHA256, $KDF_ITERATIONS iterations, one KDF worker thread"
fi
conf_value() { sed -n "s/.*\"$1\": *\\([0-9]*\\).*/\\1/p" "$CONF" | head -n1; }
KDF_QUEUE=$(conf_value kdf_queue)
THREADS_SHOWN=${BAL_THREADS:-$(conf_value threads)}

BENCH_LOGIN=bench-user
BENCH_PASSWORD=bench-password-1
printf '%s\n' "$BENCH_PASSWORD" | "$BALANCER" user add "$BENCH_LOGIN" --config "$CONF" \
  "${SETS[@]}" >"$WORK/user-add.log" 2>&1 || {
  echo "balancer user add failed:" >&2; cat "$WORK/user-add.log" >&2; exit 1; }
# The storm's users: storm1 .. stormN, password storm-password-<n>, two at a time (each add
# hashes once). The overrides hold no spaces, so they pass through one variable.
log "adding $STORM_USERS users for the sign-in storm ($KDF)"
t0=$(now_us)
export BALANCER CONF WORK
export SETS_LINE="${SETS[*]}"
# shellcheck disable=SC2016
seq 1 "$STORM_USERS" | xargs -P 2 -I{} bash -c \
  'printf "storm-password-%s\n" {} | "$BALANCER" user add storm{} --config "$CONF" $SETS_LINE >>"$WORK/user-add.log" 2>&1' || {
  echo "adding the storm's users failed:" >&2; tail -n 5 "$WORK/user-add.log" >&2; exit 1; }
log "added $STORM_USERS users in $(( ($(now_us) - t0) / 1000 )) ms"

spawn "$WORK/balancer/log" "$BALANCER" --config "$CONF" "${SETS[@]}"
BAL_PID=$SPAWNED
BAL_PORT=$(wait_listening "$WORK/balancer/log" 15 "$SPAWNED") || {
  echo "balancer did not start:" >&2; tail -n 20 "$WORK/balancer/log" >&2; exit 1; }
cd - >/dev/null
BAL_URL="http://127.0.0.1:$BAL_PORT"
log "balancer on port $BAL_PORT (threads: $THREADS_SHOWN)"
# Signed links need the cache node listed as usable (after health.up_after polls, 1 s apart).
for ((i = 0; i < 200; i++)); do
  curl -sS --max-time 2 "$BAL_URL/health" 2>/dev/null | grep -q '"usable":true' && break
  sleep 0.05
done
((i < 200)) || log "WARNING: the balancer never listed the cache node as usable"
bal_alive() { kill -0 "$BAL_PID" 2>/dev/null || { echo "the balancer died; log tail:" >&2; tail -n 20 "$WORK/balancer/log" >&2; exit 1; }; }

# One login (measured: one PBKDF2 verification with nothing else running).
t0=$(now_us)
status=$(curl -sS --max-time 30 -o "$WORK/login.json" -w '%{http_code}' -X POST \
  -H 'Content-Type: application/json' \
  --data "{\"login\":\"$BENCH_LOGIN\",\"password\":\"$BENCH_PASSWORD\"}" "$BAL_URL/api/v1/auth/login") || status=000
LOGIN_MS=$(( ($(now_us) - t0) / 1000 ))
TOKEN=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("token", ""))' "$WORK/login.json" 2>/dev/null || true)
if [[ $status != 200 || -z $TOKEN ]]; then
  echo "login failed: status $status: $(cat "$WORK/login.json" 2>/dev/null)" >&2
  exit 1
fi
log "logged in as $BENCH_LOGIN (one login: $LOGIN_MS ms)"

# ---------------------------------------------------------------- wrk scripts
# viewers.lua: wrk -s viewers.lua URL -- COUNT PREFIX, URL ending in "viewer=": every wrk
# thread goes round the ids PREFIX1 .. PREFIX<COUNT> from its own starting point.
cat >"$WORK/viewers.lua" <<'LUA'
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  count, prefix, pause = tonumber(args[1]), args[2], tonumber(args[3] or "0")
  n = ((tid - 1) * 389) % count
end
function request()
  n = n % count + 1
  return wrk.format(nil, wrk.path .. prefix .. n)
end
LUA
# paced.lua: wrk -s paced.lua URL -- COUNT PREFIX PAUSE_MS: the same, and each connection
# waits PAUSE_MS after every answer before its next request (wrk starts the latency clock
# when it sends, so the pause is not in the latency). A separate file: with a delay()
# function wrk goes through a timer after every answer, even for 0 ms.
{
  cat "$WORK/viewers.lua"
  printf 'function delay()\n  return pause\nend\n'
} >"$WORK/paced.lua"
# bearer.lua: wrk -s bearer.lua URL -- TOKEN: every request with Authorization: Bearer TOKEN.
cat >"$WORK/bearer.lua" <<'LUA'
function init(args)
  wrk.headers["Authorization"] = "Bearer " .. args[1]
end
LUA

# ---------------------------------------------------------------- the login client
# logins.py URL LOGIN PASSWORD RATE BATCH SECONDS: every 1/(RATE/BATCH) s (absolute schedule)
# sends BATCH logins at once, each on a new connection, for SECONDS; then waits (at most 60 s)
# for the answers still due. Prints one JSON object: statuses, latencies, achieved rates.
cat >"$WORK/logins.py" <<'PY'
import concurrent.futures, http.client, json, sys, threading, time
url, login, password = sys.argv[1], sys.argv[2], sys.argv[3]
rate, batch, seconds = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
host, port = url.split("//")[1].split(":")
port = int(port.split("/")[0])
body = json.dumps({"login": login, "password": password})
lock = threading.Lock()
results = []  # (status, seconds from send to answer, answer time)

def one():
    t = time.monotonic()
    status = 0
    try:
        c = http.client.HTTPConnection(host, port, timeout=60)
        c.request("POST", "/api/v1/auth/login", body, {"Content-Type": "application/json", "Connection": "close"})
        r = c.getresponse()
        r.read()
        status = r.status
        c.close()
    except Exception:
        status = 0
    done = time.monotonic()
    with lock:
        results.append((status, done - t, done))

ticks = int(round(seconds * rate / batch))
gap = batch / rate
pool = concurrent.futures.ThreadPoolExecutor(max_workers=512)
futures = []
late = 0.0
start = time.monotonic()
for k in range(ticks):
    due = start + k * gap
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
    else:
        late = max(late, now - due)
    futures += [pool.submit(one) for _ in range(batch)]
send_end = time.monotonic()
concurrent.futures.wait(futures, timeout=60)
end = time.monotonic()
pool.shutdown(wait=False, cancel_futures=True)

def pct(v, p):
    if not v:
        return None
    v = sorted(v)
    return round(v[min(len(v) - 1, max(0, int(len(v) * p / 100.0 + 0.999999) - 1))] * 1000, 1)

by_status = {}
for s, d, _ in results:
    by_status.setdefault(str(s), []).append(d)
send_s = send_end - start
ok_in_window = sum(1 for s, _, t in results if s == 200 and t <= send_end)
out = {
    "sent": len(futures),
    "answered": len(results),
    "unanswered": len(futures) - len(results),
    "send_seconds": round(send_s, 3),
    "sent_per_s": round(len(futures) / send_s, 1) if send_s > 0 else None,
    "max_schedule_slip_ms": round(late * 1000, 1),
    "drain_seconds": round(end - send_end, 3),
    "by_status": {s: len(v) for s, v in sorted(by_status.items())},
    "latency_ms": {s: {"p50": pct(v, 50), "p99": pct(v, 99), "max": pct(v, 100)} for s, v in sorted(by_status.items())},
    "verified_per_s_while_sending": round(ok_in_window / send_s, 2) if send_s > 0 else None,
    "verified_per_s_overall": round(by_status.get("200", []).__len__() / (end - start), 2),
}
print(json.dumps(out))
PY

# ---------------------------------------------------------------- the sign-in storm client
# storm.py URL USERS ARRIVAL_S: users storm1..stormN arrive evenly over ARRIVAL_S seconds; each
# signs in (password storm-password-<n>, a new connection each time) and on 503 waits the
# answer's Retry-After (at most 60 s) and tries again, at most 50 times, all within 600 s.
# Prints one JSON object.
cat >"$WORK/storm.py" <<'PY'
import http.client, json, sys, threading, time
url, users, arrival = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
host, port = url.split("//")[1].split(":")
port = int(port.split("/")[0])
lock = threading.Lock()
successes = []      # answer time of each user's 200
took = []           # seconds from a user's arrival to its 200
attempts = []       # attempts per signed-in user
retry_after = []    # every busy answer's Retry-After
other = {}          # final status of users who never got in
busy = 0
start = time.monotonic()
deadline = start + 600

def login(n):
    c = http.client.HTTPConnection(host, port, timeout=120)
    body = json.dumps({"login": "storm%d" % n, "password": "storm-password-%d" % n})
    c.request("POST", "/api/v1/auth/login", body, {"Content-Type": "application/json", "Connection": "close"})
    r = c.getresponse()
    r.read()
    wait = r.getheader("Retry-After")
    c.close()
    return r.status, wait

def user(n, arrive):
    global busy
    delay = arrive - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    status = 0
    for k in range(1, 51):
        try:
            status, wait = login(n)
        except Exception:
            status, wait = 0, None
        now = time.monotonic()
        if status == 200:
            with lock:
                successes.append(now)
                took.append(now - arrive)
                attempts.append(k)
            return
        if status != 503 or now > deadline:
            break
        seconds = min(60, int(wait)) if wait and wait.isdigit() else 1
        with lock:
            busy += 1
            retry_after.append(seconds)
        time.sleep(seconds)
    with lock:
        other[str(status)] = other.get(str(status), 0) + 1

threads = [threading.Thread(target=user, args=(n, start + (n - 1) * arrival / users), daemon=True)
           for n in range(1, users + 1)]
for t in threads:
    t.start()
for t in threads:
    t.join(max(0.0, deadline + 130 - time.monotonic()))

def pct(v, p, scale=1.0):
    if not v:
        return None
    v = sorted(v)
    return round(v[min(len(v) - 1, max(0, int(len(v) * p / 100.0 + 0.999999) - 1))] * scale, 2)

successes.sort()
span = successes[-1] - successes[0] if len(successes) > 1 else 0
# The busiest stretch: successes per second over every 5 s window (the sustained rate).
best5 = 0
j = 0
for i in range(len(successes)):
    while successes[i] - successes[j] > 5:
        j += 1
    best5 = max(best5, i - j + 1)
print(json.dumps({
    "users": users, "arrival_s": arrival, "signed_in": len(successes), "not_signed_in": other,
    "busy_answers": busy,
    "retry_after_s": {"min": pct(retry_after, 0.0001), "p50": pct(retry_after, 50), "max": pct(retry_after, 100)},
    "sign_in_s": {"p50": pct(took, 50), "p95": pct(took, 95), "max": pct(took, 100)},
    "attempts": {"mean": round(sum(attempts) / len(attempts), 2) if attempts else None, "max": max(attempts) if attempts else None},
    "storm_seconds": round(successes[-1] - start, 2) if successes else None,
    "verified_per_s_sustained": round((len(successes) - 1) / span, 2) if span > 0 else None,
    "verified_per_s_best_5s": round(best5 / 5.0, 2),
}))
PY

# run_storm: (5), the storm beside the paced playlist load (its first WRK_SECONDS); sets STORM_*.
run_storm() {
  local cpu0 t_start hwm0
  log "sign-in storm: $STORM_USERS users over ${STORM_ARRIVAL_S}s, following Retry-After, + paced playlists (load $(loadavg))"
  hwm0=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$BAL_PID/status" 2>/dev/null || echo 0)
  STORM_RSS0=$(rss_kib "$BAL_PID")
  cpu0=$(cpu_ticks "$BAL_PID")
  t_start=$(now_us)
  python3 "$WORK/storm.py" "$BAL_URL" "$STORM_USERS" "$STORM_ARRIVAL_S" >"$WORK/storm.json" 2>"$WORK/storm.err" &
  STORM_PID=$!
  PIDS+=("$STORM_PID")
  run_wrk "$WRK_SECONDS" "$PACED_CONNS" "$PLAYLIST_URL" "$WORK/paced.lua" "$VIEWERS" v "$PAUSE_MS"
  local row=paced_with_storm
  RPS[$row]=$W_RPS P50[$row]=$W_P50 P99[$row]=$W_P99 MAX[$row]=$(wrk_max) FLAG[$row]=$W_FLAG PRB[$row]=$W_PROBLEM ERR[$row]="$W_NON2XX/$W_SOCKERR"
  [[ $W_FLAG = ok ]] || log "WARNING: $row: $W_FLAG"
  wait "$STORM_PID" 2>/dev/null || true
  bal_alive
  CPU[$row]=$(awk -v a="$cpu0" -v b="$(cpu_ticks "$BAL_PID")" -v hz="$CLK_TCK" \
    -v us=$(($(now_us) - t_start)) 'BEGIN { printf "%.0f", (b - a) / hz * 100 / (us / 1000000) }')
  JSON[$row]="{\"row\":\"$row\",\"connections\":$PACED_CONNS,$(wrk_json),\"latency_max_ms\":${MAX[$row]},\"balancer_cpu_pct_of_one_core\":$(num_or_null "${CPU[$row]}")}"
  STORM_JSON=$(cat "$WORK/storm.json" 2>/dev/null || true)
  [[ -n $STORM_JSON ]] || { log "WARNING: the storm client printed nothing: $(tail -n 5 "$WORK/storm.err")"; STORM_JSON=null; }
  STORM_RSS1=$(rss_kib "$BAL_PID")
  STORM_HWM=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$BAL_PID/status" 2>/dev/null || echo 0)
  STORM_HWM0=$hwm0
  STORM_RATE=$(metric balancer_api_kdf_checks_per_second)
}
sj() {  # sj PYTHON_EXPR: a value from the storm client's JSON (n/a when absent)
  python3 -c 'import json, sys
try:
    d = json.loads(sys.argv[1]); v = eval(sys.argv[2])
except Exception:
    v = None
print("n/a" if v is None else v)' "$STORM_JSON" "$1"
}
storm_report() {
  echo "  sign-in storm ($KDF_SHOWN; one check alone: $LOGIN_MS ms per sign-in):"
  echo "    $STORM_USERS distinct users arriving over ${STORM_ARRIVAL_S}s, each retrying after the busy answer's Retry-After:"
  echo "    signed in $(sj 'd["signed_in"]') (not: $(sj 'd["not_signed_in"]')) in $(sj 'd["storm_seconds"]') s;" \
    "verified sign-ins/s: $(sj 'd["verified_per_s_sustained"]') sustained (first to last), $(sj 'd["verified_per_s_best_5s"]') in the best 5 s"
  echo "    time to get in (s, p50/p95/max): $(sj '"%s/%s/%s" % (d["sign_in_s"]["p50"], d["sign_in_s"]["p95"], d["sign_in_s"]["max"])');" \
    "attempts mean/max $(sj '"%s/%s" % (d["attempts"]["mean"], d["attempts"]["max"])')"
  echo "    busy answers $(sj 'd["busy_answers"]'), Retry-After (s, min/p50/max): $(sj '"%s/%s/%s" % (d["retry_after_s"]["min"], d["retry_after_s"]["p50"], d["retry_after_s"]["max"])')"
  echo "    playlist p99 at ~$PACED_RATE req/s: ${P99[paced_alone]} ms alone, ${P99[paced_with_storm]} ms in the storm's first ${WRK_SECONDS}s" \
    "(max ${MAX[paced_alone]} / ${MAX[paced_with_storm]} ms; ${RPS[paced_with_storm]} req/s)"
  echo "    balancer: cpu ${CPU[paced_with_storm]}% of one core over the storm; RSS $((STORM_RSS0 / 1024)) MiB before," \
    "$((STORM_RSS1 / 1024)) MiB after, peak $((STORM_HWM / 1024)) MiB (peak before the storm $((STORM_HWM0 / 1024)) MiB)"
}
storm_json() {
  echo "\"storm\":{\"kdf\":\"$KDF\",\"kdf_shown\":$(json_str "$KDF_SHOWN"),\"client\":$STORM_JSON,\"rss_kib\":{\"before\":$(num_or_null "$STORM_RSS0"),\"after\":$(num_or_null "$STORM_RSS1"),\"peak\":$(num_or_null "$STORM_HWM"),\"peak_before\":$(num_or_null "$STORM_HWM0")},\"kdf_checks_per_second_metric\":$(num_or_null "$STORM_RATE"),\"paced_with_storm\":${JSON[paced_with_storm]}}"
}

# ---------------------------------------------------------------- measurements
PLAYLIST_URL="$BAL_URL/hls/static/files/static/index.m3u8?cache=venue-a&viewer="
CHANNELS_URL="$BAL_URL/api/v1/channels"
ACCESS_URL="$BAL_URL/api/v1/access?channel=static&cache=venue-a"

# Check each answer once.
check() {  # check NAME URL EXPECT_REGEX [curl args...]
  local name=$1 url=$2 want=$3 status
  shift 3
  status=$(curl -sS --max-time 10 -o "$WORK/check-$name.body" -w '%{http_code}' "$@" "$url" || echo 000)
  if [[ $status != 200 ]] || ! grep -Eq "$want" "$WORK/check-$name.body"; then
    echo "$name: unexpected answer (status $status): $(head -c 300 "$WORK/check-$name.body")" >&2
    exit 1
  fi
}
check playlist "${PLAYLIST_URL}check" "^http://127.0.0.1:$CACHE_PORT/o/demo/files/static/seg00500.ts\\?.*bsig="
SIGNED=$(grep -c "bsig=" "$WORK/check-playlist.body" || true)
PLAYLIST_BYTES=$(wc -c <"$WORK/check-playlist.body")
check channels "$CHANNELS_URL" '"channels":\[' -H "Authorization: Bearer $TOKEN"
CHANNELS_BYTES=$(wc -c <"$WORK/check-channels.body")
check access "$ACCESS_URL" '"access":"granted".*"playlist_url":"/hls/static/.*ticket=' -H "Authorization: Bearer $TOKEN"
ACCESS_BYTES=$(wc -c <"$WORK/check-access.body")

metric() {  # metric NAME_AND_LABELS: its value in the balancer's /metrics (empty if absent)
  { curl -sS --max-time 5 "$BAL_URL/metrics" 2>/dev/null || true; } |
    awk -v m="$1" '!found && index($0, m " ") == 1 { print $NF; found = 1 }'
}

declare -A RPS=() P50=() P99=() MAX=() ERR=() CPU=() FLAG=() PRB=() JSON=()
# wrk_max: the largest latency of the last run in ms (wrk's "Latency avg stdev max" line).
wrk_max() { to_ms "$(awk '$1 == "Latency" && NF >= 4 { print $4; exit }' <<<"$W_OUT")"; }
# measure ROW SECONDS CONNS URL SCRIPT ARGS...: one measured wrk run (after 1 s unmeasured
# with the same arguments), with the balancer's CPU time in % of one core.
measure() {
  local row=$1 secs=$2 conns=$3 url=$4 cpu0 t_start
  shift 4
  run_wrk 1 "$conns" "$url" "$@" >/dev/null
  log "$row: wrk -t$WRK_THREADS -c$conns -d${secs}s (load $(loadavg))"
  cpu0=$(cpu_ticks "$BAL_PID")
  t_start=$(now_us)
  run_wrk "$secs" "$conns" "$url" "$@"
  CPU[$row]=$(awk -v a="$cpu0" -v b="$(cpu_ticks "$BAL_PID")" -v hz="$CLK_TCK" \
    -v us=$(($(now_us) - t_start)) 'BEGIN { printf "%.0f", (b - a) / hz * 100 / (us / 1000000) }')
  bal_alive
  RPS[$row]=$W_RPS P50[$row]=$W_P50 P99[$row]=$W_P99 MAX[$row]=$(wrk_max) FLAG[$row]=$W_FLAG PRB[$row]=$W_PROBLEM
  ERR[$row]="$W_NON2XX/$W_SOCKERR"
  [[ $W_FLAG = ok ]] || log "WARNING: $row: $W_FLAG"
  JSON[$row]="{\"row\":\"$row\",\"connections\":$conns,$(wrk_json),\"latency_max_ms\":${MAX[$row]},\"balancer_cpu_pct_of_one_core\":$(num_or_null "${CPU[$row]}")}"
}

if ((STORM_ONLY == 0)); then
  measure playlist "$WRK_SECONDS" "$CONNS" "$PLAYLIST_URL" "$WORK/viewers.lua" "$VIEWERS" v
  measure channels "$WRK_SECONDS" "$CONNS" "$CHANNELS_URL" "$WORK/bearer.lua" "$TOKEN"
  measure access "$WRK_SECONDS" "$CONNS" "$ACCESS_URL" "$WORK/bearer.lua" "$TOKEN"
fi

# (4) Paced playlist load: each connection pauses PAUSE ms after every response.
PAUSE_MS=$(( (PACED_CONNS * 1000 + PACED_RATE / 2) / PACED_RATE ))
((PAUSE_MS >= 1)) || PAUSE_MS=1
measure paced_alone "$WRK_SECONDS" "$PACED_CONNS" "$PLAYLIST_URL" "$WORK/paced.lua" "$VIEWERS" v "$PAUSE_MS"

# (5) The sign-in storm (its users have not signed in yet).
run_storm
if ((STORM_ONLY)); then
  { echo; echo "API benchmark $RUN_ID on $(nproc) cores, $(uname -sr): sign-in storm only"; storm_report; echo; } |
    tee "$WORK/table.txt"
  mkdir -p "$(dirname "$OUT_FILE")"
  echo "{\"run_id\":\"$RUN_ID\",\"date\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"cores\":$(nproc),\"single_login_ms\":$LOGIN_MS,\"paced_alone\":${JSON[paced_alone]},$(storm_json)}" >"$OUT_FILE"
  log "results written to $OUT_FILE"
  exit 0
fi

# The same with the login client beside it: both start together and send for WRK_SECONDS.
OK0=$(metric 'balancer_api_logins_total{result="ok"}')
BUSY0=$(metric 'balancer_api_logins_total{result="busy"}')
run_wrk 1 "$PACED_CONNS" "$PLAYLIST_URL" "$WORK/paced.lua" "$VIEWERS" v "$PAUSE_MS" >/dev/null
log "paced_with_logins: wrk -t$WRK_THREADS -c$PACED_CONNS -d${WRK_SECONDS}s + $LOGIN_RATE logins/s (load $(loadavg))"
python3 "$WORK/logins.py" "$BAL_URL" "$BENCH_LOGIN" "$BENCH_PASSWORD" "$LOGIN_RATE" "$LOGIN_BATCH" \
  "$WRK_SECONDS" >"$WORK/logins.json" 2>"$WORK/logins.err" &
LOGIN_PID=$!
PIDS+=("$LOGIN_PID")
cpu0=$(cpu_ticks "$BAL_PID")
t_start=$(now_us)
run_wrk "$WRK_SECONDS" "$PACED_CONNS" "$PLAYLIST_URL" "$WORK/paced.lua" "$VIEWERS" v "$PAUSE_MS"
CPU[paced_with_logins]=$(awk -v a="$cpu0" -v b="$(cpu_ticks "$BAL_PID")" -v hz="$CLK_TCK" \
  -v us=$(($(now_us) - t_start)) 'BEGIN { printf "%.0f", (b - a) / hz * 100 / (us / 1000000) }')
row=paced_with_logins
RPS[$row]=$W_RPS P50[$row]=$W_P50 P99[$row]=$W_P99 MAX[$row]=$(wrk_max) FLAG[$row]=$W_FLAG PRB[$row]=$W_PROBLEM ERR[$row]="$W_NON2XX/$W_SOCKERR"
[[ $W_FLAG = ok ]] || log "WARNING: $row: $W_FLAG"
JSON[$row]="{\"row\":\"$row\",\"connections\":$PACED_CONNS,$(wrk_json),\"latency_max_ms\":${MAX[$row]},\"balancer_cpu_pct_of_one_core\":$(num_or_null "${CPU[$row]}")}"
log "waiting for the logins still queued"
wait "$LOGIN_PID" 2>/dev/null || true
bal_alive
OK1=$(metric 'balancer_api_logins_total{result="ok"}')
BUSY1=$(metric 'balancer_api_logins_total{result="busy"}')
# Once more alone, after the logins: brackets the run with logins (the machine's other load drifts).
measure paced_alone_after "$WRK_SECONDS" "$PACED_CONNS" "$PLAYLIST_URL" "$WORK/paced.lua" "$VIEWERS" v "$PAUSE_MS"
LOGINS_JSON=$(cat "$WORK/logins.json" 2>/dev/null || true)
[[ -n $LOGINS_JSON ]] || { log "WARNING: the login client printed nothing: $(tail -n 5 "$WORK/logins.err")"; LOGINS_JSON=null; }
LOAD_END=$(loadavg)

# ---------------------------------------------------------------- report
lj() {  # lj PYTHON_EXPR: a value from the login client's JSON (n/a when absent)
  python3 -c 'import json, sys
try:
    d = json.loads(sys.argv[1]); v = eval(sys.argv[2])
except Exception:
    v = None
print("n/a" if v is None else v)' "$LOGINS_JSON" "$1"
}
delta() { [[ $1 =~ ^[0-9.]+$ && $2 =~ ^[0-9.]+$ ]] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }' || echo n/a; }
row_line() {
  printf '%-19s %5s %9s %8s %8s %8s %8s %6s  %s\n' "$1" "$2" "${RPS[$1]:-n/a}" "${P50[$1]}" "${P99[$1]}" "${MAX[$1]}" \
    "${ERR[$1]}" "${CPU[$1]}" "${FLAG[$1]}"
}
# A ratio only of two clean runs (lib.sh, checked_ratio): INVALID when either had errors.
checked_ratio "channels vs playlist" channels "${RPS[channels]:-}" "${PRB[channels]:-}" playlist "${RPS[playlist]:-}" "${PRB[playlist]:-}"
R_CHANNELS=$CHECKED_RATIO
checked_ratio "access vs playlist" access "${RPS[access]:-}" "${PRB[access]:-}" playlist "${RPS[playlist]:-}" "${PRB[playlist]:-}"
R_ACCESS=$CHECKED_RATIO
checked_ratio "paced p99 with logins vs alone" paced_with_logins "${P99[paced_with_logins]}" \
  "${PRB[paced_with_logins]:-}" paced_alone "${P99[paced_alone]}" "${PRB[paced_alone]:-}"
P99_RATIO=$CHECKED_RATIO
OK_DELTA=$(delta "$OK0" "$OK1")
BUSY_DELTA=$(delta "$BUSY0" "$BUSY1")
STATUS_LINE=$(lj '", ".join("%s: %d" % (("no answer" if k == "0" else k), v) for k, v in d["by_status"].items())')
{
  echo
  echo "API benchmark $RUN_ID on $(nproc) cores, $(uname -sr)"
  echo "  load average (1/5/15 min): start $LOAD_START, end $LOAD_END"
  echo "  balancer: $(basename "$(dirname "$(dirname "$CONF")")")/conf/$(basename "$CONF"), threads $THREADS_SHOWN (0 = one per core), access log off, anonymous play on"
  echo "  (for the playlist rows), $KDF_SHOWN,"
  echo "  api.kdf_queue ${KDF_QUEUE:-64}, login limits raised to 1000000 per address and per login; one cache node."
  echo "  One login alone took $LOGIN_MS ms. wrk -t$WRK_THREADS, ${WRK_SECONDS}s per row after 1 s unmeasured."
  echo
  echo "  playlist           GET /hls/static/files/static/index.m3u8?cache=venue-a&viewer=v<N>, $VIEWERS distinct"
  echo "                     anonymous viewers (wrk Lua request()); live media playlist, $WINDOW segments, $SOURCE_BYTES"
  echo "                     bytes at origin, $PLAYLIST_BYTES bytes rewritten ($SIGNED signed links to the cache node)"
  echo "  channels           GET /api/v1/channels, Authorization: Bearer (one user, one token), $CHANNELS_BYTES bytes"
  echo "  access             GET /api/v1/access?channel=static&cache=venue-a, the same bearer token, $ACCESS_BYTES bytes"
  echo "                     (session, entitlement, admission, a signed playback ticket each time)"
  echo "  paced_alone        the playlist load at $PACED_CONNS connections, each pausing $PAUSE_MS ms after every answer"
  echo "                     (asked: ~$PACED_RATE req/s)"
  echo "  paced_with_logins  the same, while a second client sends $LOGIN_RATE logins/s ($LOGIN_BATCH every"
  echo "                     $((1000 * LOGIN_BATCH / LOGIN_RATE)) ms, each on a new connection, correct password) for the same ${WRK_SECONDS}s"
  echo "  paced_alone_after  paced_alone again once the logins are answered"
  echo
  echo "  req/s counts good answers only; max = wrk's largest latency; err = answers >= 400 / socket"
  echo "  errors; cpu% = the balancer's CPU time in % of one core during the run"
  printf '%-19s %5s %9s %8s %8s %8s %8s %6s  %s\n' row conns req/s p50_ms p99_ms max_ms err cpu% check
  row_line playlist "$CONNS"
  row_line channels "$CONNS"
  row_line access "$CONNS"
  row_line paced_alone "$PACED_CONNS"
  row_line paced_with_logins "$PACED_CONNS"
  row_line paced_alone_after "$PACED_CONNS"
  echo
  echo "  channels / playlist req/s: $R_CHANNELS"
  echo "  access / playlist req/s:   $R_ACCESS"
  echo "  playlist p99 at ~$PACED_RATE req/s: ${P99[paced_alone]} ms alone, ${P99[paced_with_logins]} ms with $LOGIN_RATE logins/s (x$P99_RATIO),"
  echo "    ${P99[paced_alone_after]} ms alone again; max ${MAX[paced_alone]} / ${MAX[paced_with_logins]} / ${MAX[paced_alone_after]} ms"
  echo "    (a password check on an event loop would stall its requests for one whole check, ~$LOGIN_MS ms)"
  echo
  echo "  logins: sent $(lj 'd["sent"]') in $(lj 'd["send_seconds"]') s ($(lj 'd["sent_per_s"]')/s; schedule slip max $(lj 'd["max_schedule_slip_ms"]') ms);"
  echo "    answers by status: $STATUS_LINE; unanswered after 60 s: $(lj 'd["unanswered"]')"
  echo "    latency ms (p50/p99/max): 200 $(lj '"%s/%s/%s" % tuple(d["latency_ms"]["200"][k] for k in ("p50","p99","max"))')," \
    "503 $(lj '"%s/%s/%s" % tuple(d["latency_ms"]["503"][k] for k in ("p50","p99","max"))')," \
    "429 $(lj '"%s/%s/%s" % tuple(d["latency_ms"]["429"][k] for k in ("p50","p99","max"))')"
  echo "    verified (200) per second: $(lj 'd["verified_per_s_while_sending"]') while sending, $(lj 'd["verified_per_s_overall"]') until the"
  echo "    last answer ($(lj 'd["drain_seconds"]') s after sending stopped); balancer metrics: logins ok +$OK_DELTA, busy (503) +$BUSY_DELTA"
  echo
  storm_report
  echo
} | tee "$WORK/table.txt"

mkdir -p "$(dirname "$OUT_FILE")"
cat >"$OUT_FILE" <<JSON
{"run_id":"$RUN_ID","date":"$(date -u +%Y-%m-%dT%H:%M:%SZ)","cores":$(nproc),"kernel":$(json_str "$(uname -sr)"),
 "loadavg":{"start":$(json_str "$LOAD_START"),"end":$(json_str "$LOAD_END")},
 "wrk_seconds":$WRK_SECONDS,"wrk_threads":$WRK_THREADS,"viewers":$VIEWERS,
 "balancer":{"threads":$(num_or_null "$THREADS_SHOWN"),"kdf":"$KDF","kdf_shown":$(json_str "$KDF_SHOWN"),"kdf_queue":$(num_or_null "$KDF_QUEUE"),"single_login_ms":$LOGIN_MS},
 "rows":[${JSON[playlist]},${JSON[channels]},${JSON[access]},${JSON[paced_alone]},${JSON[paced_with_logins]},${JSON[paced_alone_after]}],
 "ratios":{"channels_to_playlist":$(num_or_null "$R_CHANNELS"),"access_to_playlist":$(num_or_null "$R_ACCESS"),"invalid":$(invalid_json),"paced_p99_with_to_without_logins":$(num_or_null "$P99_RATIO")},
 "paced":{"connections":$PACED_CONNS,"pause_ms":$PAUSE_MS,"asked_rate":$PACED_RATE},
 "logins":{"rate":$LOGIN_RATE,"batch":$LOGIN_BATCH,"client":$LOGINS_JSON,"metrics_ok_delta":$(num_or_null "$OK_DELTA"),"metrics_busy_delta":$(num_or_null "$BUSY_DELTA")},
 $(storm_json)}
JSON
invalid_summary
log "results written to $OUT_FILE"
exit "$(bench_status)"

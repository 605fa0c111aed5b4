#!/usr/bin/env bash
# scripts/bench/lib.sh's verdict on a run, on canned outputs: a run with connect, read or write
# errors, timeouts or responses >= 400 (wrk), or failed, errored, timed-out or non-2xx requests
# (h2load), on either side of a comparison, is INVALID - never a ratio - and the bench's exit
# status says so; a clean pair is a ratio. Needs nothing but bash and awk.
set -euo pipefail
ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-lib-test.XXXXXX")
PIDS=()
# shellcheck source=scripts/bench/lib.sh
source "$ROOT_DIR/scripts/bench/lib.sh" 2>/dev/null

passes=0 failures=0
expect() {  # expect WHAT GOT WANTED
  if [[ $2 == "$3" ]]; then
    echo "ok: $1"
    passes=$((passes + 1))
  else
    echo "FAIL: $1: got '$2', wanted '$3'"
    failures=$((failures + 1))
  fi
}

# wrk_out REQUESTS SOCKET_ERRORS_LINE NON2XX_LINE: a wrk 4.1 report.
wrk_out() {
  cat <<EOF
Running 10s test @ http://127.0.0.1:8080/static/far/index.m3u8?viewer=
  2 threads and 6000 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    95.12ms  120.50ms   2.00s    88.12%
    Req/Sec    28.10k     3.20k   35.00k    70.00%
  Latency Distribution
     50%   60.00ms
     75%  100.00ms
     90%  200.00ms
     99%  700.00ms
  $1 requests in 10.00s, 800.12MB read
$2
$3
Requests/sec:  $(($1 / 10)).00
Transfer/sec:     79.93MB
EOF
}

# A clean run.
W_OUT=$(wrk_out 600000 "" "")
wrk_parse
expect "clean wrk run: flag" "$W_FLAG" ok
expect "clean wrk run: no problem" "$W_PROBLEM" ""
expect "clean wrk run: req/s" "$W_RPS" 60000
expect "clean wrk run: p99" "$W_P99" 700.00
clean_rps=$W_RPS

# Timeouts only (the issue's 6,000-connection runs: 481-897 of them, reported as ratios then).
W_OUT=$(wrk_out 559000 "  Socket errors: connect 0, read 0, write 0, timeout 481" "")
wrk_parse
expect "timeouts: problem" "$W_PROBLEM" "481 timeout"
timeout_problem=$W_PROBLEM
timeout_rps=$W_RPS

# Every kind at once.
W_OUT=$(wrk_out 500000 "  Socket errors: connect 12, read 3, write 1, timeout 7" "  Non-2xx or 3xx responses: 40")
wrk_parse
expect "mixed errors: problem" "$W_PROBLEM" "40 status>=400, 12 connect, 3 read, 1 write, 7 timeout"
expect "mixed errors: req/s counts good responses only" "$W_RPS" 49996

# Responses >= 400 and no socket error.
W_OUT=$(wrk_out 500000 "" "  Non-2xx or 3xx responses: 5")
wrk_parse
expect "status >= 400: problem" "$W_PROBLEM" "5 status>=400"

# wrk that printed nothing useful.
W_OUT="unable to connect to 127.0.0.1:1 Connection refused"
wrk_parse
expect "no result: problem" "$W_PROBLEM" "no result"

# A run that answered nothing (wrk still connecting for all of it) is no clean run.
W_OUT=$(wrk_out 0 "" "")
wrk_parse
expect "0 responses: problem" "$W_PROBLEM" "0 good responses"

# h2load: a clean run, then one with failures and non-2xx answers.
H2_CLEAN='finished in 5.00s, 125900.00 req/s, 270.10MB/s
requests: 629500 total, 629500 started, 629500 done, 629500 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 629500 2xx, 0 3xx, 0 4xx, 0 5xx'
h2load_parse "$H2_CLEAN"
expect "clean h2load run: no problem" "$H_PROBLEM" ""
expect "clean h2load run: req/s" "$H_RPS" 125900.00
H2_BAD='finished in 5.00s, 1000.00 req/s, 2.10MB/s
requests: 5000 total, 5000 started, 4990 done, 4980 succeeded, 20 failed, 10 errored, 3 timeout
status codes: 4970 2xx, 0 3xx, 10 4xx, 0 5xx'
h2load_parse "$H2_BAD"
expect "h2load with errors: problem" "$H_PROBLEM" "20 failed, 10 errored, 3 timeout, 10 status>=400"
# After --warm-up-time, "succeeded" may exceed the statuses counted: that alone is no error.
h2load_parse 'finished in 2.00s, 1266.67 req/s, 1.24GB/s
requests: 3852 total, 3852 started, 3852 done, 3852 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 3800 2xx, 0 3xx, 0 4xx, 0 5xx'
expect "h2load warm-up counts: no problem" "$H_PROBLEM" ""

# checked_ratio: clean on both sides is a ratio; a problem on either side is INVALID, recorded.
checked_ratio "c6000" ours 57000 "" nginx_static "$clean_rps" ""
expect "clean pair: ratio" "$CHECKED_RATIO" 0.95
expect "clean pair: nothing recorded" "${#INVALID_RUNS[@]}" 0
expect "clean pair: exit status" "$(bench_status)" 0
checked_ratio "c6000" ours "$timeout_rps" "$timeout_problem" nginx_static "$clean_rps" ""
expect "ours with timeouts: no ratio" "$CHECKED_RATIO" INVALID
checked_ratio "c19700" ours "$clean_rps" "" nginx_static "$timeout_rps" "$timeout_problem"
expect "the peer with timeouts: no ratio" "$CHECKED_RATIO" INVALID
expect "both recorded" "${#INVALID_RUNS[@]}" 2
expect "the record names the run and its counts" "${INVALID_RUNS[0]}" "c6000: ours (481 timeout)"
expect "the peer's record" "${INVALID_RUNS[1]}" "c19700: nginx_static (481 timeout)"
expect "exit status with invalid runs" "$(bench_status)" 3
summary=$(invalid_summary)
expect "the summary says INVALID with the counts" "$(grep -c '^  INVALID c[0-9]*: .*(481 timeout)$' <<<"$summary")" 2
expect "invalid_json" "$(invalid_json)" '["c6000: ours (481 timeout)","c19700: nginx_static (481 timeout)"]'

# An INVALID ratio is null in the JSON, a number stays a number.
expect "num_or_null INVALID" "$(num_or_null INVALID)" null
expect "num_or_null 0.95" "$(num_or_null 0.95)" 0.95

# Stadium counts: wrk's connections spread over loopback source addresses (spread_sources.c),
# checked with a client of the same libc: four connections from three addresses in turn.
if command -v cc >/dev/null && command -v python3 >/dev/null && spread_sources_library; then
  sources=$(LD_PRELOAD="$SPREAD_LIBRARY" SPREAD_SOURCES=3 python3 -c '
import socket
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(8)
port = server.getsockname()[1]
seen = []
for _ in range(4):
    client = socket.create_connection(("127.0.0.1", port))
    seen.append(client.getsockname()[0])
    client.close()
print(" ".join(seen))')
  expect "spread_sources: connections from 127.0.0.2, .3, .4 in turn" "$sources" "127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.2"
else
  echo "skipped: spread_sources (no cc or python3)"
fi

echo "$passes passed, $failures failed"
((failures == 0))

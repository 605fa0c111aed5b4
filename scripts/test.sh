#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, integration,
# fuzz regression). In CI (CI=true) warnings are errors, and two more passes
# run the unit tests and the two-loop integration tests against servers built
# with AddressSanitizer + UBSan, then the integration tests with ThreadSanitizer.
#   scripts/test.sh                 everything (outside CI, the two-loop variants only with
#                                   BALANCER_TWO_LOOP_TESTS=1)
#   scripts/test.sh -L unit         extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."

# Each phase's start is printed with the time since the start, so a slow CI run says
# which phase grew.
phase() { printf '== [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

scripts/setup.sh

phase "build"
jobs=$(nproc)
werror=OFF
# Unity builds (BALANCER_UNITY_BUILD) halve the servers' and libraries' compile time from
# scratch (2.0 against 4.0 min here; a fresh clone's whole build 4.5 against 6.2 min): this
# script's trees always use them. A developer who edits and rebuilds one file at a time keeps a
# tree of their own without (README), or sets BALANCER_UNITY_BUILD=OFF here.
unity=${BALANCER_UNITY_BUILD:-ON}
if [[ "${CI:-}" == "true" ]]; then werror=ON; fi

asan_pass=0
tsan_pass=0
if [[ "${CI:-}" == "true" || "${BALANCER_SANITIZE_TESTS:-}" == "1" ]]; then asan_pass=1; fi
if [[ "${CI:-}" == "true" || "${BALANCER_TSAN_TESTS:-}" == "1" ]]; then tsan_pass=1; fi

# shellcheck source=scripts/build_tree.sh
source scripts/build_tree.sh
for tree in build build-asan build-tsan; do remake_tree_if_moved "$tree"; done
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBALANCER_WERROR=$werror -DBALANCER_UNITY_BUILD=$unity >/dev/null
cmake --build build -j "$jobs"

# A developer's whole run (no sanitizer passes, no arguments) starts the browser test, the
# longest (about 5 minutes of real-time playback), once the build is done, and runs the other
# tests beside it at a lower priority: they mostly wait on timers and other processes, and the
# players' real-time playback gets the CPU first. Its output is shown once it ends. (Started as
# soon as its four servers were built, with the rest building beside it even at nice 19, three
# of its scenarios failed: stalls and pathway switches of a starved player.) CI plays it last,
# alone, after the sanitizer passes.
browser_beside=0
if [[ "${CI:-}" != "true" && $asan_pass == 0 && $tsan_pass == 0 && $# -eq 0 ]]; then browser_beside=1; fi
browser_pid=""
stop_browser_test() {
  if [[ -n $browser_pid ]] && kill -0 "$browser_pid" 2>/dev/null; then
    kill -- "-$browser_pid" 2>/dev/null || true
  fi
}
if [[ $browser_beside == 1 ]]; then
  set -m  # its own process group, so that stopping it stops the players and servers too
  ctest --test-dir build --output-on-failure -L '^browser$' >build/browser-test.log 2>&1 &
  browser_pid=$!
  set +m
  trap stop_browser_test EXIT
fi

# The sanitizer trees are built while the ordinary tests run: those mostly wait (timers,
# real-time playback, other processes) and leave more than half of the cores idle
# (measured: 0.6 of 2). The builds run at the lowest priority, so a test that needs the
# CPU gets it first; their output goes to build/sanitizer-builds.log, shown if one fails.
# The ASan tree comes first (build-asan/built marks it done): it is the larger, and its pass
# runs while the ThreadSanitizer tree builds. (Built second, it ended at 17 min 41 s, beside
# the ThreadSanitizer pass, and its pass ran alone after it: a run no shorter.) That tree has
# the servers only: the unit tests run one thread each, which ThreadSanitizer has nothing to
# say about.
build_sanitizer_trees() {
  if [[ $asan_pass == 1 ]]; then
    cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBALANCER_WERROR=$werror -DBALANCER_SANITIZE=ON -DBALANCER_UNITY_BUILD=ON >/dev/null
    nice -n 19 cmake --build build-asan -j "$jobs" --target servers_and_unit_tests
    touch build-asan/built
    phase "ASan tree built"
  fi
  if [[ $tsan_pass == 1 ]]; then
    cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBALANCER_WERROR=$werror -DBALANCER_TSAN=ON -DBALANCER_UNITY_BUILD=ON >/dev/null
    nice -n 19 cmake --build build-tsan -j "$jobs" --target balancer cache_node
    phase "TSan tree built"
  fi
}
rm -f build-asan/built
sanitizer_builds=""
stop_sanitizer_builds() {
  if [[ -n $sanitizer_builds ]] && kill -0 "$sanitizer_builds" 2>/dev/null; then
    kill -- "-$sanitizer_builds" 2>/dev/null || true
  fi
}
if [[ $asan_pass == 1 || $tsan_pass == 1 ]]; then
  set -m  # its own process group, so that stopping it stops the compilers too
  build_sanitizer_trees >build/sanitizer-builds.log 2>&1 &
  sanitizer_builds=$!
  set +m
  trap stop_sanitizer_builds EXIT
fi

# The browser tests play in real time and measure latency behind live: they run last, once
# the sanitizer builds and passes are done, on an otherwise idle machine (measured: with the builds
# competing, even at the lowest priority, hls.js's low-latency playback through the stack
# fell a second behind, where it is 0.3-0.4 s on a quiet machine).
browser_after_builds=0
if [[ -n $sanitizer_builds && $# -eq 0 ]]; then browser_after_builds=1; fi
# The two-loop variants of the integration tests (<name>_threads2, label two_loops) run in CI's
# sanitizer passes, against instrumented servers, and not again here (their 43 tests took 773 s
# of test time at -j 4 beside the ASan tree's build); a developer's run leaves them out unless
# BALANCER_TWO_LOOP_TESTS=1 or arguments say.
# The ordinary pass runs four tests at a time on two cores: they mostly wait on timers, real-time
# playback and other processes (66 tests: 320 s at -j 2, 208 s at -j 3, 158 s at -j 4 here,
# all passing). The browser test is RUN_SERIAL within one ctest run; a developer's whole run
# starts it apart, beside the others (above).
test_jobs=${BALANCER_TEST_JOBS:-4}
phase "tests"
tests_failed=0
if [[ $browser_after_builds == 1 && $asan_pass == 1 && $tsan_pass == 1 ]]; then
  ctest --test-dir build --output-on-failure -j "$test_jobs" -LE '^(two_loops|browser)$' || tests_failed=1
elif [[ $browser_after_builds == 1 ]]; then
  ctest --test-dir build --output-on-failure -j "$test_jobs" -LE '^browser$' || tests_failed=1
elif [[ $# -eq 0 && "${CI:-}" != "true" && "${BALANCER_TWO_LOOP_TESTS:-}" != "1" ]]; then
  echo "== the two-loop variants (label two_loops) run in CI; BALANCER_TWO_LOOP_TESTS=1 runs them here"
  nice -n 10 ctest --test-dir build --output-on-failure -j "$test_jobs" -LE '^(two_loops|browser)$' || tests_failed=1
elif [[ $browser_beside == 1 ]]; then
  nice -n 10 ctest --test-dir build --output-on-failure -j "$test_jobs" -LE '^browser$' || tests_failed=1
else
  ctest --test-dir build --output-on-failure -j "$test_jobs" "$@" || tests_failed=1
fi
if [[ -n $browser_pid ]]; then
  phase "the other tests done; waiting for the browser test"
  wait "$browser_pid" || tests_failed=1
  browser_pid=""
  cat build/browser-test.log
fi
[[ $tests_failed == 0 ]] || exit 1
phase "tests done"

# Waits for the sanitizer builds to finish (or, with `asan`, for the ASan tree only: at most
# an hour); shows their log and fails if they did.
wait_sanitizer_builds() { # [asan]
  [[ -n $sanitizer_builds ]] || return 0
  if [[ ${1:-} == asan ]]; then
    for ((second = 0; second < 3600; ++second)); do
      [[ -e build-asan/built ]] && return 0
      kill -0 "$sanitizer_builds" 2>/dev/null || break
      sleep 1
    done
    [[ -e build-asan/built ]] && return 0
  fi
  if ! wait "$sanitizer_builds"; then
    sanitizer_builds=""
    echo "== the sanitizer builds failed:"
    cat build/sanitizer-builds.log
    exit 1
  fi
  sanitizer_builds=""
  grep -E '^\[[0-9]+/[0-9]+\] Linking CXX executable src/|^== \[' build/sanitizer-builds.log || true
}

# The sanitizer passes instrument the product: the servers, the libraries and their
# unit tests are built in their own tree; the integration tests are this build's
# clients driving those servers (BALANCER_SERVERS_DIR), each with two event loops
# (the single-loop variants ran above). The fault suite, benchmarks and fuzz
# runners are not built there. Reports go to files (log_path), so that one from a
# server a test has already stopped still fails the pass.
run_sanitizer_pass() { # <tree> <sanitizer> <reports dir> <unit: 1|0> [ctest arguments for the integration run...]
  local tree=$1 sanitizer=$2 reports=$3 unit=$4 failed=0
  shift 4
  if [[ $unit == 1 ]]; then
    ctest --test-dir "$tree" --output-on-failure -j 2 -L unit -E '^openapi_document$' --timeout 600 "${extra[@]}" || failed=1
  fi
  BALANCER_SERVERS_DIR="$PWD/$tree" BALANCER_SERVERS_SANITIZER=$sanitizer \
    ctest --test-dir build --output-on-failure -j 2 -L integration -R '_threads2$' --timeout 600 "$@" "${extra[@]}" || failed=1
  for report in "$reports"/*; do
    [[ -e $report ]] || continue
    echo "== $sanitizer sanitizer report: $report"
    cat "$report"
    failed=1
  done
  return $failed
}
extra=("$@")

# The two sanitizer passes run side by side: their tests mostly wait (timers, other
# processes). The ASan pass starts as soon as its tree is built (its output is shown when it
# ends, from build-asan/pass.log), beside the ThreadSanitizer tree's build; the
# ThreadSanitizer pass once its own is.
asan_pass_pid=""
stop_asan_pass() {
  stop_sanitizer_builds
  if [[ -n $asan_pass_pid ]] && kill -0 "$asan_pass_pid" 2>/dev/null; then
    kill -- "-$asan_pass_pid" 2>/dev/null || true
  fi
}
if [[ $asan_pass == 1 ]]; then
  wait_sanitizer_builds asan
  phase "sanitizer pass (ASan + UBSan), beside the ThreadSanitizer tree's build and pass"
  asan_reports="$PWD/build-asan/sanitizer-reports"
  rm -rf "$asan_reports" && mkdir -p "$asan_reports"
  set -m  # its own process group, so that stopping it stops its tests' servers too
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:log_path=$asan_reports/asan" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$asan_reports/ubsan" \
    run_sanitizer_pass build-asan address "$asan_reports" 1 >build-asan/pass.log 2>&1 &
  asan_pass_pid=$!
  set +m
  trap stop_asan_pass EXIT
fi

wait_sanitizer_builds
sanitizers_failed=0
if [[ $tsan_pass == 1 ]]; then
  phase "thread sanitizer pass (integration with threads: 2)"
  tsan_reports="$PWD/build-tsan/sanitizer-reports"
  rm -rf "$tsan_reports" && mkdir -p "$tsan_reports"
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp log_path=$tsan_reports/tsan" \
    run_sanitizer_pass build-tsan thread "$tsan_reports" 0 -E '^e2e_' || sanitizers_failed=1
fi
if [[ -n $asan_pass_pid ]]; then
  wait "$asan_pass_pid" || sanitizers_failed=1
  asan_pass_pid=""
  phase "sanitizer pass (ASan + UBSan) done: its output"
  cat build-asan/pass.log
fi
[[ $sanitizers_failed == 0 ]] || exit 1

if [[ $browser_after_builds == 1 ]]; then
  phase "browser tests"
  ctest --test-dir build --output-on-failure -L '^browser$'
fi
phase "done"

#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, integration,
# fuzz regression). In CI (CI=true) warnings are errors, a second pass runs the
# unit and integration tests under AddressSanitizer + UBSan, and a third runs
# the unit tests and the two-loop integration tests under ThreadSanitizer.
#   scripts/test.sh                 everything
#   scripts/test.sh -L unit         extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

jobs=$(nproc)
werror=OFF
if [[ "${CI:-}" == "true" ]]; then werror=ON; fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBALANCER_WERROR=$werror >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j 2 "$@"

if [[ "${CI:-}" == "true" || "${BALANCER_SANITIZE_TESTS:-}" == "1" ]]; then
  echo "== sanitizer pass (ASan + UBSan) =="
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBALANCER_WERROR=$werror -DBALANCER_SANITIZE=ON >/dev/null
  cmake --build build-asan -j "$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j 2 -L 'unit|integration' "$@"
fi

if [[ "${CI:-}" == "true" || "${BALANCER_TSAN_TESTS:-}" == "1" ]]; then
  echo "== thread sanitizer pass (unit + integration with threads: 2) =="
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBALANCER_WERROR=$werror -DBALANCER_TSAN=ON >/dev/null
  cmake --build build-tsan -j "$jobs"
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp" \
    ctest --test-dir build-tsan --output-on-failure -j 2 -L 'unit|integration' -E '^e2e_' \
    --timeout 600 "$@" -R '(_tests$|_threads2$)'
fi

#!/usr/bin/env bash
# Runs the browser tests (tests/browser/browser_test.mjs): installs the pinned npm
# packages of web/ (hls.js, served by the balancer) and tests/browser/ (playwright-core)
# from their lock files when missing or stale, then drives Debian's chromium against the
# real servers of the build tree.
#   scripts/browser_test.sh [--build DIR] [--artifacts DIR] [--only play_through_cache,queue,...]
# Exit codes: 0 passed, 1 failed, 77 skipped (chromium, ffmpeg, node or npm missing).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
artifacts=""
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --artifacts) artifacts=$2; shift 2 ;;
    *) extra+=("$1"); shift ;;
  esac
done
artifacts=${artifacts:-$build/tests/browser/artifacts}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "skipped: node/npm not installed"
  exit 77
fi
scripts/web_install.sh
tool=tests/browser
exec 9<"$tool"
flock 9
if [[ ! -f $tool/node_modules/.package-lock.json || $tool/package-lock.json -nt $tool/node_modules/.package-lock.json ]]; then
  (cd "$tool" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
    { echo "browser_test: npm ci failed in $tool (is the npm registry reachable?)" >&2; exit 1; }
fi
flock -u 9
exec node "$tool/browser_test.mjs" --build "$build" --source . --artifacts "$artifacts" "${extra[@]}"

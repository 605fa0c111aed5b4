#!/usr/bin/env bash
# Installs the web pages' npm packages (web/node_modules: hls.js, served by the
# balancer at /vendor/hls.min.js) from web/package-lock.json when missing or stale.
# Idempotent and fast when up to date; safe to run concurrently (a lock on web/).
set -euo pipefail
cd "$(dirname "$0")/../web"
if ! command -v npm >/dev/null; then
  echo "web_install: npm is not installed (scripts/setup.sh installs it)" >&2
  exit 1
fi
exec 9<.
flock 9
# npm ci keeps its own copy of the lock file in node_modules/; reinstall when ours is newer.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null ||
    { echo "web_install: npm ci failed in web/ (is the npm registry reachable?)" >&2; exit 1; }
fi

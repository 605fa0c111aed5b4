#!/usr/bin/env bash
# Checks docs/openapi.json: valid OpenAPI 3.1, schemas that compile, examples that
# match them; then runs the validator's self-test. Installs the pinned npm packages
# of tests/api/openapi/ (package-lock.json) when they are missing or stale.
#   scripts/openapi_check.sh                              the document + self-test
#   scripts/openapi_check.sh --responses FILE.jsonl       the document and recorded responses
#                                                         (FILE absolute or relative to the
#                                                         repository root), without the self-test
# Without node or npm it prints "skipped: node/npm not installed" and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
tool=tests/api/openapi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "skipped: node/npm not installed"
  exit 0
fi

# npm ci keeps its own copy of the lock file in node_modules/; reinstall when ours is newer.
# Tests run in parallel: one installs while the others wait on the folder's lock.
install() {
  if [[ ! -f $tool/node_modules/.package-lock.json || $tool/package-lock.json -nt $tool/node_modules/.package-lock.json ]]; then
    if ! (cd "$tool" && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
      echo "openapi_check: npm ci failed in $tool (is the npm registry reachable?)" >&2
      return 1
    fi
  fi
}
exec 9<"$tool"
flock 9
install
flock -u 9

node "$tool/validate.mjs" --spec docs/openapi.json "$@"
if [[ $# -eq 0 ]]; then
  node "$tool/selftest.mjs" --spec docs/openapi.json
fi

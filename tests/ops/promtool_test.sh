#!/usr/bin/env bash
# Checks the Prometheus files of conf/prometheus/ with promtool (Debian package
# prometheus, installed by scripts/setup.sh): the scrape config, the alert rules, and
# the rules' unit tests on synthetic series (tests/ops/alerts_test.yml).
# Without promtool it prints "skipped: promtool not installed" and exits 0.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v promtool >/dev/null; then
  echo "skipped: promtool not installed"
  exit 0
fi

promtool --version 2>&1 | head -n 1
promtool check config conf/prometheus/prometheus.yml
promtool check rules conf/prometheus/alerts.yml
promtool test rules tests/ops/alerts_test.yml
echo "promtool: scrape config, alert rules and rule tests pass"

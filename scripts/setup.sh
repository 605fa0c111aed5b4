#!/usr/bin/env bash
# Installs the build and test dependencies from Debian 12 packages when missing, and
# the web pages' npm packages from web/package-lock.json (scripts/web_install.sh).
# chromium (for the browser tests) is optional: when apt cannot install it, setup goes
# on and those tests say "skipped".
# Idempotent and non-interactive; does nothing (fast) when all are present.
#   scripts/setup.sh           build + test dependencies (prometheus: for promtool only)
#   scripts/setup.sh --bench   also the benchmark peers (nginx, varnish, wrk, h2load)
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config git curl ca-certificates openssl
  libevent-dev libcurl4-openssl-dev libnghttp2-dev libssl-dev rapidjson-dev liblmdb-dev doctest-dev libmimalloc-dev
  libargon2-dev
  ffmpeg clang clang-format python3 nghttp2-server prometheus
  redis-server libhiredis-dev postgresql-15 libpq-dev
  nodejs npm
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(wrk nghttp2-client nginx-light varnish)
fi
optional=(chromium)

missing=()
for p in "${packages[@]}"; do
  # A node or npm already on PATH will do (NodeSource's nodejs bundles npm and conflicts with Debian's).
  if [[ ($p == nodejs && -n $(command -v node)) || ($p == npm && -n $(command -v npm)) ]]; then continue; fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
missing_optional=()
for p in "${optional[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing_optional+=("$p")
  fi
done
web_install="$(dirname "$0")/web_install.sh"
if [[ ${#missing[@]} -eq 0 && ${#missing_optional[@]} -eq 0 ]]; then
  exec "$web_install"
fi

echo "setup: installing ${missing[*]} ${missing_optional[*]}" >&2
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
if [[ ${#missing[@]} -gt 0 ]]; then
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [[ ${#missing_optional[@]} -gt 0 ]] &&
    ! "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing_optional[@]}" >/dev/null; then
  echo "setup: could not install ${missing_optional[*]}; the browser tests will be skipped" >&2
fi
# prometheus is here for promtool (tests/integration/metrics_format_test); its package
# enables and may start a server on :9090. redis-server and postgresql are here for the tests
# and the fleet demo, which start their own instances in temp dirs on free ports; their packages
# start system services on 6379 and 5432. Stop and disable them, with or without systemd
# (in a container without systemd invoke-rc.d does not start them, and these fail quietly).
for service in prometheus redis-server postgresql; do
  "${sudo_cmd[@]}" systemctl disable --now "$service" >/dev/null 2>&1 || true
  if [[ ! -d /run/systemd/system ]]; then
    "${sudo_cmd[@]}" service "$service" stop >/dev/null 2>&1 || true
    "${sudo_cmd[@]}" update-rc.d "$service" disable >/dev/null 2>&1 || true
  fi
done
# nginx and varnish packages start system services; the benchmarks run their own instances.
if [[ "${1:-}" == "--bench" ]]; then
  "${sudo_cmd[@]}" systemctl disable --now nginx varnish >/dev/null 2>&1 || true
fi
"$web_install"

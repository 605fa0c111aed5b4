#!/usr/bin/env bash
# Builds the Debian packages balancer and balancer-cache-node (cmake/Packaging.cmake):
# configures a release build directory with the /usr prefix, builds the binaries,
# runs cpack and prints the paths of the .deb files, one per line, on stdout.
#   scripts/package.sh                  build directory build-pkg/
#   BUILD_DIR=dir scripts/package.sh    another build directory
# Installs what is missing of the build dependencies (the build part of scripts/setup.sh's
# list, no test tools, npm for the web pages' hls.js) and dpkg-dev (dpkg-shlibdeps computes the packages' dependencies).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-pkg}
out=$build/packages

packages=(cmake ninja-build g++ pkg-config dpkg-dev file
  libevent-dev libcurl4-openssl-dev libnghttp2-dev libssl-dev rapidjson-dev liblmdb-dev libmimalloc-dev
  libargon2-dev nodejs npm)
missing=()
for p in "${packages[@]}"; do
  # A node or npm already on PATH will do (web_install.sh needs npm for the pages' hls.js).
  if [[ ($p == nodejs && -n $(command -v node)) || ($p == npm && -n $(command -v npm)) ]]; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "package: installing ${missing[*]}" >&2
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The web pages' pinned npm asset (hls.js), installed with the pages.
"$root/scripts/web_install.sh" >&2

# RelWithDebInfo: -O2 -g -DNDEBUG, the optimisation level the tests run at; cpack strips
# the binaries. Tests are not built, nor their hooks in the servers. cpack's install step
# must not build "all".
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBALANCER_WERROR=ON \
  -DBALANCER_TESTS=OFF -DBALANCER_TEST_HOOKS=OFF -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON >&2
cmake --build "$build" -j "${JOBS:-2}" --target balancer audience cache_node >&2

rm -rf "$out"
(cd "$build" && cpack -G DEB -B "$out") >&2
rm -rf "$out/_CPack_Packages"
shopt -s nullglob
debs=("$out"/*.deb)
if [[ ${#debs[@]} -ne 2 ]]; then
  echo "package: expected 2 .deb files in $out, found ${#debs[@]}" >&2
  exit 1
fi
for deb in "${debs[@]}"; do
  echo "package: $(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version): Depends: $(dpkg-deb -f "$deb" Depends)" >&2
  echo "$deb"
done

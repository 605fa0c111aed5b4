#!/usr/bin/env bash
# Install test of the Debian packages (docs/operations.md § Packages and systemd).
#
# Builds the .debs (scripts/package.sh), makes a throwaway Debian 12 root with debootstrap
# from the Debian mirror of this machine's apt sources, installs both packages in it with
# apt-get (so their declared dependencies are resolved from the mirror) and checks the
# installation: the system user, files, permissions, conffiles, enabled units, libraries,
# --check-config, systemd-analyze verify and an offline security review of the units; then
# starts both servers in the root the way their units do (systemd itself does not run in a
# chroot: the ExecStart=, User=, WorkingDirectory=, UMask=, LimitNOFILE=,
# NoNewPrivileges=, ExecStartPost= and ExecReload= lines of the installed units are run by
# this script, in a private network namespace so that the default ports do not collide
# with anything on this machine) and checks readiness, /health, an account login, the web
# player and dashboard from the installed tree, reload
# on SIGHUP (good and bad files) and the graceful stop on SIGTERM. Then it boots the root
# with systemd as PID 1 in a container (systemd-nspawn, private network) and checks the
# real units there: started at boot, user, sandbox in force, readiness, reload, restart
# after a crash, no restart loop on a bad config, stop. Last, reinstall, remove and purge.
# Every step is bounded in time; mounts, the namespace and the root are removed at the end.
#
#   sudo scripts/package_test.sh                 build the .debs, run everything
#   sudo scripts/package_test.sh --debs DIR      use the two .debs in DIR
#   sudo scripts/package_test.sh --keep          keep the root (its path is printed)
#   sudo scripts/package_test.sh --no-boot       skip the systemd boot (where containers cannot run)
# Environment: MIRROR (debootstrap mirror; default: this machine's apt source for
# bookworm), VARIANT (debootstrap variant, default minbase: dependencies beyond the
# required set must come from the packages' Depends), BUILD_DIR (default build-pkg;
# debootstrap's download cache lives in BUILD_DIR/debootstrap-cache).
# Needs root, network access to the mirror and a few minutes. Not part of scripts/test.sh.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$repo/build-pkg}
variant=${VARIANT:-minbase}
debs_dir=""
keep=0
boot=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --debs) debs_dir=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --no-boot) boot=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "package_test: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [[ $(id -u) -ne 0 ]]; then
  echo "package_test: needs root (debootstrap, chroot, mount, network namespace): run it with sudo" >&2
  exit 2
fi

passed=0
failed=0
skipped=0
step() { echo; echo "== $*"; }
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
check() {  # check DESCRIPTION COMMAND...: PASS/FAIL by the command's status
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
# Runs a command in the root, bounded.
in_root() { timeout "${T:-120}" chroot "$root" "$@"; }

# --- the packages --------------------------------------------------------------------
step "packages"
if [[ -z $debs_dir ]]; then
  mapfile -t debs < <("$repo/scripts/package.sh")
else
  mapfile -t debs < <(ls "$debs_dir"/*.deb)
fi
balancer_deb="" cache_deb=""
for d in "${debs[@]}"; do
  case $(dpkg-deb -f "$d" Package) in
    balancer) balancer_deb=$d ;;
    balancer-cache-node) cache_deb=$d ;;
  esac
done
if [[ -z $balancer_deb || -z $cache_deb ]]; then
  echo "package_test: need the balancer and balancer-cache-node .debs, got: ${debs[*]}" >&2
  exit 1
fi
for d in "$balancer_deb" "$cache_deb"; do
  echo "$(basename "$d"): $(dpkg-deb -f "$d" Depends)"
done

# --- host tools ----------------------------------------------------------------------
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v curl >/dev/null || need+=(curl)
command -v ip >/dev/null || need+=(iproute2)
command -v systemd-analyze >/dev/null || need+=(systemd)
[[ $boot -eq 0 ]] || command -v systemd-nspawn >/dev/null || need+=(systemd-container)
if [[ ${#need[@]} -gt 0 ]]; then
  echo "package_test: installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- the mirror: this machine's apt sources for Debian 12 ------------------------------
# Prints "URI SUITE" for each enabled deb source of bookworm, bookworm-updates and
# bookworm-security (one-line .list and deb822 .sources formats).
apt_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ } print $i, $(i + 1) }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk 'function flush() { if (types ~ /(^| )deb( |$)/ && enabled != "no") { n = split(uris, u, " "); m = split(suites, s, " ");
                              for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) print u[i], s[j] } types = uris = suites = enabled = "" }
         /^#/ { next }
         /^[ \t]*$/ { flush(); next }
         { key = tolower($1); sub(/^[^:]*:[ \t]*/, "") }
         key == "types:" { types = $0 } key == "uris:" { uris = $0 } key == "suites:" { suites = $0 } key == "enabled:" { enabled = tolower($0) }
         END { flush() }' "$f"
  done
}
mapfile -t sources < <(apt_sources | awk '$2 ~ /^bookworm(-updates|-security)?$/ && $1 ~ /^https?:\/\//' | sort -u)
mirror=${MIRROR:-$(printf '%s\n' "${sources[@]}" | awk '$2 == "bookworm" { print $1; exit }')}
if [[ -z $mirror ]]; then
  echo "package_test: no Debian bookworm source in /etc/apt/sources.list*; set MIRROR" >&2
  exit 1
fi
echo "mirror: $mirror (apt sources in the root: ${sources[*]:-$mirror bookworm})"

# --- the throwaway root, and its cleanup --------------------------------------------
work=$(mktemp -d "${TMPDIR:-/var/tmp}/balancer-package-test.XXXXXX")
root=$work/root
ns=balancer-pkgtest-$$
started=()
cleanup() {
  local pid m
  set +e
  for pid in "${started[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  ip netns delete "$ns" 2>/dev/null
  for m in dev/pts proc; do
    if mountpoint -q "$root/$m"; then umount "$root/$m" 2>/dev/null || umount -l "$root/$m"; fi
  done
  if grep -qF " $root/" /proc/mounts; then
    echo "package_test: something is still mounted under $root: not deleting it" >&2
  elif [[ $keep -eq 1 ]]; then
    echo "package_test: kept $root"
  else
    rm -rf --one-file-system "$work"
  fi
}
trap cleanup EXIT

step "debootstrap --variant=$variant bookworm (Debian 12)"
mkdir -p "$build/debootstrap-cache"
start=$SECONDS
if ! timeout 1200 debootstrap --variant="$variant" --cache-dir="$build/debootstrap-cache" bookworm "$root" "$mirror" \
    >"$work/debootstrap.log" 2>&1; then
  tail -20 "$work/debootstrap.log" >&2
  echo "package_test: debootstrap failed (log above)" >&2
  exit 1
fi
echo "root made in $((SECONDS - start)) s: $(cat "$root/etc/debian_version"), $(du -sh --one-file-system "$root" | cut -f1)"
mount -t proc proc "$root/proc"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
cp /etc/resolv.conf "$root/etc/resolv.conf"
if [[ ${#sources[@]} -gt 0 && -z ${MIRROR:-} ]]; then
  printf '%s\n' "${sources[@]}" | awk '{ print "deb", $1, $2, "main" }' >"$root/etc/apt/sources.list"
fi
T=300 in_root apt-get update -qq
# The init of a standard Debian 12 (minbase has none): the packages' maintainer scripts then
# meet deb-systemd-helper and systemd as they would on a real machine (systemd not running).
T=600 in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd-sysv \
  >"$work/systemd.log" 2>&1 || { tail -20 "$work/systemd.log"; echo "package_test: cannot install systemd-sysv" >&2; exit 1; }

# --- installation ------------------------------------------------------------------------
step "apt-get install ./balancer_*.deb ./balancer-cache-node_*.deb"
mkdir -p "$root/tmp/debs"
cp "$balancer_deb" "$cache_deb" "$root/tmp/debs/"
b=$(basename "$balancer_deb") c=$(basename "$cache_deb")
if T=900 in_root env DEBIAN_FRONTEND=noninteractive sh -c "cd /tmp/debs && apt-get install -y --no-install-recommends ./$b ./$c" \
    >"$work/install.log" 2>&1; then
  pass "apt-get install of both packages (dependencies resolved from the mirror)"
else
  fail "apt-get install of both packages"; tail -30 "$work/install.log"; exit 1
fi
sed -n '/The following NEW packages will be installed/,/upgraded/p' "$work/install.log"
grep -E '^(Setting up (balancer|balancer-cache-node)|Adding|adduser|Created symlink)' "$work/install.log" || true

step "static checks"
# shellcheck disable=SC2016  # a dpkg-query format
status_of() { in_root dpkg-query -W -f='${Status}' "$1"; }
check "dpkg: balancer is 'install ok installed'" test "$(status_of balancer)" = "install ok installed"
check "dpkg: balancer-cache-node is 'install ok installed'" test "$(status_of balancer-cache-node)" = "install ok installed"
passwd_line=$(in_root getent passwd balancer || true)
echo "getent passwd balancer: $passwd_line"
IFS=: read -r _ _ uid gid _ _ shell <<<"$passwd_line"
check "system user balancer exists (uid $uid < 1000, shell $shell)" test -n "$uid" -a "${uid:-1000}" -lt 1000 -a "$shell" = /usr/sbin/nologin
check "group balancer exists and is the user's group" test "$(in_root getent group balancer | cut -d: -f3)" = "$gid"
for f in /usr/bin/balancer /usr/bin/audience /usr/bin/cache_node /usr/libexec/balancer/wait-ready /usr/libexec/balancer-cache-node/wait-ready; do
  check "$f is an executable file" test -f "$root$f" -a -x "$root$f"
done
# The test build's hang hook (BALANCER_TEST_HANG, docs/testing.md) is not in the packaged servers.
for f in /usr/bin/balancer /usr/bin/cache_node; do
  check "$f has no test hook (no BALANCER_TEST_HANG in it)" bash -c "! grep -q BALANCER_TEST_HANG '$root$f'"
done
for f in /lib/systemd/system/balancer.service /lib/systemd/system/balancer-cache-node.service \
         /usr/share/doc/balancer/README.md /usr/share/doc/balancer-cache-node/README.md \
         /usr/share/balancer/web/player/index.html /usr/share/balancer/web/admin/index.html \
         /usr/share/balancer/web/node_modules/hls.js/dist/hls.min.js /usr/share/doc/balancer/hls.js.LICENSE; do
  check "$f is in place" test -f "$root$f"
done
# Owners compared by number: the names are the root's, not this machine's.
owner() { stat -c '%u:%g %a' "$root$1" | sed "s/^0:/root:/; s/:0 /:root /; s/^$uid:/balancer:/; s/:$gid /:balancer /"; }
for f in balancer channels caches products cache_node; do
  mode=$(owner "/etc/balancer/$f.json")
  check "/etc/balancer/$f.json is root:balancer 640 ($mode)" test "$mode" = "root:balancer 640"
done
# shellcheck disable=SC2016  # a dpkg-query format
conffiles=$(in_root dpkg-query -W -f='${Conffiles}\n' balancer balancer-cache-node | awk 'NF { print $1 }' | sort | tr '\n' ' ')
echo "conffiles: $conffiles"
check "conffiles: the 5 files in /etc/balancer" test "$conffiles" = "/etc/balancer/balancer.json /etc/balancer/cache_node.json /etc/balancer/caches.json /etc/balancer/channels.json /etc/balancer/products.json "
for d in /var/lib/balancer /var/cache/balancer-cache-node; do
  mode=$(owner "$d")
  check "$d is balancer:balancer 750 ($mode)" test "$mode" = "balancer:balancer 750"
done
for u in balancer balancer-cache-node; do
  link=$root/etc/systemd/system/multi-user.target.wants/$u.service
  check "$u.service enabled (multi-user.target.wants link → $(readlink "$link" || echo none))" test -L "$link"
done
missing_libs=$(in_root ldd /usr/bin/balancer /usr/bin/audience /usr/bin/cache_node | grep 'not found' || true)
check "every shared library of the binaries is installed (ldd: no 'not found')" test -z "$missing_libs"
as_user() { in_root setpriv --reuid=balancer --regid=balancer --init-groups --no-new-privs -- "$@"; }
out=$(as_user balancer --check-config --config /etc/balancer/balancer.json 2>&1) && rc=0 || rc=$?
echo "$out"
check "balancer --check-config --config /etc/balancer/balancer.json as user balancer → 0" test "$rc" -eq 0
out=$(as_user cache_node --check-config --config /etc/balancer/cache_node.json 2>&1) && rc=0 || rc=$?
echo "$out"
check "cache_node --check-config --config /etc/balancer/cache_node.json as user balancer → 0" test "$rc" -eq 0
other=$(in_root setpriv --reuid=nobody --regid=nogroup --clear-groups -- cat /etc/balancer/balancer.json 2>&1 >/dev/null || true)
check "another user cannot read the keys in /etc/balancer/balancer.json ($other)" test -n "$other"

step "systemd-analyze in the root ($(in_root systemd-analyze --version | awk 'NR == 1 { print $1, $2 }'))"
for u in balancer balancer-cache-node; do
  out=$(in_root systemd-analyze verify "/lib/systemd/system/$u.service" 2>&1) && rc=0 || rc=$?
  [[ -n $out ]] && echo "$out"
  check "systemd-analyze verify $u.service: exit $rc, no warnings" test "$rc" -eq 0 -a -z "$out"
  exposure=$(in_root systemd-analyze security --offline=yes "$u.service" 2>&1 | grep -i 'overall exposure' || true)
  echo "systemd-analyze security --offline=yes $u.service: ${exposure:-no result}"
done

# --- running the servers the way the units do --------------------------------------------
# The value of KEY in a unit file (the last one; systemd's list keys: all, one per line).
unit_value() { sed -n "s/^$2=//p" "$root/lib/systemd/system/$1.service" | tail -1; }
unit_values() { sed -n "s/^$2=//p" "$root/lib/systemd/system/$1.service"; }
in_ns() { timeout "${T:-60}" ip netns exec "$ns" "$@"; }
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
declare -A mainpid
# Starts unit $1 as systemd would start its ExecStart= (minus the sandbox).
start_unit() {
  local u=$1 user group wd mask nofile cmd
  user=$(unit_value "$u" User) group=$(unit_value "$u" Group) wd=$(unit_value "$u" WorkingDirectory)
  mask=$(unit_value "$u" UMask) nofile=$(unit_value "$u" LimitNOFILE) cmd=$(unit_value "$u" ExecStart)
  echo "$u: as $user:$group in $wd, umask $mask, nofile $nofile (or this machine's hard limit): $cmd"
  ip netns exec "$ns" chroot "$root" /bin/sh -c \
    "ulimit -n $nofile 2>/dev/null || ulimit -n \$(ulimit -Hn); umask $mask; cd $wd && exec setpriv --reuid=$user --regid=$group --init-groups --no-new-privs -- $cmd" \
    >"$work/$u.out" 2>"$work/$u.err" &
  mainpid[$u]=$!
  started+=("$!")
}
# Runs the unit's lines of KEY (ExecStartPost=, ExecReload=) in order with $MAINPID, as its user.
run_unit_lines() {
  local u=$1 key=$2 line user group
  user=$(unit_value "$u" User) group=$(unit_value "$u" Group)
  while IFS= read -r line; do
    line=${line//\$MAINPID/${mainpid[$u]}}
    echo "$u $key: $line"
    # shellcheck disable=SC2086  # the unit's command line, split as systemd does for these simple lines
    T=70 in_ns chroot "$root" setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs -- $line || return $?
  done < <(unit_values "$u" "$key")
}
health() { in_ns curl -sS -m 5 -o "$work/health.json" -w '%{http_code}' "http://127.0.0.1:$1/health" 2>/dev/null || true; }
metric() { in_ns curl -sS -m 5 "http://127.0.0.1:$1/metrics" 2>/dev/null | grep -F "$2" | awk '{ print $NF }' || true; }
wait_for() {  # wait_for SECONDS COMMAND...: polls every 0.2 s
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do ((SECONDS < deadline)) || return 1; sleep 0.2; done
}
stopped() { ! kill -0 "$1" 2>/dev/null; }

step "start balancer-cache-node, then balancer (private network namespace $ns)"
for u in balancer-cache-node balancer; do
  start_unit "$u"
  if run_unit_lines "$u" ExecStartPost; then
    pass "$u: ExecStartPost readiness check returned 0 (pid ${mainpid[$u]}, $(cat "/proc/${mainpid[$u]}/comm" 2>/dev/null))"
  else
    fail "$u: ExecStartPost readiness check"; tail -5 "$work/$u.err"
  fi
  line=$(grep -m1 '"event":"listening"' "$work/$u.out" || true)
  check "$u printed the listening line on stdout: $line" test -n "$line"
  proc_uid=$(awk '/^Uid:/ { print $2 ":" $3 }' "/proc/${mainpid[$u]}/status" 2>/dev/null || true)
  check "$u runs as user balancer (real:effective uid ${proc_uid:-gone}, balancer is $uid)" test "$proc_uid" = "$uid:$uid"
done
code=$(health 8081); echo "cache node /health: $(cat "$work/health.json")"
check "cache node answers GET /health on 127.0.0.1:8081 with 200" test "$code" = 200
code=$(health 8090); echo "balancer /health: $(cat "$work/health.json")"
check "balancer answers GET /health on 127.0.0.1:8090 with 200" test "$code" = 200
cache_up() { health 8090 >/dev/null; grep -q '"id":"venue-a"[^}]*"state":"up"' "$work/health.json"; }
check "balancer sees the cache node venue-a 'up' (its health poll, within 15 s)" wait_for 15 cache_up
for d in index chunks tmp; do
  check "chunk store /var/cache/balancer-cache-node/$d created by the node" test -d "$root/var/cache/balancer-cache-node/$d"
done

step "REST API account store in /var/lib/balancer/api"
out=$(printf 'pkgtest-password-1\n' | T=60 in_root setpriv --reuid=balancer --regid=balancer --init-groups --no-new-privs -- \
  balancer user add pkgtest --config /etc/balancer/balancer.json 2>&1) && rc=0 || rc=$?
echo "balancer user add pkgtest: $out"
check "balancer user add (as user balancer, server running) → 0" test "$rc" -eq 0
mode=$(owner /var/lib/balancer/api)
check "/var/lib/balancer/api is balancer:balancer 700 ($mode)" test "$mode" = "balancer:balancer 700"
code=$(in_ns curl -sS -m 20 -o "$work/login.json" -w '%{http_code}' -H 'Content-Type: application/json' \
  -d '{"login":"pkgtest","password":"pkgtest-password-1"}' http://127.0.0.1:8090/api/v1/auth/login || true)
echo "POST /api/v1/auth/login → $code $(sed 's/"token":"[^"]*"/"token":"…"/' "$work/login.json")"
check "login with the new account → 200 with a token" grep -q '"token"' "$work/login.json"

step "web pages from the installed tree (web.dir /usr/share/balancer/web)"
page() { in_ns curl -sS -m 10 -o "$work/page.out" -w '%{http_code} %{content_type}' "http://127.0.0.1:8090$1" 2>/dev/null || true; }
for path in /player/ /admin/; do
  got=$(page "$path")
  echo "GET $path → $got"
  check "GET $path → 200 text/html from the installed page" \
    test "$got" = "200 text/html; charset=utf-8" -a "$(cmp -s "$work/page.out" "$root/usr/share/balancer/web${path}index.html" && echo same)" = same
done
page /admin/ >/dev/null
check "the installed dashboard has the playback quality panel" grep -q 'id="playback-quality"' "$work/page.out"
got=$(page /admin/admin.js)
check "GET /admin/admin.js → 200 text/javascript ($got)" test "$got" = "200 text/javascript; charset=utf-8"
got=$(page /vendor/hls.min.js)
check "GET /vendor/hls.min.js → 200, the packaged hls.js ($got)" \
  cmp -s "$work/page.out" "$root/usr/share/balancer/web/node_modules/hls.js/dist/hls.min.js"

step "reload (ExecReload=: --check-config, then SIGHUP)"
reloaded() { grep -q 'configuration reloaded' "$work/$1.err"; }
rejected() { grep -q 'reload rejected' "$work/$1.err"; }
# balancer: a second channel in channels.json, applied by the reload.
cp -p "$root/etc/balancer/channels.json" "$work/channels.json.orig"
cat >"$root/etc/balancer/channels.json" <<'EOF'
{ "channels": [
  { "id": "main", "title": "Main stream", "origin": "main", "source": "/live/master.m3u8", "free": true },
  { "id": "second", "title": "Second stream", "origin": "main", "source": "/second/master.m3u8", "free": true } ] }
EOF
check "balancer: ExecReload lines → 0" run_unit_lines balancer ExecReload
check "balancer: 'configuration reloaded' logged" wait_for 5 reloaded balancer
two_channels() { health 8090 >/dev/null; grep -q '"channels":2' "$work/health.json"; }
check "balancer: /health shows 2 channels after the reload" wait_for 5 two_channels
check "balancer: balancer_config_reloads_total{result=\"ok\"} is 1" test "$(metric 8090 'balancer_config_reloads_total{result="ok"}')" = 1
cp -p "$work/channels.json.orig" "$root/etc/balancer/channels.json"
# cache node: a good reload, then a bad file.
check "cache node: ExecReload lines → 0" run_unit_lines balancer-cache-node ExecReload
check "cache node: 'configuration reloaded' logged" wait_for 5 reloaded balancer-cache-node
cp -p "$root/etc/balancer/cache_node.json" "$work/cache_node.json.orig"
sed -i 's/"level": "info"/"level": "loud"/' "$root/etc/balancer/cache_node.json"
out=$(run_unit_lines balancer-cache-node ExecReload 2>&1) && rc=0 || rc=$?
echo "$out"
check "cache node, bad log.level: ExecReload fails (exit $rc) naming the key, before any signal" \
  grep -q "log.level" <<<"$out"
kill -HUP "${mainpid[balancer-cache-node]}"
check "cache node, bad file by SIGHUP alone: 'reload rejected' logged" wait_for 5 rejected balancer-cache-node
grep -m1 'reload rejected' "$work/balancer-cache-node.err" || true
check "cache node: still serving /health after the rejected reload" test "$(health 8081)" = 200
check "cache node: cache_node_config_reloads_total ok 1, rejected 1" \
  test "$(metric 8081 'cache_node_config_reloads_total{result="ok"}') $(metric 8081 'cache_node_config_reloads_total{result="rejected"}')" = "1 1"
cp -p "$work/cache_node.json.orig" "$root/etc/balancer/cache_node.json"

step "stop (KillSignal=SIGTERM, bounded by TimeoutStopSec=)"
for u in balancer balancer-cache-node; do
  pid=${mainpid[$u]} limit=$(unit_value "$u" TimeoutStopSec)
  kill -"$(unit_value "$u" KillSignal | sed 's/^SIG//')" "$pid"
  if wait_for "${limit:-30}" stopped "$pid"; then
    wait "$pid" && rc=0 || rc=$?
    check "$u: exited with 0 after SIGTERM within ${limit}s" test "$rc" -eq 0
  else
    fail "$u: still running ${limit}s after SIGTERM"
  fi
  tail -2 "$work/$u.err"
done
check "account store on disk after the stop (/var/lib/balancer/api/data.mdb)" test -s "$root/var/lib/balancer/api/data.mdb"
ip netns delete "$ns"

# --- systemd as PID 1: the real units -----------------------------------------------------
if [[ $boot -eq 1 ]]; then
  step "boot the root with systemd (systemd-nspawn --boot --private-network) and test the units"
  T=600 in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl >/dev/null 2>&1 ||
    fail "boot: installing curl in the root (for the in-container checks)"
  # A oneshot unit runs the checks after both services started, then powers the container off.
  cat >"$root/etc/systemd/system/pkgtest.service" <<'EOF'
[Unit]
Description=Package test of the balancer units
After=balancer.service balancer-cache-node.service
[Service]
Type=oneshot
ExecStart=/root/pkgtest-boot.sh
ExecStartPost=/bin/systemctl --no-block start poweroff.target
StandardOutput=append:/root/pkgtest-boot.log
StandardError=append:/root/pkgtest-boot.log
TimeoutStartSec=240
[Install]
WantedBy=multi-user.target
EOF
  ln -sf /etc/systemd/system/pkgtest.service "$root/etc/systemd/system/multi-user.target.wants/pkgtest.service"
  rm -f "$root/root/pkgtest-boot.log"
  cat >"$root/root/pkgtest-boot.sh" <<'EOF'
#!/bin/bash
# Runs inside the booted container as pkgtest.service; PASS/FAIL lines go to the host.
set -u
pass() { echo "PASS boot: $*"; }
fail() { echo "FAIL boot: $*"; }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
wait_for() { local deadline=$((SECONDS + $1)); shift; until "$@"; do ((SECONDS < deadline)) || return 1; sleep 0.2; done; }
prop() { systemctl show -P "$2" "$1"; }
health() { curl -sS -m 5 -o /tmp/health.json -w '%{http_code}' "http://127.0.0.1:$1/health" 2>/dev/null; }
journal() { journalctl -b -u "$1" -o cat --no-pager; }
bad_level() { sed -i 's/"level": "info"/"level": "loud"/' "$1"; }
good_level() { sed -i 's/"level": "loud"/"level": "info"/' "$1"; }

echo "systemd $(systemctl --version | awk 'NR == 1 { print $2 }') is PID 1: $(cat /proc/1/comm)"
touch /home/pkgtest-marker /tmp/pkgtest-marker
for u in balancer-cache-node balancer; do
  check "$u.service active after boot (enabled by the package, started by systemd)" test "$(systemctl is-active $u)" = active
  pid=$(prop $u MainPID)
  echo "$u: MainPID $pid: $(ps -o user=,args= -p "$pid")"
  check "$u runs as user balancer" test "$(ps -o user= -p "$pid")" = balancer
  echo "$u: $(journal $u | grep -m1 'wait-ready:')"
  check "$u: readiness check (ExecStartPost) passed under the sandbox" grep -q 'is ready' <<<"$(journal $u)"
  check "$u: the listening line is in the journal" grep -q '"event":"listening"' <<<"$(journal $u)"
  st=$(grep -E '^(NoNewPrivs|Seccomp|CapEff|CapBnd):' /proc/$pid/status | tr -s '\t\n' '  ')
  echo "$u: /proc/$pid/status: $st"
  check "$u: NoNewPrivs 1, seccomp filter on, capabilities = CAP_NET_BIND_SERVICE only" \
    grep -Eq 'NoNewPrivs: 1 Seccomp: 2 .*CapEff: 0000000000000400 CapBnd: 0000000000000400|CapEff: 0000000000000400 CapBnd: 0000000000000400 NoNewPrivs: 1 Seccomp: 2' <<<"$st"
  nofile=$(awk '/Max open files/ { print $4 }' /proc/$pid/limits)
  hard1=$(awk '/Max open files/ { print $5 }' /proc/1/limits)
  if [[ $nofile != 524288 && $hard1 != unlimited && $hard1 -lt 524288 && $nofile == "$hard1" ]]; then
    echo "SKIP boot: $u: open files limit $nofile: LimitNOFILE=524288 is above the hard limit this machine gives the container ($hard1)"
  else
    check "$u: open files limit $nofile (LimitNOFILE=524288)" test "$nofile" = 524288
  fi
  data=$(prop $u WorkingDirectory)
  if nsenter -t "$pid" -m -- sh -c "! touch /etc/balancer/x /usr/x /var/x 2>/dev/null && ! test -e /home/pkgtest-marker && ! test -e /tmp/pkgtest-marker && touch $data/.w && rm $data/.w"; then
    pass "$u: in its mount namespace /etc, /usr, /var are read-only, /home and the host's /tmp hidden, $data writable"
  else
    fail "$u: sandbox file system (ProtectSystem=strict, ProtectHome, PrivateTmp, $data writable)"
  fi
done
check "cache node answers /health on 127.0.0.1:8081 → 200" test "$(health 8081)" = 200
check "balancer answers /health on 127.0.0.1:8090 → 200" test "$(health 8090)" = 200
cache_up() { health 8090 >/dev/null; grep -q '"state":"up"' /tmp/health.json; }
check "balancer sees the cache node up" wait_for 15 cache_up
echo "balancer /health: $(cat /tmp/health.json)"

# Reload: good, then a bad file (the reload fails visibly, the service keeps running).
pid=$(prop balancer MainPID)
check "systemctl reload balancer → 0" systemctl reload balancer
reloaded() { journal balancer | grep -q 'configuration reloaded'; }
check "balancer: 'configuration reloaded' in the journal" wait_for 5 reloaded
check "balancer: same MainPID after the reload" test "$(prop balancer MainPID)" = "$pid"
cpid=$(prop balancer-cache-node MainPID)
bad_level /etc/balancer/cache_node.json
if systemctl reload balancer-cache-node 2>/dev/null; then fail "reload with a bad cache_node.json should fail"; else pass "systemctl reload balancer-cache-node with a bad log.level fails"; fi
echo "journal: $(journal balancer-cache-node | grep -m1 'log.level')"
check "cache node: still active, same MainPID after the refused reload" \
  test "$(systemctl is-active balancer-cache-node) $(prop balancer-cache-node MainPID)" = "active $cpid"
# A bad file at start: exit 2, no restart loop.
systemctl restart balancer-cache-node 2>/dev/null && fail "restart with a bad config should fail" || pass "systemctl restart balancer-cache-node with a bad config fails"
sleep 5
check "cache node: failed with exit status 2 and not restarted (RestartPreventExitStatus=2; NRestarts $(prop balancer-cache-node NRestarts))" \
  test "$(systemctl is-active balancer-cache-node) $(prop balancer-cache-node ExecMainStatus) $(prop balancer-cache-node NRestarts)" = "failed 2 0"
good_level /etc/balancer/cache_node.json
systemctl reset-failed balancer-cache-node
check "cache node starts again once the file is fixed" systemctl start balancer-cache-node
# A crash: Restart=on-failure brings it back.
cpid=$(prop balancer-cache-node MainPID)
kill -KILL "$cpid"
restarted() { [[ $(systemctl is-active balancer-cache-node) == active && $(prop balancer-cache-node MainPID) != "$cpid" ]]; }
check "cache node killed with SIGKILL is restarted by systemd within 15 s" wait_for 15 restarted
echo "cache node: NRestarts $(prop balancer-cache-node NRestarts), MainPID $cpid → $(prop balancer-cache-node MainPID)"
check "cache node answers /health after the restart" test "$(health 8081)" = 200
# A hang: the node stopped as a whole (its watchdog thread too) pings systemd no more, and
# WatchdogSec (10 s) later systemd kills it (WatchdogSignal=SIGKILL) and restarts it.
check "balancer-cache-node.service: WatchdogUSec 10s, NotifyAccess main, Type notify" \
  test "$(prop balancer-cache-node WatchdogUSec) $(prop balancer-cache-node NotifyAccess) $(prop balancer-cache-node Type)" = "10s main notify"
cpid=$(prop balancer-cache-node MainPID)
stopped_at=$SECONDS
kill -STOP "$cpid"
check "cache node stopped with SIGSTOP is killed by systemd's watchdog and restarted within 25 s" wait_for 25 restarted
echo "cache node: SIGSTOP → a new main process after $((SECONDS - stopped_at)) s ($cpid → $(prop balancer-cache-node MainPID))"
check "journal: systemd's watchdog timeout for the stopped node" grep -qi 'watchdog timeout' <<<"$(journal balancer-cache-node)"
node_serves() { test "$(health 8081)" = 200; }
check "cache node answers /health after the watchdog restart" wait_for 10 node_serves
# Upgrade while running: the postinst try-restarts the running units (deb-systemd-invoke).
bpid=$(prop balancer MainPID) cpid=$(prop balancer-cache-node MainPID)
upgrade() { dpkg --force-confold -i /root/debs/balancer_*.deb /root/debs/balancer-cache-node_*.deb >/tmp/upgrade.log 2>&1; }
check "dpkg -i of the same packages while both run (postinst configure as an upgrade) → 0" upgrade
check "after the upgrade both units are active again with new main processes ($bpid → $(prop balancer MainPID), $cpid → $(prop balancer-cache-node MainPID))" \
  test "$(systemctl is-active balancer balancer-cache-node | sort -u)" = active -a "$(prop balancer MainPID)" != "$bpid" -a "$(prop balancer-cache-node MainPID)" != "$cpid"
# Stop: graceful drain, exit 0.
for u in balancer balancer-cache-node; do
  before=$(journal $u | grep -c ': stopped$')
  check "systemctl stop $u → 0" systemctl stop $u
  check "$u: inactive, main process exit status 0 after the drain" test "$(systemctl is-active $u) $(prop $u ExecMainStatus)" = "inactive 0"
  check "$u: the server logged its drain and 'stopped'" test "$(journal $u | grep -c ': stopped$')" -gt "$before"
done
echo "journal of balancer.service, last lines:"
journal balancer | tail -4
echo "pkgtest done"
EOF
  chmod 755 "$root/root/pkgtest-boot.sh"
  mkdir -p "$root/root/debs"
  cp "$balancer_deb" "$cache_deb" "$root/root/debs/"
  for m in dev/pts proc; do umount "$root/$m"; done
  start=$SECONDS
  timeout 300 systemd-nspawn -q -D "$root" --register=no --keep-unit --private-network --boot --console=pipe \
    </dev/null >"$work/boot-console.log" 2>&1 && rc=0 || rc=$?
  mount -t proc proc "$root/proc"
  mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
  echo "container ran $((SECONDS - start)) s (systemd-nspawn exit $rc)"
  if [[ -s $root/root/pkgtest-boot.log ]] && grep -q 'pkgtest done' "$root/root/pkgtest-boot.log"; then
    cat "$root/root/pkgtest-boot.log"
    count() { grep -c "^$1" "$root/root/pkgtest-boot.log" || true; }
    passed=$((passed + $(count PASS)))
    failed=$((failed + $(count FAIL)))
    skipped=$((skipped + $(count SKIP)))
  else
    [[ -f $root/root/pkgtest-boot.log ]] && cat "$root/root/pkgtest-boot.log"
    tail -30 "$work/boot-console.log"
    fail "boot: the in-container checks did not complete (console above; --no-boot skips this phase)"
  fi
  rm -rf "$root/etc/systemd/system/multi-user.target.wants/pkgtest.service" "$root/etc/systemd/system/pkgtest.service" "$root/root/debs"
fi

step "reinstall, remove, purge"
T=600 in_root env DEBIAN_FRONTEND=noninteractive sh -c "cd /tmp/debs && apt-get install -y --reinstall ./$b ./$c" \
  >"$work/reinstall.log" 2>&1 && rc=0 || rc=$?
check "apt-get install --reinstall (postinst configure as an upgrade) → 0" test "$rc" -eq 0
check "one statoverride per config file after the reinstall" \
  test "$(in_root dpkg-statoverride --list | grep -c /etc/balancer/)" -eq 5
T=600 in_root env DEBIAN_FRONTEND=noninteractive apt-get remove -y balancer balancer-cache-node >"$work/remove.log" 2>&1 && rc=0 || rc=$?
check "apt-get remove → 0" test "$rc" -eq 0
check "remove: binaries gone, /etc/balancer/balancer.json kept" test ! -e "$root/usr/bin/balancer" -a -f "$root/etc/balancer/balancer.json"
check "remove: units masked (/etc/systemd/system/balancer.service → $(readlink "$root/etc/systemd/system/balancer.service" || echo none))" \
  test "$(readlink "$root/etc/systemd/system/balancer.service")" = /dev/null
T=600 in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y balancer balancer-cache-node >"$work/purge.log" 2>&1 && rc=0 || rc=$?
check "apt-get purge → 0" test "$rc" -eq 0
grep -F 'kept /var/lib/balancer' "$work/purge.log" || true
check "purge: /etc/balancer gone" test ! -e "$root/etc/balancer"
check "purge: statoverrides gone" test -z "$(in_root dpkg-statoverride --list | grep /etc/balancer/ || true)"
check "purge: mask and enable links gone" test ! -e "$root/etc/systemd/system/balancer.service" \
  -a ! -e "$root/etc/systemd/system/multi-user.target.wants/balancer-cache-node.service"
check "purge: chunk store /var/cache/balancer-cache-node deleted" test ! -e "$root/var/cache/balancer-cache-node"
check "purge: account store /var/lib/balancer/api kept" test -s "$root/var/lib/balancer/api/data.mdb"
check "purge: system user balancer kept" in_root getent passwd balancer

echo
echo "package_test: $passed checks passed, $failed failed, $skipped skipped (limits of this machine, said above)"
[[ $failed -eq 0 ]]

#!/usr/bin/env python3
"""Checks src/'s include graph against the dependency rules (docs/architecture.md § Which
folder may include which; DESIGN.md, "Dependency rules").

Each folder of src/ is a library or a component; the rooms of a folder (src/F/room/, as
http/h1/ or balancer/sources/) are that folder: its row, its namespace. A file may include,
with "folder/...", only the folders its own folder's row of ALLOWED names; where a row names
single headers of a folder (a component's public header), only those. hls/ is a leaf on the standard library:
its <...> includes are standard headers only. Exits 1 and lists every include that breaks a
rule; `--self-test` first shows that a planted breach of each kind is found.

One namespace per folder: a file of src/F/ defines names only in namespace F (and namespaces
nested in it), so a qualified name says which folder declares it. A block of another
folder's namespace may only forward-declare (`class X;`).
"""
import os
import re
import sys
import tempfile

# folder -> what it may include: a folder name (all of it) or "folder/header.h" (only that).
# The shared libraries know no component; the balancer and the cache node never include each
# other (they talk HTTP); the API reaches admission through its own interface, not playlists.
ALLOWED = {
    "hls": {"hls"},
    "core": {"core"},
    "http": {"http", "core"},
    "stores": {"stores", "core"},
    "signing": {"signing", "core"},
    "cmcd": {"cmcd", "core", "http"},
    "admission": {"admission", "core", "stores"},
    "api": {"api", "core", "http", "stores", "signing"},
    "cache_node": {"cache_node", "core", "http", "stores", "signing", "hls", "cmcd"},
    "balancer": {"balancer", "core", "http", "signing", "hls", "cmcd", "admission/admission.h",
                 "api/api.h"},
    "audience": {"audience", "core", "http", "hls"},
}
# The rooms of the balancer and the cache node (docs/architecture.md § Which folder may include
# which): what a file of src/<F>/<room>/ may include of its own folder, as rooms ("F/<room>") or
# single headers. sources/ is origin's side and knows no viewer; caches/ knows only the nodes; viewers/
# answer viewers from sources/ and caches/, with the config and the counters of operator/ and
# the any-loop state; operator/ sees them all. The wiring at the top (balancer.h,
# balancer_loop.h, ...) may include any room.
ROOMS = {
    "balancer/sources": {"balancer/sources", "balancer/log_tag.h"},
    "balancer/caches": {"balancer/caches", "balancer/log_tag.h"},
    "balancer/viewers": {"balancer/viewers", "balancer/sources", "balancer/caches",
                         "balancer/operator/balancer_config.h",
                         "balancer/operator/balancer_metrics.h", "balancer/any_loop_state.h",
                         "balancer/log_tag.h"},
    "balancer/operator": {"balancer/operator", "balancer/sources", "balancer/viewers",
                          "balancer/caches", "balancer/balancer_loop.h", "balancer/log_tag.h"},
    # The cache node's: HTTP caching rules (pure), the store, fetching from origin and the
    # site, serving viewers; the config and wiring at the top.
    "cache_node/rules": {"cache_node/rules"},
    "cache_node/store": {"cache_node/store", "cache_node/log_tag.h"},
    "cache_node/fetching": {"cache_node/fetching", "cache_node/store", "cache_node/rules",
                            "cache_node/runtime_config.h", "cache_node/log_tag.h"},
    "cache_node/serving": {"cache_node/serving", "cache_node/fetching", "cache_node/store",
                           "cache_node/rules", "cache_node/cache_node.h",
                           "cache_node/runtime_config.h", "cache_node/log_tag.h"},
}
# Headers of a shared folder that some components must not reach: the cache node runs alone
# at the venue and links neither libpq nor hiredis.
FORBIDDEN = {
    "cache_node": {"stores/pg_client.h", "stores/redis_client.h"},
}
# External libraries a library folder must not include (its target does not link them): the
# core is libevent's core, RapidJSON and the system, never HTTP, TLS or a store.
FORBIDDEN_EXTERNAL = {
    "core": ("curl/", "nghttp2/", "openssl/", "event2/http", "event2/bufferevent", "lmdb",
             "hiredis/", "libpq"),
    "signing": ("curl/", "nghttp2/", "event2/http", "lmdb", "hiredis/", "libpq"),
    "stores": ("curl/", "nghttp2/", "event2/http"),
}
STANDARD = set(
    "algorithm any array atomic bit bitset cassert cctype cerrno cfloat charconv chrono cinttypes "
    "climits cmath compare concepts cstddef cstdint cstdio cstdlib cstring deque exception "
    "functional initializer_list iomanip ios iosfwd iostream istream iterator limits list locale "
    "map memory new numeric optional ostream queue random ranges ratio set span sstream stack "
    "stdexcept string string_view system_error tuple type_traits typeinfo unordered_map "
    "unordered_set utility variant vector".split())

NAMESPACE_OPEN = re.compile(r"^namespace ([\w:]+) \{(.*)$")
NAMESPACE_CLOSE = re.compile(r"^\}  // namespace")
FORWARD_ONLY = re.compile(r"^\s*((class|struct) \w+;)?\s*(//.*)?$")


def namespace_breaches(rel, folder, text):
    """Blocks of a namespace other than `folder` that declare more than forward declarations."""
    found = []
    depth = 0
    foreign = None  # (name, line) of the open block of another folder's namespace
    for number, line in enumerate(text.splitlines(), 1):
        opened = NAMESPACE_OPEN.match(line)
        if opened:
            name, rest = opened.group(1), opened.group(2).strip()
            if depth == 0 and name.split("::")[0] != folder:
                if rest.startswith("}"):
                    continue  # a one-line block: `namespace x { }`
                foreign = (name, number)
            depth += 1
            continue
        if NAMESPACE_CLOSE.match(line) or (foreign and line.startswith("}")):
            depth = max(0, depth - 1)
            if depth == 0:
                foreign = None
            continue
        if foreign and not FORWARD_ONLY.match(line):
            found.append(f"{rel}:{number}: declares in namespace {foreign[0]}, not {folder}: "
                         "one namespace per folder")
            foreign = None
    return found


QUOTED = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
ANGLED = re.compile(r'^\s*#\s*include\s+<([^>]+)>', re.M)


def breaches(src_dir):
    found = []
    for root, _dirs, files in os.walk(src_dir):
        for name in sorted(files):
            if not name.endswith((".h", ".cc")):
                continue
            path = os.path.join(root, name)
            parts = os.path.relpath(path, src_dir).split(os.sep)
            folder = parts[0]
            room = "/".join(parts[:2]) if len(parts) > 2 else None
            text = open(path, encoding="utf-8", errors="replace").read()
            rel = os.path.relpath(path, os.path.dirname(src_dir))
            if folder not in ALLOWED:
                found.append(f"{rel}: folder '{folder}' has no row in the include matrix")
                continue
            allowed = ALLOWED[folder]
            found.extend(namespace_breaches(rel, folder, text))
            for target in QUOTED.findall(text):
                dep = target.split("/")[0] if "/" in target else folder
                if target in FORBIDDEN.get(folder, ()):
                    found.append(f"{rel}: includes {target}, which {folder}/ must not use")
                elif dep not in allowed and target not in allowed:
                    found.append(f"{rel}: includes {target}: {folder}/ may include "
                                 f"{', '.join(sorted(allowed))}")
                elif room in ROOMS and target.startswith(folder + "/"):
                    pieces = target.split("/")
                    target_room = "/".join(pieces[:2]) if len(pieces) > 2 else None
                    if target_room != room and target_room not in ROOMS[room] and \
                            target not in ROOMS[room]:
                        found.append(f"{rel}: includes {target}: {room}/ may include of "
                                     f"{folder}/ {', '.join(sorted(ROOMS[room]))}")
            for target in ANGLED.findall(text):
                if target.startswith(FORBIDDEN_EXTERNAL.get(folder, ())):
                    found.append(f"{rel}: includes <{target}>, a library {folder}/ does not link")
            if folder == "hls":
                for target in ANGLED.findall(text):
                    if target not in STANDARD:
                        found.append(f"{rel}: includes <{target}>: hls/ uses the standard "
                                     "library only")
    return found


def self_test():
    planted = {
        "hls/a.cc": '#include "core/log.h"\n#include <event2/event.h>\n#include <string>\n',
        "balancer/b.cc": '#include "cache_node/serving/node_loop.h"\n#include "api/api.h"\n'
                         '#include "api/api_state.h"\n',
        "cache_node/c.cc": '#include "stores/pg_client.h"\n#include "core/log.h"\n',
        "cache_node/store/s.cc": '#include "cache_node/fetching/flights.h"\n'
                                 '#include "cache_node/store/chunk_store.h"\n',
        "balancer/sources/g.cc": '#include "balancer/viewers/playlist_mapper.h"\n'
                                 '#include "cache_node/serving/node_loop.h"\n'
                                 '#include "balancer/sources/source_cache.h"\n'
                                 '#include "balancer/log_tag.h"\n'
                                 'namespace balancer {\nint z;\n}  // namespace balancer\n',
        "balancer/viewers/h.cc": '#include "balancer/operator/balancer_config.h"\n'
                                 '#include "balancer/operator/web_pages.h"\n'
                                 '#include "balancer/balancer_loop.h"\n'
                                 '#include "balancer/sources/source_cache.h"\n',
        "core/d.cc": '#include "balancer/balancer.h"\n#include "http/tls/tls.h"\n'
                     '#include <curl/curl.h>\n#include <event2/event.h>\n',
        "newcomer/e.cc": '#include "core/log.h"\n',
        "http/f.h": 'namespace core {\nclass EventLoop;\n}  // namespace core\n'
                    'namespace common {\nint x;\n}  // namespace common\n'
                    'namespace http {\nnamespace detail {\nint y;\n}  // namespace detail\n'
                    '}  // namespace http\n',
    }
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        for rel, text in planted.items():
            os.makedirs(os.path.join(src, os.path.dirname(rel)), exist_ok=True)
            with open(os.path.join(src, rel), "w") as f:
                f.write(text)
        got = breaches(src)
    expected = ["hls/a.cc: includes core/log.h", "hls/a.cc: includes <event2/event.h>",
                "balancer/b.cc: includes cache_node/serving/node_loop.h",
                "balancer/b.cc: includes api/api_state.h", "cache_node/c.cc: includes stores/pg_client.h",
                "balancer/sources/g.cc: includes cache_node/serving/node_loop.h",
                "balancer/sources/g.cc: includes balancer/viewers/playlist_mapper.h",
                "balancer/viewers/h.cc: includes balancer/operator/web_pages.h",
                "balancer/viewers/h.cc: includes balancer/balancer_loop.h",
                "cache_node/store/s.cc: includes cache_node/fetching/flights.h",
                "core/d.cc: includes balancer/balancer.h", "core/d.cc: includes http/tls/tls.h",
                "core/d.cc: includes <curl/curl.h>", "newcomer/e.cc: folder 'newcomer'",
                "http/f.h:5: declares in namespace common"]
    missing = [e for e in expected if not any(line.startswith("src/" + e) for line in got)]
    if missing or len(got) != len(expected):
        print("check_includes.py self-test: expected each planted breach once; found:",
              *got, "missing:", *missing, sep="\n  ", file=sys.stderr)
        return False
    return True


def main():
    src_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    if "--self-test" in sys.argv and not self_test():
        return 1
    found = breaches(os.path.normpath(src_dir))
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

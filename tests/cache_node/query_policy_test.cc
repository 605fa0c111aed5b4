// The per-origin query policy as a pure function: request target + policy →
// cache key and origin target. Chunks ignore the query by default (a new query
// string is neither a new stored copy nor a new origin fetch), playlists keep it,
// and the balancer's run marker (brun) is kept whatever the policy.
#include <doctest/doctest.h>

#include "cache_node/cache_node.h"
#include "cache_node/rules/query_policy.h"
#include "cache_node/serving/chunk_request.h"

using namespace cache_node;

namespace {

struct Routed {
  std::string key;
  std::string origin_target;  // path + ("?" + kept query)
};

// What the node does with a verified, unsigned target.
Routed route(const std::string& target, const OriginQueryPolicy& policy = {}) {
  auto request = parse_chunk_request(target);
  REQUIRE(request.ok());
  request->kept_query = kept_query(request->query, policy_for_path(policy, request->origin_path));
  std::string origin = request->origin_path;
  if (!request->kept_query.empty()) origin += "?" + request->kept_query;
  return {request->cache_key(), origin};
}

QueryPolicy listed(std::vector<std::string> names) {
  return {QueryPolicy::Mode::listed, std::move(names)};
}

}  // namespace

TEST_CASE("query policy: by default a chunk's query is neither in its key nor sent to the origin") {
  Routed a = route("/o/demo/live/seg1.ts?session=1&x=2");
  Routed b = route("/o/demo/live/seg1.ts?session=999");
  Routed plain = route("/o/demo/live/seg1.ts");
  CHECK(a.key == "demo/live/seg1.ts");
  CHECK(a.key == b.key);
  CHECK(a.key == plain.key);
  CHECK(a.origin_target == "/live/seg1.ts");
  // Keys, init sections and anything that is not a playlist count as chunks.
  CHECK(route("/o/demo/live/key.bin?t=1").key == "demo/live/key.bin");
  CHECK(route("/o/demo/live/init.mp4?t=1").key == "demo/live/init.mp4");
  CHECK(route("/o/demo/live/part.m4s?t=1").origin_target == "/live/part.m4s");
}

TEST_CASE(
    "query policy: playlists keep every parameter by default (low-latency HLS asks with "
    "_HLS_msn)") {
  Routed r = route("/o/demo/live/index.m3u8?_HLS_msn=12&_HLS_part=1");
  CHECK(r.key == "demo/live/index.m3u8?_HLS_msn=12&_HLS_part=1");
  CHECK(r.origin_target == "/live/index.m3u8?_HLS_msn=12&_HLS_part=1");
  CHECK(route("/o/demo/dash/manifest.mpd?a=1").key == "demo/dash/manifest.mpd?a=1");
}

TEST_CASE("query policy: keep keeps all, a list keeps the named parameters in their order") {
  OriginQueryPolicy keep;
  keep.chunks = QueryPolicy{QueryPolicy::Mode::keep, {}};
  CHECK(route("/o/demo/a.ts?x=1&y=2", keep).key == "demo/a.ts?x=1&y=2");
  CHECK(route("/o/demo/a.ts?x=1&y=2", keep).origin_target == "/a.ts?x=1&y=2");

  OriginQueryPolicy some;
  some.chunks = listed({"token", "q"});
  Routed r = route("/o/demo/a.ts?session=7&q=hi&x=1&token=abc", some);
  CHECK(r.key == "demo/a.ts?q=hi&token=abc");
  CHECK(r.origin_target == "/a.ts?q=hi&token=abc");
  // A name is what precedes the first '=': "qq" is not "q", a bare "q" is.
  CHECK(route("/o/demo/a.ts?qq=1&q", some).key == "demo/a.ts?q");
  CHECK(route("/o/demo/a.ts?session=7", some).key == "demo/a.ts");

  OriginQueryPolicy playlists_ignored;
  playlists_ignored.playlists = QueryPolicy{QueryPolicy::Mode::ignore, {}};
  CHECK(route("/o/demo/index.m3u8?a=1", playlists_ignored).key == "demo/index.m3u8");
}

TEST_CASE(
    "query policy: the run marker brun is kept in every mode, so a restarted run is a new key") {
  Routed first_run = route("/o/demo/live/seg1.ts?brun=100&session=1");
  Routed second_run = route("/o/demo/live/seg1.ts?session=2&brun=200");
  CHECK(first_run.key == "demo/live/seg1.ts?brun=100");
  CHECK(second_run.key == "demo/live/seg1.ts?brun=200");
  CHECK(first_run.origin_target == "/live/seg1.ts?brun=100");
  OriginQueryPolicy some;
  some.chunks = listed({"token"});
  CHECK(route("/o/demo/a.ts?brun=5&token=t&z=1", some).key == "demo/a.ts?brun=5&token=t");
  // Only the exact name: brunx or xbrun are ordinary parameters.
  CHECK(route("/o/demo/a.ts?brunx=1&xbrun=2").key == "demo/a.ts");
}

TEST_CASE("query policy: empty parameters are dropped") {
  OriginQueryPolicy keep;
  keep.chunks = QueryPolicy{QueryPolicy::Mode::keep, {}};
  CHECK(kept_query("a=1&&b=2&", keep.chunks) == "a=1&b=2");
  CHECK(kept_query("", keep.chunks).empty());
  CHECK(kept_query("&&", OriginQueryPolicy{}.chunks).empty());
}

TEST_CASE(
    "query policy: config takes \"ignore\", \"keep\" or a list, per origin, for chunks and "
    "playlists") {
  const char* base =
      R"({"node_id":"n1","data_dir":"/tmp/x","origins":{"demo":{"url":"http://127.0.0.1:1"}},
                          "signing":{"required":false}})";
  auto load = [&](std::vector<std::string> overrides) {
    auto doc = core::ConfigDocument::parse("cache_node.json", base, overrides);
    REQUIRE(doc.ok());
    return load_cache_node_config(*doc);
  };
  auto defaults = load({});
  REQUIRE(defaults.ok());
  CHECK(defaults->origins.at("demo").query.chunks.mode == QueryPolicy::Mode::ignore);
  CHECK(defaults->origins.at("demo").query.playlists.mode == QueryPolicy::Mode::keep);
  CHECK(defaults->max_entries == 100000);
  CHECK(defaults->negative_max_entries == 10000);

  auto set =
      load({"origins.demo.query=keep", R"(origins.demo.playlist_query=["_HLS_msn","_HLS_part"])",
            "storage.max_entries=500", "negative_max_entries=20"});
  REQUIRE_MESSAGE(set.ok(), set.error().message);
  CHECK(set->origins.at("demo").query.chunks.mode == QueryPolicy::Mode::keep);
  CHECK(set->origins.at("demo").query.playlists.mode == QueryPolicy::Mode::listed);
  CHECK(set->origins.at("demo").query.playlists.names ==
        std::vector<std::string>{"_HLS_msn", "_HLS_part"});
  CHECK(set->max_entries == 500);
  CHECK(set->negative_max_entries == 20);

  auto bad_word = load({"origins.demo.query=drop"});
  REQUIRE_FALSE(bad_word.ok());
  CHECK(bad_word.error().message.find("origins.demo.query") != std::string::npos);
  CHECK_FALSE(load({R"(origins.demo.query=["a=b"])"}).ok());
  CHECK_FALSE(load({"origins.demo.query=3"}).ok());
  CHECK_FALSE(load({"origins.demo.quer=keep"}).ok());  // unknown keys under an origin are refused
  CHECK_FALSE(load({"storage.max_entries=0"}).ok());
}

TEST_CASE(
    "query policy: a part's part target (bpt) is read, and never in a key or an origin fetch") {
  OriginQueryPolicy keep;
  keep.chunks = {QueryPolicy::Mode::keep, {}};
  const Routed kept = route("/o/demo/live/seg3.1.m4s?bpt=250&x=1", keep);
  CHECK(kept.key == "demo/live/seg3.1.m4s?x=1");
  CHECK(kept.origin_target == "/live/seg3.1.m4s?x=1");
  CHECK(route("/o/demo/live/seg3.1.m4s?bpt=250", keep).key ==
        route("/o/demo/live/seg3.1.m4s", keep).key);
  OriginQueryPolicy named;
  named.chunks = listed({"bpt", "x"});
  CHECK(route("/o/demo/live/seg3.1.m4s?bpt=250&x=1", named).origin_target ==
        "/live/seg3.1.m4s?x=1");
  CHECK(part_target_ms("bpt=250") == std::optional<int64_t>(250));
  CHECK(part_target_ms("x=1&bpt=1000&brun=2") == std::optional<int64_t>(1000));
  CHECK_FALSE(part_target_ms("x=1"));
  CHECK_FALSE(part_target_ms("bpt="));
  CHECK_FALSE(part_target_ms("bpt=0"));
  CHECK_FALSE(part_target_ms("bpt=60001"));
  CHECK_FALSE(part_target_ms("bpt=-5"));
  CHECK_FALSE(part_target_ms("bpt=12a"));
  CHECK_FALSE(part_target_ms("bpt=99999999999999999999"));
  CHECK_FALSE(part_target_ms("xbpt=250"));
}

// The cache node's config: the freshness defaults (cache.*), their ranges and
// unknown keys, as --check-config sees them.
#include <doctest/doctest.h>

#include "cache_node/cache_node.h"

using namespace cache_node;

namespace {

const char* kMinimal =
    R"({"node_id":"n1","data_dir":"/tmp/x","origins":{"demo":{"url":"http://127.0.0.1:1"}},
                          "signing":{"required":false}})";

common::Result<CacheNodeConfig> load(std::vector<std::string> overrides) {
  auto doc = common::ConfigDocument::parse("cache_node.json", kMinimal, overrides);
  REQUIRE(doc.ok());
  return load_cache_node_config(*doc);
}

}  // namespace

TEST_CASE(
    "cache node config: freshness defaults treat segments as long-lived and playlists as short") {
  auto c = load({});
  REQUIRE(c.ok());
  CHECK(c->freshness.segment_s == 86400);
  CHECK(c->freshness.playlist_s == 1);
  CHECK(c->freshness.other_s == 60);
  CHECK(c->freshness.max_stale_if_error_s == 60);
  auto set = load({"cache.default_ttl_segment_s=600", "cache.default_ttl_playlist_s=0",
                   "cache.default_ttl_other_s=5", "cache.max_stale_if_error_s=0"});
  REQUIRE(set.ok());
  CHECK(set->freshness.segment_s == 600);
  CHECK(set->freshness.playlist_s == 0);
  CHECK(set->freshness.other_s == 5);
  CHECK(set->freshness.max_stale_if_error_s == 0);
}

TEST_CASE("cache node config: bad cache.* values and unknown keys name the key") {
  auto negative = load({"cache.default_ttl_playlist_s=-1"});
  REQUIRE_FALSE(negative.ok());
  CHECK(negative.error().message.find("cache.default_ttl_playlist_s") != std::string::npos);
  auto text = load({"cache.max_stale_if_error_s=\"long\""});
  REQUIRE_FALSE(text.ok());
  CHECK(text.error().message.find("cache.max_stale_if_error_s") != std::string::npos);
  auto unknown = load({"cache.default_ttl_s=5"});
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().message.find("cache.default_ttl_s") != std::string::npos);
}

TEST_CASE(
    "cache node config: site_nodes lists this node too, with http(s) URLs; prefetch keys are long "
    "enough") {
  auto none = load({});
  REQUIRE(none.ok());
  CHECK(none->site_nodes.empty());
  CHECK(none->prefetch_keys.empty());
  auto site = load({"site_nodes.n1.url=\"http://10.0.0.1:8081/\"",
                    "site_nodes.n2.url=\"http://10.0.0.2:8081\"", "site_owner_wait_ms=300"});
  REQUIRE(site.ok());
  CHECK(site->site_nodes.at("n1") == "http://10.0.0.1:8081");
  CHECK(site->site_owner_wait.count() == 300);
  auto without_self = load({"site_nodes.n2.url=\"http://10.0.0.2:8081\""});
  REQUIRE_FALSE(without_self.ok());
  CHECK(without_self.error().message.find("site_nodes") != std::string::npos);
  auto bad_url = load({"site_nodes.n1.url=\"10.0.0.1:8081\""});
  REQUIRE_FALSE(bad_url.ok());
  CHECK(bad_url.error().message.find("site_nodes.n1.url") != std::string::npos);
  auto short_key = load({"prefetch.keys=[\"short\"]"});
  REQUIRE_FALSE(short_key.ok());
  CHECK(short_key.error().message.find("prefetch.keys") != std::string::npos);
}

TEST_CASE(
    "cache node config: forward_request_headers takes header names, never ones that change the "
    "fetch") {
  auto none = load({});
  REQUIRE(none.ok());
  CHECK(none->origins.at("demo").forward_request_headers.empty());
  auto tracing = load({R"(origins.demo.forward_request_headers=["X-Request-Id","Req-Num"])"});
  REQUIRE(tracing.ok());
  CHECK(tracing->origins.at("demo").forward_request_headers ==
        std::vector<std::string>{"X-Request-Id", "Req-Num"});
  for (const char* bad : {R"(["Range"])", R"(["cookie"])", R"(["Authorization"])",
                          R"(["If-None-Match"])", R"(["Host"])", R"(["Bad Name"])", R"([""])"}) {
    CAPTURE(bad);
    auto refused = load({std::string("origins.demo.forward_request_headers=") + bad});
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message.find("forward_request_headers") != std::string::npos);
  }
}

// The cache node's config: the freshness defaults (cache.*), their ranges and
// unknown keys, as --check-config sees them.
#include <doctest/doctest.h>

#include "cache_node/cache_node.h"

using namespace cache_node;

namespace {

const char* kMinimal =
    R"({"node_id":"n1","data_dir":"/tmp/x","origins":{"demo":{"url":"http://127.0.0.1:1"}},
                          "signing":{"required":false}})";

core::Result<CacheNodeConfig> load(std::vector<std::string> overrides) {
  auto doc = core::ConfigDocument::parse("cache_node.json", kMinimal, overrides);
  REQUIRE(doc.ok());
  return load_cache_node_config(*doc);
}

// The configuration with `overrides`, which must load.
CacheNodeConfig load_ok(std::vector<std::string> overrides) {
  auto config = load(std::move(overrides));
  const std::string why = config.ok() ? std::string() : config.error().message;
  REQUIRE_MESSAGE(config.ok(), why);
  return std::move(config).value();
}

// Each setting, applied alone, is refused with a message naming its key.
void check_refused(const std::vector<std::pair<std::string, std::string>>& settings_and_keys) {
  for (const auto& [setting, key] : settings_and_keys) {
    auto config = load({setting});
    REQUIRE_FALSE_MESSAGE(config.ok(), setting);
    CHECK_MESSAGE(config.error().message.find(key) != std::string::npos, config.error().message);
  }
}

}  // namespace

TEST_CASE(
    "cache node config: freshness defaults treat segments as long-lived and playlists as short") {
  const CacheNodeConfig c = load_ok({});
  CHECK(c.freshness.segment_s == 86400);
  CHECK(c.freshness.playlist_s == 1);
  CHECK(c.freshness.other_s == 60);
  CHECK(c.freshness.max_stale_if_error_s == 60);
  const CacheNodeConfig set =
      load_ok({"cache.default_ttl_segment_s=600", "cache.default_ttl_playlist_s=0",
               "cache.default_ttl_other_s=5", "cache.max_stale_if_error_s=0"});
  CHECK(set.freshness.segment_s == 600);
  CHECK(set.freshness.playlist_s == 0);
  CHECK(set.freshness.other_s == 5);
  CHECK(set.freshness.max_stale_if_error_s == 0);
}

TEST_CASE("cache node config: bad cache.* values and unknown keys name the key") {
  check_refused({{"cache.default_ttl_playlist_s=-1", "cache.default_ttl_playlist_s"},
                 {"cache.max_stale_if_error_s=\"long\"", "cache.max_stale_if_error_s"},
                 {"cache.default_ttl_s=5", "cache.default_ttl_s"}});
}

TEST_CASE(
    "cache node config: site_nodes lists this node too, with http(s) URLs and a site key; prefetch "
    "keys are long enough") {
  const CacheNodeConfig none = load_ok({});
  CHECK(none.site_nodes.empty());
  CHECK(none.prefetch_keys.empty());
  const CacheNodeConfig site = load_ok(
      {"site_nodes.n1.url=\"http://10.0.0.1:8081/\"", "site_nodes.n2.url=\"http://10.0.0.2:8081\"",
       "site_owner_wait_ms=300", "site_key=\"the-site-key-0123456\""});
  CHECK(site.site_nodes.at("n1") == "http://10.0.0.1:8081");
  CHECK(site.site_owner_wait.count() == 300);
  CHECK(site.site_key == "the-site-key-0123456");
  // A site of one needs no key.
  CHECK(load_ok({"site_nodes.n1.url=\"http://10.0.0.1:8081/\""}).site_key.empty());
  check_refused({{"site_nodes.n2.url=\"http://10.0.0.2:8081\"", "site_nodes"},
                 {"site_nodes.n1.url=\"10.0.0.1:8081\"", "site_nodes.n1.url"},
                 {"prefetch.keys=[\"short\"]", "prefetch.keys"}});
}

TEST_CASE("cache node config: a site of several nodes needs a key of at least 16 characters") {
  const std::vector<std::string> two = {"site_nodes.n1.url=\"http://10.0.0.1:8081/\"",
                                        "site_nodes.n2.url=\"http://10.0.0.2:8081\""};
  for (const std::string& key : {std::string(), std::string("site_key=\"too-short\"")}) {
    std::vector<std::string> overrides = two;
    if (!key.empty()) overrides.push_back(key);
    auto config = load(overrides);
    REQUIRE_FALSE_MESSAGE(config.ok(), key);
    CHECK_MESSAGE(config.error().message.find("site_key") != std::string::npos,
                  config.error().message);
  }
}

TEST_CASE(
    "cache node config: forward_request_headers takes header names, never ones that change the "
    "fetch") {
  const CacheNodeConfig none = load_ok({});
  CHECK(none.origins.at("demo").forward_request_headers.empty());
  const CacheNodeConfig tracing =
      load_ok({R"(origins.demo.forward_request_headers=["X-Request-Id","Req-Num"])"});
  CHECK(tracing.origins.at("demo").forward_request_headers ==
        std::vector<std::string>{"X-Request-Id", "Req-Num"});
  for (const char* bad : {R"(["Range"])", R"(["cookie"])", R"(["Authorization"])",
                          R"(["If-None-Match"])", R"(["Host"])", R"(["Bad Name"])", R"([""])"}) {
    CAPTURE(bad);
    auto refused = load({std::string("origins.demo.forward_request_headers=") + bad});
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message.find("forward_request_headers") != std::string::npos);
  }
}

TEST_CASE("cache node config: an origin's twin is another configured origin") {
  const CacheNodeConfig c =
      load_ok({"origins.backup.url=\"http://127.0.0.1:2\"", "origins.demo.twin=\"backup\""});
  CHECK(c.origins.at("demo").twin == "backup");
  CHECK(c.origins.at("backup").twin.empty());
  check_refused({{"origins.demo.twin=\"nope\"", "names twin 'nope', which is not an origin"},
                 {"origins.demo.twin=\"demo\"", "origins.demo.twin"},
                 {"origins.demo.twin=3", "origins.demo.twin"}});
}

TEST_CASE(
    "cache node config: overload.connection_table_percent is 90 by default, 1 to 100, the key "
    "named") {
  CHECK(load_ok({}).overload_connection_table_percent == 90);
  CHECK(load_ok({"overload.connection_table_percent=75"}).overload_connection_table_percent == 75);
  CHECK(load_ok({"overload.connection_table_percent=100"}).overload_connection_table_percent ==
        100);
  check_refused({{"overload.connection_table_percent=0", "overload.connection_table_percent"},
                 {"overload.connection_table_percent=101", "overload.connection_table_percent"}});
}

TEST_CASE("cache node config: the operator key and the channels stalls are labelled with") {
  const CacheNodeConfig defaults = load_ok({});
  CHECK(defaults.operator_key.empty());
  CHECK(defaults.operator_allow_loopback);
  CHECK(defaults.playback_channels.empty());
  const CacheNodeConfig set =
      load_ok({"operator.key=\"operator-key-of-node-1\"", "operator.allow_loopback=false",
               "playback.channels=[\"demo\",\"gold_2\"]"});
  CHECK(set.operator_key == "operator-key-of-node-1");
  CHECK_FALSE(set.operator_allow_loopback);
  CHECK(set.playback_channels == std::vector<std::string>{"demo", "gold_2"});
  check_refused({{"operator.key=\"short\"", "operator.key"},
                 {"playback.channels=[\"a b\"]", "playback.channels"},
                 {"playback.channels=[\"\"]", "playback.channels"},
                 {"playback.labels=1", "playback.labels"}});
}

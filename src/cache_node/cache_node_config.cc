#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "cache_node/cache_node.h"
#include "cmcd/quality_meter.h"
#include "http/server/operator_access.h"
#include "http/server/server_config.h"

namespace cache_node {
namespace {

std::string trim_slash(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

// "ignore", "keep" or a list of parameter names; absent: `policy` stays.
void read_query_policy(core::ConfigReader& origin, const char* key, QueryPolicy& policy) {
  auto value = origin.string_or_list(key);
  if (!value) return;
  if (!value->is_list) {
    std::string problem;
    if (!parse_query_mode(value->text, policy, problem)) origin.fail(key, problem);
    return;
  }
  for (const auto& name : value->list) {
    if (name.empty() || name.find_first_of("=&?#") != std::string::npos) {
      return origin.fail(key, "parameter names must be non-empty and contain none of = & ? #");
    }
  }
  policy = QueryPolicy{QueryPolicy::Mode::listed, value->list};
}

// Request headers an origin may be sent from the viewer's request: names only (tokens), at
// most 16, and none that would change what is fetched or whose it is (the copy is shared).
void read_forwarded_headers(core::ConfigReader& origin, std::vector<std::string>& out) {
  static constexpr std::string_view kRefused[] = {"host",
                                                  "connection",
                                                  "keep-alive",
                                                  "proxy-connection",
                                                  "te",
                                                  "trailer",
                                                  "transfer-encoding",
                                                  "upgrade",
                                                  "content-length",
                                                  "range",
                                                  "if-range",
                                                  "if-match",
                                                  "if-none-match",
                                                  "if-modified-since",
                                                  "if-unmodified-since",
                                                  "cookie",
                                                  "authorization",
                                                  "proxy-authorization",
                                                  "accept-encoding"};
  out = origin.string_list("forward_request_headers", {});
  if (out.size() > 16) origin.fail("forward_request_headers", "at most 16 names");
  for (const auto& name : out) {
    bool token = !name.empty() && name.size() <= 64;
    std::string lower;
    for (char ch : name) {
      token = token && (isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_');
      lower += static_cast<char>(tolower(static_cast<unsigned char>(ch)));
    }
    if (!token)
      return origin.fail("forward_request_headers", "'" + name + "' is not a header name");
    for (std::string_view refused : kRefused) {
      if (lower == refused) {
        return origin.fail(
            "forward_request_headers",
            "'" + name + "' changes what is fetched or whose it is; it is never forwarded");
      }
    }
  }
}

// One member of "origins", named `id`.
OriginConfig read_origin(const std::string& id, core::ConfigReader& origin) {
  OriginConfig o;
  o.url = trim_slash(origin.required_string("url"));
  if (!o.url.empty() && o.url.rfind("http://", 0) != 0 && o.url.rfind("https://", 0) != 0) {
    origin.fail("url", "must start with http:// or https://");
  }
  bool id_ok = !id.empty() && id.size() <= 64;
  for (char ch : id)
    id_ok = id_ok && (isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_');
  if (!id_ok)
    origin.fail("url", "origin id '" + id + "' must be 1 to 64 letters, digits, '-' or '_'");
  read_query_policy(origin, "query", o.query.chunks);
  read_query_policy(origin, "playlist_query", o.query.playlists);
  read_forwarded_headers(origin, o.forward_request_headers);
  o.twin = origin.string("twin", "");
  if (o.twin == id) origin.fail("twin", "an origin is not its own twin");
  origin.finish();
  return o;
}

// "parent", "site_nodes" (which must list this node), "site_key" and "site_owner_wait_ms".
void read_site(core::ConfigReader& root, CacheNodeConfig& c) {
  if (auto parent = root.optional_string("parent")) {
    if (parent->rfind("http://", 0) != 0 && parent->rfind("https://", 0) != 0) {
      root.fail("parent", "must be a URL starting with http:// or https://");
    }
    c.parent = trim_slash(*parent);
  }
  root.each_member("site_nodes", [&](const std::string& id, core::ConfigReader& node) {
    std::string url = trim_slash(node.required_string("url"));
    if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
      node.fail("url", "must start with http:// or https://");
    }
    node.finish();
    c.site_nodes[id] = url;
  });
  if (!c.site_nodes.empty() && !c.node_id.empty() && c.site_nodes.count(c.node_id) == 0) {
    root.fail("site_nodes", "must list this node ('" + c.node_id +
                                "') too: every node of a site reads the same list");
  }
  c.site_key = root.string("site_key", "");
  if (c.site_nodes.size() > 1 && c.site_key.size() < 16) {
    root.fail("site_key",
              "at least 16 characters are required when site_nodes lists other nodes: the nodes "
              "of a site prove their requests to each other with it (the same key on each)");
  }
  c.site_owner_wait =
      std::chrono::milliseconds(root.integer("site_owner_wait_ms", 1000, 10, 60000));
}

void read_prefetch_section(core::ConfigReader& root, CacheNodeConfig& c) {
  auto prefetch = root.object("prefetch");
  c.prefetch_keys = prefetch.string_list("keys", {});
  for (const auto& k : c.prefetch_keys) {
    if (k.size() < 16) prefetch.fail("keys", "every key must be at least 16 characters");
  }
  c.prefetch_max_inflight = static_cast<size_t>(prefetch.integer("max_inflight", 64, 1, 100000));
  c.prefetch_max_per_s = prefetch.number("max_per_s", 200, 0.1, 1e6);
  c.prefetch_next_object = prefetch.boolean("next_object", true);
  prefetch.finish();
}

void read_signing_section(core::ConfigReader& root, CacheNodeConfig& c) {
  auto signing = root.object("signing");
  c.signing_required = signing.boolean("required", true);
  c.signing_keys = signing.string_list("keys", {});
  for (const auto& k : c.signing_keys) {
    if (k.size() < 16) signing.fail("keys", "every key must be at least 16 characters");
  }
  if (c.signing_required && c.signing_keys.empty()) {
    signing.fail("keys", "at least one key is required when signing.required is true");
  }
  signing.finish();
}

void read_storage_section(core::ConfigReader& root, CacheNodeConfig& c) {
  auto storage = root.object("storage");
  c.memory_bytes =
      static_cast<uint64_t>(storage.number("memory_mb", 256, 0.01, 1 << 20) * (1 << 20));
  c.disk_bytes = static_cast<uint64_t>(storage.number("disk_mb", 4096, 0.01, 1 << 30) * (1 << 20));
  c.max_object_bytes =
      static_cast<uint64_t>(storage.number("max_object_mb", 64, 0.01, 4096) * (1 << 20));
  c.max_entries = static_cast<size_t>(storage.integer("max_entries", 100000, 1, 100000000));
  storage.finish();
}

void read_cache_section(core::ConfigReader& root, CacheNodeConfig& c) {
  constexpr int64_t kYear = 366 * 86400;
  auto cache = root.object("cache");
  c.freshness.segment_s = cache.integer("default_ttl_segment_s", 86400, 0, 10 * kYear);
  c.freshness.playlist_s = cache.integer("default_ttl_playlist_s", 1, 0, 10 * kYear);
  c.freshness.other_s = cache.integer("default_ttl_other_s", 60, 0, 10 * kYear);
  c.freshness.max_stale_if_error_s = cache.integer("max_stale_if_error_s", 60, 0, kYear);
  c.freshness.max_stale_while_revalidate_s =
      cache.integer("max_stale_while_revalidate_s", 60, 0, kYear);
  c.freshness.refresh_grace_ms =
      cache.integer("refresh_grace_ms", kDefaultRefreshGraceMs, 0, 3600 * 1000);
  c.keep_warm = std::chrono::seconds(cache.integer("keep_warm_s", 30, 0, 3600));
  cache.finish();
}

void read_upstream_section(core::ConfigReader& root, CacheNodeConfig& c) {
  auto upstream = root.object("upstream");
  c.upstream_connect_timeout =
      std::chrono::milliseconds(upstream.integer("connect_timeout_ms", 2000, 1, 60000));
  c.upstream_timeout =
      std::chrono::milliseconds(upstream.integer("timeout_ms", 30000, 1, 3600 * 1000));
  c.upstream_http2 = upstream.boolean("http2", true);
  c.upstream_ca_file = upstream.string("ca_file", "");
  if (!c.upstream_ca_file.empty() && access(c.upstream_ca_file.c_str(), R_OK) != 0) {
    upstream.fail("ca_file", "cannot read '" + c.upstream_ca_file + "'");
  }
  upstream.finish();
}

void read_overload_section(core::ConfigReader& root, CacheNodeConfig& c) {
  auto overload = root.object("overload");
  c.overload_max_connections =
      static_cast<uint32_t>(overload.integer("max_connections", 10000, 1, 10000000));
  c.overload_max_egress_mbps = overload.number("max_egress_mbps", 10000, 0.001, 1e7);
  c.overload_connection_table_percent =
      static_cast<uint32_t>(overload.integer("connection_table_percent", 90, 1, 100));
  overload.finish();
}

// operator.* (who may read /playback) and playback.* (the channel labels of its stalls).
void read_operator_and_playback(core::ConfigReader& root, CacheNodeConfig& c) {
  http::read_operator_section(root, c.operator_key, c.operator_allow_loopback);
  auto playback = root.object("playback");
  c.playback_channels = playback.string_list("channels", {});
  if (c.playback_channels.size() > cmcd::QualityMeter::kMaxChannelLabels)
    playback.fail("channels", "at most 1000 channels");
  for (const std::string& id : c.playback_channels) {
    const bool plain =
        !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char ch) {
          return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_';
        });
    if (!plain) playback.fail("channels", "'" + id + "' is not a channel id ([A-Za-z0-9_-]{1,64})");
  }
  playback.finish();
}

}  // namespace

core::Result<CacheNodeConfig> load_cache_node_config(const core::ConfigDocument& doc) {
  core::ConfigReader root(doc);
  CacheNodeConfig c;
  c.node_id = root.required_string("node_id");
  c.site = root.string("site", "default");
  {
    auto listen = root.object("listen");
    http::read_listen_section(listen, doc.file(), 8081, /*http2_capable=*/true, c.server);
  }
  c.data_dir = root.required_string("data_dir");
  root.each_member("origins", [&](const std::string& id, core::ConfigReader& origin) {
    c.origins[id] = read_origin(id, origin);
  });
  if (c.origins.empty()) root.fail("origins", "at least one origin is required");
  for (const auto& [id, origin] : c.origins) {
    if (!origin.twin.empty() && !c.origins.count(origin.twin)) {
      root.fail("origins",
                "origin '" + id + "' names twin '" + origin.twin + "', which is not an origin");
    }
  }
  read_site(root, c);
  read_prefetch_section(root, c);
  read_signing_section(root, c);
  read_storage_section(root, c);
  c.negative_ttl = std::chrono::milliseconds(root.integer("negative_ttl_ms", 2000, 0, 3600 * 1000));
  c.negative_max_entries =
      static_cast<size_t>(root.integer("negative_max_entries", 10000, 0, 10000000));
  read_cache_section(root, c);
  read_upstream_section(root, c);
  read_overload_section(root, c);
  read_operator_and_playback(root, c);
  http::read_server_sections(root, c.server, c.log_level, c.cors);
  c.server.service = "cache_node";
  root.finish();
  if (!root.ok()) return core::Error{"bad_config", root.error_text()};
  return c;
}

}  // namespace cache_node

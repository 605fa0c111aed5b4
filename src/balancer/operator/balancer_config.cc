// Reading and validating the balancer's three config files.
#include <algorithm>
#include <filesystem>
#include <set>

#include "balancer/operator/balancer_config.h"
#include "core/log.h"
#include "http/server/operator_access.h"
#include "http/server/server_config.h"
#include "signing/playback_ticket.h"

namespace balancer {
namespace {

std::string trim_slash(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

bool is_http_url(const std::string& url) {
  return (url.rfind("http://", 0) == 0 && url.size() > 7) ||
         (url.rfind("https://", 0) == 0 && url.size() > 8);
}

// A source path on an origin: "/a/b.m3u8[?query]", no fragment, no dot segments.
std::string check_source_path(const std::string& source) {
  if (source.empty() || source.front() != '/') return "must be a path starting with '/'";
  if (source.rfind("//", 0) == 0) return "must be a path on the origin, not a URL";
  for (char c : source) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '#' || c == '\\') {
      return "must not contain spaces, control characters, '#' or '\\'";
    }
  }
  std::string path = source.substr(0, source.find('?'));
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string seg = path.substr(start, end - start);
    if (seg == "." || seg == "..") return "must not contain '.' or '..' segments";
    start = end + 1;
  }
  if (path.size() < 2 || path.back() == '/') return "must name a playlist file, not a directory";
  return "";
}

std::chrono::milliseconds ms(int64_t v) {
  return std::chrono::milliseconds(v);
}
std::chrono::milliseconds seconds_as_ms(double s) {
  return std::chrono::milliseconds(static_cast<int64_t>(s * 1000));
}
Duration seconds_as_duration(double s) {
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
}

// limits.* and queue.* (docs/admission.md); cross-key rules come from
// validate_admission_limits, whose message starts with the key it is about.
void read_admission(core::ConfigReader& root, AdmissionLimits& a, std::vector<core::Cidr>& exempt) {
  const AdmissionLimits defaults;
  auto seconds_of = [](Duration d) { return std::chrono::duration<double>(d).count(); };
  {
    auto l = root.object("limits");
    a.max_streams = static_cast<uint32_t>(l.integer("max_streams", 0, 0, 100'000'000));
    a.max_traffic_mbps = l.number("max_traffic_mbps", 0, 0, 1e9);
    a.idle_timeout = seconds_as_duration(
        l.number("idle_timeout_s", seconds_of(defaults.idle_timeout), 0, 86400));
    a.max_anonymous_per_address = static_cast<uint32_t>(
        l.integer("max_anonymous_per_address", defaults.max_anonymous_per_address, 0, 100'000'000));
    a.max_entries =
        static_cast<uint32_t>(l.integer("max_entries", defaults.max_entries, 0, 100'000'000));
    a.max_streams_per_account = static_cast<uint32_t>(
        l.integer("max_streams_per_account", defaults.max_streams_per_account, 0, 100'000'000));
    for (const auto& text : l.string_list("per_address_exempt", {})) {
      auto cidr = core::Cidr::parse(text);
      if (!cidr) {
        l.fail("per_address_exempt",
               "'" + text + "' is not a network (e.g. 10.0.0.0/8 or 2001:db8::/32)");
      } else {
        exempt.push_back(*cidr);
      }
    }
    l.finish();
  }
  {
    auto q = root.object("queue");
    a.ticket_grace = seconds_as_duration(
        q.number("ticket_grace_s", seconds_of(defaults.ticket_grace), 0, 86400));
    a.head_reservation = seconds_as_duration(
        q.number("head_reservation_s", seconds_of(defaults.head_reservation), 0, 86400));
    a.retry_after =
        seconds_as_duration(q.number("retry_after_s", seconds_of(defaults.retry_after), 0, 3600));
    a.max_tickets_per_address = static_cast<uint32_t>(
        q.integer("max_tickets_per_address", defaults.max_tickets_per_address, 0, 100'000'000));
    q.finish();
  }
  if (auto problem = validate_admission_limits(a)) {
    const size_t space = problem->find(' ');
    const std::string key = problem->substr(0, space);
    root.fail(key.c_str(), space == std::string::npos ? *problem : problem->substr(space + 1));
  }
}

// admission.backend and admission.redis.* (docs/admission.md, "Several balancers").
void read_admission_backend(core::ConfigReader& root, BalancerConfig& c) {
  auto a = root.object("admission");
  c.admission_backend =
      a.choice<std::string>("backend", "local",
                            {{"local", "local", "this balancer alone"},
                             {"redis", "redis", "several balancers share admission"}});
  auto r = a.object("redis");
  RedisAdmissionOptions& o = c.admission_redis;
  o.host = r.string("host", o.host);
  if (o.host.empty() || o.host.find_first_of(" /\t") != std::string::npos)
    r.fail("host", "must be a host name or IP address");
  o.port = static_cast<uint16_t>(r.integer("port", o.port, 1, 65535));
  o.password = r.string("password", "");
  o.prefix = r.string("prefix", o.prefix);
  if (o.prefix.empty() || o.prefix.size() > 64 ||
      o.prefix.find_first_of("{}\r\n ") != std::string::npos) {
    r.fail("prefix", "must be 1 to 64 characters without spaces or braces");
  }
  o.timeout = ms(r.integer("timeout_ms", o.timeout.count(), 10, 60000));
  o.heartbeat_interval = ms(r.integer("heartbeat_ms", o.heartbeat_interval.count(), 100, 60000));
  if (c.admission_backend == "redis" && o.heartbeat_interval * 2 > c.admission.idle_timeout) {
    r.fail(
        "heartbeat_ms",
        "must be at most half of limits.idle_timeout_s, or admitted viewers' slots expire in Redis "
        "between two heartbeats");
  }
  r.finish();
  a.finish();
}

// A file named in the main config, relative to the main config's directory unless absolute.
std::string resolve_relative(const std::filesystem::path& dir, const std::string& file) {
  if (file.empty() || std::filesystem::path(file).is_absolute()) return file;
  return (dir / file).lexically_normal().string();
}

// public_url, channels_file, caches_file.
void read_urls_and_files(core::ConfigReader& root, const std::filesystem::path& dir,
                         BalancerConfig& c) {
  c.public_url = trim_slash(root.string("public_url", ""));
  if (!c.public_url.empty() && !is_http_url(c.public_url)) {
    root.fail("public_url", "must be empty or a URL starting with http:// or https://");
  }
  c.channels_file = resolve_relative(dir, root.required_string("channels_file"));
  c.caches_file = resolve_relative(dir, root.required_string("caches_file"));
}

void read_origins(core::ConfigReader& root, BalancerConfig& c) {
  root.each_member("origins", [&](const std::string& id, core::ConfigReader& origin) {
    OriginConfig o;
    o.url = trim_slash(origin.required_string("url"));
    if (!o.url.empty() && !is_http_url(o.url))
      origin.fail("url", "must start with http:// or https://");
    if (o.url.find('?') != std::string::npos || o.url.find('#') != std::string::npos) {
      origin.fail("url", "must be a base URL without query or fragment");
    }
    if (!signing::valid_channel_id(id)) {
      origin.fail("url",
                  "origin id '" + id + "' may only use letters, digits, '-' and '_' (1 to 64)");
    }
    c.origins[id] = o;
  });
  if (c.origins.empty()) root.fail("origins", "at least one origin is required");
}

// signing.* (the keys chunk URLs are signed with) and playback.* (viewers' playback tickets).
void read_signing_and_playback(core::ConfigReader& root, BalancerConfig& c) {
  {
    auto signing = root.object("signing");
    c.signing_keys = signing.string_list("keys", {});
    if (c.signing_keys.empty())
      signing.fail("keys", "at least one key is required (the cache nodes' keys)");
    for (const auto& k : c.signing_keys) {
      if (k.size() < 16) signing.fail("keys", "every key must be at least 16 characters");
    }
    c.chunk_url_lifetime =
        std::chrono::seconds(signing.integer("chunk_url_lifetime_s", 120, 10, 86400));
    signing.finish();
  }
  {
    auto playback = root.object("playback");
    c.ticket_keys = playback.string_list("ticket_keys", {});
    if (c.ticket_keys.empty()) playback.fail("ticket_keys", "at least one key is required");
    for (const auto& k : c.ticket_keys) {
      if (k.size() < 16) playback.fail("ticket_keys", "every key must be at least 16 characters");
    }
    c.allow_anonymous = playback.boolean("allow_anonymous", false);
    playback.finish();
  }
}

void read_playlists(core::ConfigReader& root, PlaylistTimings& t) {
  auto p = root.object("playlists");
  t.master_ttl = ms(p.integer("master_ttl_ms", 5000, 0, 3600 * 1000));
  t.vod_ttl = seconds_as_ms(p.number("vod_ttl_s", 300, 0, 86400));
  t.live_max_lag = ms(p.integer("live_max_lag_ms", 500, 0, 500));
  t.live_refresh = ms(p.integer("live_refresh_ms", 250, 20, 60000));
  t.live_idle = seconds_as_ms(p.number("live_idle_s", 10, 0.1, 3600));
  t.live_end_confirm = seconds_as_ms(p.number("live_end_confirm_s", 300, 0, 86400));
  t.master_stale = seconds_as_ms(p.number("master_stale_s", 30, 0, 86400));
  t.media_stale = seconds_as_ms(p.number("media_stale_s", 60, 0, 3600));
  t.fetch_timeout = ms(p.integer("fetch_timeout_ms", 3000, 100, 600000));
  t.blocking_timeout = ms(p.integer("blocking_timeout_ms", 15000, 100, 600000));
  t.error_hold = ms(p.integer("error_hold_ms", 250, 0, 60000));
  t.evict_after = seconds_as_ms(p.number("evict_after_s", 60, 1, 86400));
  t.max_bytes = static_cast<size_t>(p.integer("max_bytes", 4 << 20, 1024, 64 << 20));
  t.max_entries = static_cast<size_t>(p.integer("max_entries", 10000, 16, 10000000));
  t.max_directive_entries = static_cast<size_t>(p.integer("max_directive_entries", 256, 1, 100000));
  t.max_segments = static_cast<size_t>(p.integer("max_segments", 6000, 16, 1000000));
  t.max_master_entries = static_cast<size_t>(p.integer("max_master_entries", 500, 16, 1000000));
  t.max_unsent_bytes =
      static_cast<size_t>(p.integer("max_unsent_bytes", 256 << 20, 65536, int64_t{1} << 40));
  t.max_blocking_per_viewer =
      static_cast<size_t>(p.integer("max_blocking_per_viewer", 64, 1, 100000));
  t.max_unsent_bytes_per_address = static_cast<size_t>(
      p.integer("max_unsent_bytes_per_address", 16 << 20, 65536, int64_t{1} << 40));
  if (t.live_refresh >= t.live_max_lag && t.live_max_lag.count() > 0) {
    p.fail("live_refresh_ms",
           "must be below live_max_lag_ms, or viewers would wait for every refresh");
  }
  p.finish();
}

// key_delivery.*, health.* (cache node probes) and upstream.* (fetches to origins and caches).
void read_keys_health_upstream(core::ConfigReader& root, BalancerConfig& c) {
  {
    auto k = root.object("key_delivery");
    c.key_ttl = seconds_as_ms(k.number("ttl_s", 30, 0, 86400));
    c.key_max_bytes = static_cast<size_t>(k.integer("max_bytes", 65536, 16, 1 << 20));
    k.finish();
  }
  {
    auto h = root.object("health");
    c.health.interval = ms(h.integer("interval_ms", 1000, 50, 600000));
    c.health.timeout = ms(h.integer("timeout_ms", 500, 10, 600000));
    c.health.up_after = static_cast<int>(h.integer("up_after", 2, 1, 100));
    c.health.down_after = static_cast<int>(h.integer("down_after", 2, 1, 100));
    if (c.health.timeout > c.health.interval) h.fail("timeout_ms", "must not exceed interval_ms");
    h.finish();
  }
  {
    auto u = root.object("upstream");
    c.upstream_connect_timeout = ms(u.integer("connect_timeout_ms", 2000, 1, 60000));
    c.upstream_http2 = u.boolean("http2", true);
    u.finish();
  }
}

// operator.* and api.* (products_file relative to the main config).
void read_operator_and_api(core::ConfigReader& root, const std::filesystem::path& dir,
                           BalancerConfig& c) {
  http::read_operator_section(root, c.operator_key, c.operator_allow_loopback);
  auto a = root.object("api");
  api::read_api_section(a, c.api);
  c.api.products_file = resolve_relative(dir, c.api.products_file);
}

// steering.* (content steering manifests) and web.* (the viewer pages' directory).
void read_steering_and_web(core::ConfigReader& root, const std::filesystem::path& dir,
                           BalancerConfig& c) {
  {
    auto steering = root.object("steering");
    c.steering_enabled = steering.boolean("enabled", true);
    c.steering_ttl_s = static_cast<int>(steering.integer("ttl_s", 30, 1, 300));
    c.steering_media_masters = steering.boolean("media_masters", true);
    steering.finish();
  }
  auto web = root.object("web");
  c.web_dir = resolve_relative(dir, web.string("dir", ""));
  if (!c.web_dir.empty() && !std::filesystem::is_directory(c.web_dir)) {
    web.fail("dir", c.web_dir + " is not a directory");
  }
  web.finish();
}

// prefetch.*: asking cache nodes to fetch new live segments (prefetch_client.h).
void read_prefetch(core::ConfigReader& root, BalancerConfig& c) {
  auto p = root.object("prefetch");
  c.prefetch.key = p.string("key", "");
  if (!c.prefetch.key.empty() && c.prefetch.key.size() < 16)
    p.fail("key", "must be at least 16 characters");
  c.prefetch.max_per_s = p.number("max_per_s", c.prefetch.max_per_s, 0.1, 1e5);
  c.prefetch.max_queue = static_cast<size_t>(
      p.integer("max_queue", static_cast<int64_t>(c.prefetch.max_queue), 1, 100000));
  c.prefetch.max_inflight = static_cast<size_t>(
      p.integer("max_inflight", static_cast<int64_t>(c.prefetch.max_inflight), 1, 1000));
  c.prefetch.timeout =
      std::chrono::milliseconds(p.integer("timeout_ms", c.prefetch.timeout.count(), 10, 60000));
  p.finish();
}

}  // namespace

const ChannelConfig* BalancerConfig::find_channel(const std::string& id) const {
  for (const auto& ch : channels) {
    if (ch.id == id) return &ch;
  }
  return nullptr;
}

// Sections are read in this order, which is the order their errors are listed in.
core::Result<BalancerConfig> read_main_config(const core::ConfigDocument& doc) {
  core::ConfigReader root(doc);
  BalancerConfig c;
  c.main_file = doc.file();
  const std::filesystem::path dir = std::filesystem::path(doc.file()).parent_path();
  {
    auto listen = root.object("listen");
    http::read_listen_section(listen, doc.file(), 8090, /*http2_capable=*/true, c.server);
  }
  read_urls_and_files(root, dir, c);
  read_origins(root, c);
  read_signing_and_playback(root, c);
  read_playlists(root, c.playlists);
  read_keys_health_upstream(root, c);
  read_admission(root, c.admission, c.per_address_exempt);
  read_admission_backend(root, c);
  read_operator_and_api(root, dir, c);
  http::read_server_sections(root, c.server, c.log_level, c.cors);
  read_steering_and_web(root, dir, c);
  read_prefetch(root, c);
  c.server.service = "balancer";
  root.finish();
  if (!root.ok()) return core::Error{"bad_config", root.error_text()};
  return c;
}

namespace {

// The required "id" of a list entry: letters, digits, '-' and '_', and unlike the entries'
// read before (`ids`, which gains it).
std::string read_unique_id(core::ConfigReader& r, std::set<std::string>& ids, const char* what) {
  std::string id = r.required_string("id");
  if (id.empty()) return id;
  if (!signing::valid_channel_id(id)) {
    r.fail("id", "may only use letters, digits, '-' and '_' (1 to 64)");
  }
  if (!ids.insert(id).second) r.fail("id", "duplicate " + std::string(what) + " id '" + id + "'");
  return id;
}

// The required list `key` of a channels or caches file: each entry's "id" read and checked
// here, the rest by `read`; every error gathered.
template <typename Entry, typename Read>
core::Result<std::vector<Entry>> read_id_list(const core::ConfigDocument& doc, const char* key,
                                              const char* what, const char* required, Read read) {
  core::ConfigReader root(doc);
  std::vector<Entry> entries;
  std::set<std::string> ids;
  root.each_element(key, [&](size_t, core::ConfigReader& r) {
    Entry entry;
    entry.id = read_unique_id(r, ids, what);
    read(r, entry);
    entries.push_back(std::move(entry));
  });
  if (!doc.root().IsObject() || !doc.root().HasMember(key)) root.fail(key, required);
  root.finish();
  if (!root.ok()) return core::Error{"bad_config", root.error_text()};
  return entries;
}

}  // namespace

core::Status read_channels(const core::ConfigDocument& doc, BalancerConfig& config) {
  auto read_channel = [&](core::ConfigReader& r, ChannelConfig& ch) {
    ch.title = r.string("title", ch.id);
    auto check_origin = [&](core::ConfigReader& reader, const std::string& origin) {
      if (origin.empty() || config.origins.count(origin)) return;
      std::string known;
      for (const auto& [id, o] : config.origins) known += (known.empty() ? "" : ", ") + id;
      reader.fail("origin", "unknown origin '" + origin + "' (origins in " + config.main_file +
                                ": " + known + ")");
    };
    auto read_source = [&](core::ConfigReader& reader) {
      ChannelSource source;
      source.origin = reader.required_string("origin");
      check_origin(reader, source.origin);
      source.source = reader.required_string("source");
      if (!source.source.empty()) {
        std::string problem = check_source_path(source.source);
        if (!problem.empty()) reader.fail("source", problem);
      }
      return source;
    };
    if (r.has("sources")) {
      if (r.has("origin") || r.has("source"))
        r.fail("sources", "list the sources here or give \"origin\" and \"source\", not both");
      r.each_element("sources", [&](size_t, core::ConfigReader& item) {
        ChannelSource source = read_source(item);
        for (const ChannelSource& earlier : ch.sources) {
          if (earlier == source)
            item.fail("source", "the same playlist on the same origin is listed twice");
        }
        ch.sources.push_back(std::move(source));
      });
      if (ch.sources.empty()) r.fail("sources", "must list at least one source");
      if (ch.sources.size() > kMaxChannelSources)
        r.fail("sources", "at most " + std::to_string(kMaxChannelSources) + " sources");
    } else {
      ch.sources.push_back(read_source(r));
    }
    if (!ch.sources.empty()) {
      ch.origin = ch.sources.front().origin;
      ch.source = ch.sources.front().source;
    }
    core::ConfigReader failover = r.object("failover");
    ch.failover.stall_target_durations =
        failover.number("stall_target_durations", ch.failover.stall_target_durations, 0.5, 20);
    ch.failover.stall_part_targets =
        failover.number("stall_part_targets", ch.failover.stall_part_targets, 2, 100);
    ch.failover.failback_after = std::chrono::milliseconds(
        static_cast<int64_t>(1000 * failover.number("failback_after_s", 30, 0, 86400)));
    ch.failover.failback = failover.choice<bool>(
        "failback", true,
        {{"auto", true, "back to a preferred source once it has been healthy for failback_after_s"},
         {"manual", false, "only when the operator says so"}});
    ch.failover.identical_timestamps = failover.boolean("identical_timestamps", false);
    failover.finish();
    ch.free = r.boolean("free", false);
    ch.product = r.string("product", "");
    if (ch.free && !ch.product.empty())
      r.fail("product", "a channel is either free or unlocked by a product, not both");
    if (!ch.free && ch.product.empty())
      r.fail("free", "set \"free\": true or name the \"product\" that unlocks the channel");
    ch.kind = r.choice<LiveMode>(
        "kind", LiveMode::automatic,
        {{"auto", LiveMode::automatic}, {"live", LiveMode::live}, {"vod", LiveMode::vod}});
    ch.finished = r.boolean("finished", false);
    ch.target_latency_s = r.number("target_latency_s", 0, 0, 600);
    ch.prefetch = r.boolean("prefetch", true);
  };
  auto channels = read_id_list<ChannelConfig>(doc, "channels", "channel",
                                              "is required (a list of channels)", read_channel);
  if (!channels) return channels.error();
  config.channels = std::move(*channels);
  return {};
}

core::Status read_caches(const core::ConfigDocument& doc, BalancerConfig& config) {
  auto read_cache = [](core::ConfigReader& r, CacheConfig& cache) {
    cache.site = r.string("site", "default");
    cache.url = trim_slash(r.required_string("url"));
    if (!cache.url.empty() && !is_http_url(cache.url))
      r.fail("url", "must start with http:// or https://");
    if (cache.url.find('?') != std::string::npos)
      r.fail("url", "must be a base URL without a query");
    auto health = r.optional_string("health_url");
    cache.health_url = health ? *health : cache.url + "/health";
    if (health && !is_http_url(*health))
      r.fail("health_url", "must start with http:// or https://");
    cache.networks_text = r.string_list("networks", {});
    for (const auto& text : cache.networks_text) {
      auto cidr = core::Cidr::parse(text);
      if (!cidr) {
        r.fail("networks",
               "'" + text +
                   "' is not a network (e.g. 10.0.0.0/8 or 2001:db8::/32; host bits must be zero)");
      } else {
        cache.networks.push_back(*cidr);
      }
    }
  };
  auto caches = read_id_list<CacheConfig>(
      doc, "caches", "cache", "is required (a list of cache nodes; may be empty)", read_cache);
  if (!caches) return caches.error();
  config.caches = std::move(*caches);
  return {};
}

core::Result<BalancerConfig> load_balancer_config(const std::string& main_path,
                                                  const std::vector<std::string>& overrides) {
  auto main = core::ConfigDocument::load(main_path, overrides);
  if (!main) return main.error();
  auto config = read_main_config(*main);
  if (!config) return config.error();
  std::string errors;
  auto channels_doc = core::ConfigDocument::load(config->channels_file, {});
  if (!channels_doc) {
    errors = channels_doc.error().message;
  } else if (auto s = read_channels(*channels_doc, *config); !s) {
    errors = s.error().message;
  }
  auto caches_doc = core::ConfigDocument::load(config->caches_file, {});
  std::string cache_error;
  if (!caches_doc) {
    cache_error = caches_doc.error().message;
  } else if (auto s = read_caches(*caches_doc, *config); !s) {
    cache_error = s.error().message;
  }
  if (!cache_error.empty()) errors += (errors.empty() ? "" : "\n") + cache_error;
  if (!config->api.products_file.empty()) {
    auto products_doc = core::ConfigDocument::load(config->api.products_file, {});
    core::Status products =
        products_doc ? read_products(*products_doc, *config) : products_doc.error();
    if (!products) errors += (errors.empty() ? "" : "\n") + products.error().message;
  }
  if (!errors.empty()) return core::Error{"bad_config", errors};
  return config;
}

core::Status read_products(const core::ConfigDocument& doc, BalancerConfig& config) {
  auto products = api::read_products(doc);
  if (!products) return products.error();
  // A paid channel must be sold; a product naming no configured channel is only
  // logged by the API (a channel may be taken off the air while passes are sold).
  std::string errors;
  for (const ChannelConfig& ch : config.channels) {
    if (ch.free) continue;
    const api::Product* p = api::find_product(*products, ch.product);
    if (p == nullptr) {
      errors += (errors.empty() ? "" : "\n") + config.channels_file + ": key 'channels[" + ch.id +
                "].product': no product '" + ch.product + "' in " + doc.file();
    } else if (p->kind != api::ProductKind::channel ||
               std::find(p->unlocks.begin(), p->unlocks.end(), ch.id) == p->unlocks.end()) {
      errors += (errors.empty() ? "" : "\n") + doc.file() + ": key 'products[" + p->id +
                "].unlocks': must be a \"channel\" product that unlocks '" + ch.id +
                "' (the channel names it as its product)";
    }
  }
  if (!errors.empty()) return core::Error{"bad_config", errors};
  config.api.products = std::move(products).value();
  return {};
}

}  // namespace balancer

#include "cache_node/cache_node.h"

#include <charconv>
#include <string_view>

#include "cache_node/serving/node_loop.h"
#include "core/json.h"
#include "core/log.h"
#include "core/thread_rule.h"
#include "http/server/operator_access.h"

namespace cache_node {

using http::HttpExchange;

namespace {

constexpr const char* kErrorKinds[] = {
    "bad_request",           "unknown_origin",        "signature_missing",  "signature_expired",
    "signature_invalid",     "origin_error",          "origin_unreachable", "origin_timeout",
    "object_too_large",      "range_not_satisfiable", "storage_error",      "unauthorized",
    "operator_key_required", "operator_key_invalid"};

core::Result<std::shared_ptr<const RuntimeConfig>> make_runtime(CacheNodeConfig config) {
  auto runtime = std::make_shared<RuntimeConfig>();
  if (!config.signing_keys.empty()) {
    auto signer = signing::UrlSigner::create(config.signing_keys);
    if (!signer) return signer.error();
    runtime->signer = std::move(signer).value();
  }
  for (const auto& [id, url] : config.site_nodes) {
    if (id == config.node_id) runtime->self_index = runtime->site_ids.size();
    runtime->site_ids.push_back(id);
    runtime->site_urls.push_back(url);
  }
  runtime->config = std::move(config);
  return std::shared_ptr<const RuntimeConfig>(std::move(runtime));
}

StoreOptions chunk_store_options(const CacheNodeConfig& config) {
  StoreOptions store_options{config.data_dir, config.memory_bytes, config.disk_bytes};
  store_options.max_entries = config.max_entries;
  // Entries stored before freshness was recorded: what they kept (Cache-Control,
  // content type) decides, counted from when they were stored; else the defaults.
  store_options.upgrade_legacy = [defaults = config.freshness](const std::string& key,
                                                               ChunkMeta& meta) {
    UpstreamFreshness response;
    response.cache_control = meta.cache_control;
    Freshness f = compute_freshness(response, classify_object(key, meta.content_type),
                                    meta.stored_at * 1000, defaults);
    meta.vouched_ms = f.vouched_ms;
    meta.fresh_until_ms = f.fresh_until_ms;
    meta.stale_until_ms = f.stale_until_ms;
    meta.refresh_grace_until_ms = f.refresh_grace_until_ms;
    return f.storable;
  };
  return store_options;
}

http::HttpClientOptions upstream_client_options(const CacheNodeConfig& config) {
  http::HttpClientOptions client_options;
  client_options.connect_timeout = config.upstream_connect_timeout;
  client_options.request_timeout = config.upstream_timeout;
  client_options.http2 = config.upstream_http2;
  client_options.ca_file = config.upstream_ca_file;
  client_options.user_agent = "balancer-cache-node/" + config.node_id;
  return client_options;
}

// The gauges read at each scrape: storage, negative entries, requests, fetches, egress.
void add_node_gauges(CacheNode::Shared& n) {
  const ChunkStore& s = n.cache->store();
  // Memory first: each family lists its memory series before its disk one.
  for (const bool disk : {false, true}) {
    const std::string tier = disk ? "tier=\"disk\"" : "tier=\"memory\"";
    n.metrics.gauge_fn(
        "cache_storage_bytes", "Bytes stored",
        [&s, disk] { return double(disk ? s.disk_used() : s.memory_used()); }, tier);
    n.metrics.gauge_fn(
        "cache_storage_limit_bytes", "Storage limit",
        [&s, disk] { return double(disk ? s.options().disk_bytes : s.options().memory_bytes); },
        tier);
    n.metrics.gauge_fn(
        "cache_storage_entries", "Chunks stored",
        [&s, disk] { return double(disk ? s.disk_entries() : s.memory_entries()); }, tier);
  }
  n.metrics.gauge_fn("cache_negative_entries", "Upstream 404s remembered",
                     [&n] { return double(n.cache->negative_entries()); });
  n.metrics.gauge_fn("cache_active_requests", "Requests in progress",
                     [&n] { return double(n.status().active_requests()); });
  n.metrics.gauge_fn("cache_inflight_fetches", "Upstream fetches in progress",
                     [&n] { return double(n.cache->inflight()); });
  n.metrics.gauge_fn("cache_egress_mbps", "Recent egress in Mbit/s",
                     [&n] { return n.egress_mbps.load(); });
}

}  // namespace

// ---- status ----

std::string NodeStatus::health_json(const CacheNodeConfig& c) const {
  // Asked by every balancer's poll and every load balancer's check: appended, without
  // printf's format parsing (10.6 us of CPU a keep-alive /health before, 9.2 after).
  std::string out;
  out.reserve(1024);
  auto number = [&out](std::string_view before, uint64_t value) {
    core::append_json_number(out, before, value);
  };
  const ChunkStore& store = cache.store();
  const bool over = overloaded(c);
  out += over ? R"({"status":"overloaded")" : R"({"status":"ok")";
  out += ",\"node_id\":";
  core::append_json_string(out, c.node_id);
  out += ",\"site\":";
  core::append_json_string(out, c.site);
  out += over ? R"(,"overloaded":true)" : R"(,"overloaded":false)";
  // Read by every balancer's poll (health_poller.h): early, within the part of a reply it reads.
  out += R"(,"origin_chunk_fetches":{)";
  bool first = true;
  for (const OriginFetchTally::Counts& origin : counters.flights.origins.counts()) {
    if (!first) out += ',';
    first = false;
    core::append_json_string(out, origin.origin);
    number(R"(:{"answered":)", origin.answered);
    number(R"(,"failed":)", origin.failed);
    out += '}';
  }
  out += '}';
  number(R"(,"threads":)", threads);
  number(R"(,"active_connections":)", active_requests());
  if (const http::ConnectionLimits* table = connections()) {
    number(R"(,"connections_open":)", table->open());
    number(R"(,"connections_max":)", table->max_connections());
  }
  number(R"(,"inflight_fetches":)", cache.inflight());
  out += R"(,"egress_mbps":)";
  char egress[32];
  out.append(egress, std::to_chars(egress, egress + sizeof egress, egress_mbps.load(),
                                   std::chars_format::fixed, 3)
                         .ptr);
  number(R"(,"bytes_served_total":)", counters.bytes_served.value());
  number(R"(,"origin_bytes_total":)", counters.flights.origin_bytes.value());
  number(R"(,"requests":{"hit":)", counters.request(RequestOutcome::hit).value());
  number(R"(,"miss":)", counters.request(RequestOutcome::miss).value());
  number(R"(,"coalesced":)", counters.request(RequestOutcome::coalesced).value());
  number(R"(,"negative":)", counters.request(RequestOutcome::negative).value());
  number(R"(,"stale":)", counters.request(RequestOutcome::stale).value());
  number(R"(},"storage":{"memory_used_bytes":)", store.memory_used());
  number(R"(,"memory_limit_bytes":)", store.options().memory_bytes);
  number(R"(,"disk_used_bytes":)", store.disk_used());
  number(R"(,"disk_limit_bytes":)", store.options().disk_bytes);
  number(R"(,"disk_chunks":)", store.disk_entries());
  number(R"(,"pending_writes":)", store.pending_writes());
  number(R"(,"memory_chunks":)", store.memory_entries());
  number(R"(,"max_entries":)", store.options().max_entries);
  number(R"(,"negative_entries":)", cache.negative_entries());
  out += "}}\n";
  return out;
}

void CacheNode::Shared::tick() {
  core::expect_on(context.home());
  auto now = clock.now();
  double seconds = std::chrono::duration<double>(now - home_tick.last_tick).count();
  uint64_t bytes = counters.bytes_served.value();
  if (seconds > 0) {
    double instant = static_cast<double>(bytes - home_tick.last_bytes_served) * 8 / 1e6 / seconds;
    egress_mbps.store(0.5 * egress_mbps.load() + 0.5 * instant);  // smooth over a few seconds
  }
  home_tick.last_bytes_served = bytes;
  home_tick.last_tick = now;
  cache->expire_negative();
  counters.prefetch_wasted.inc(prefetch_ledger.expire(clock.unix_now_ms()));
}

// ---- the service ----

CacheNode::CacheNode(std::unique_ptr<Shared> shared) : shared_(std::move(shared)) {}
CacheNode::~CacheNode() = default;

core::Result<std::unique_ptr<CacheNode>> CacheNode::create(http::ServiceContext& context,
                                                           const CacheNodeConfig& config) {
  core::LogLevel level;
  if (core::parse_log_level(config.log_level, level)) core::set_log_level(level);
  auto runtime = make_runtime(config);
  if (!runtime) return runtime.error();
  auto shared = std::make_unique<Shared>(context, std::move(runtime).value());
  Shared& n = *shared;
  auto store = ChunkStore::open(context.home().base(), chunk_store_options(config), n.metrics);
  if (!store) return store.error();
  n.cache = std::make_unique<SharedCache>(
      std::move(store).value(), n.clock, config.negative_max_entries,
      n.metrics.counter("cache_negative_refused_total",
                        "Upstream 404s not remembered because negative_max_entries were"));
  const http::HttpClientOptions client_options = upstream_client_options(config);
  for (core::EventLoop* loop : context.loops) {
    auto client = http::HttpClient::create(loop->base(), client_options);
    if (!client) return client.error();
    n.loops.push_back(std::make_unique<NodeLoop>(n.loop_parts(), *loop, std::move(client).value()));
  }
  for (const char* kind : kErrorKinds)
    n.counters.error(kind);  // every series exists from the start, at 0
  n.playback.set_channel_labels(config.playback_channels);
  add_node_gauges(n);

  n.home_tick.last_tick = n.clock.now();
  n.home_tick.timer.reset(event_new(
      &context.home().base(), -1, EV_PERSIST,
      [](evutil_socket_t, short, void* arg) { static_cast<Shared*>(arg)->tick(); }, &n));
  timeval one_second{1, 0};
  evtimer_add(n.home_tick.timer.get(), &one_second);
  LOG_INFO(kLog, "node ", config.node_id, " (site ", config.site, ") serving ",
           config.origins.size(), " origin(s)",
           config.parent ? " through parent " + *config.parent : std::string());
  return std::unique_ptr<CacheNode>(new CacheNode(std::move(shared)));
}

void CacheNode::attach(size_t index, http::HttpServer& server) {
  Shared& n = *shared_;
  NodeLoop& loop = *n.loops[index];
  n.servers.push_back(&server);
  // Per-loop readers of the config snapshot (each handler runs on this loop only).
  auto config = std::make_shared<core::Published<RuntimeConfig>::Reader>(n.config);
  // Every answer is for viewers (chunks, /ping) or the operator's dashboard in a
  // browser (/health, /playback), except the Prometheus scrape.
  http::CorsRules cors;
  cors.exempt_paths = {"/metrics", "/prefetch"};
  // The dashboard reads /playback with the operator's key.
  cors.allow_headers += ", X-Operator-Key";
  server.set_pre_route([config, cors](HttpExchange& ex) {
    return http::apply_cors(config->get().config.cors, cors, ex);
  });
  server.route_prefix(std::string(kChunkPrefix), {"GET", "HEAD"},
                      [&loop](HttpExchange& ex) { loop.handle_chunk(ex); });
  server.route("/prefetch", {"POST"}, [&loop](HttpExchange& ex) { loop.handle_prefetch(ex); });
  server.route("/ping", {"GET", "HEAD", "OPTIONS"}, [config](HttpExchange& ex) {
    const CacheNodeConfig& c = config->get().config;
    ex.add_header("Cache-Control", "no-store");
    // A plain OPTIONS; preflights are answered before routing (http/server/cors.h).
    if (ex.method() == "OPTIONS") return ex.reply(204, "", "");
    ex.reply(200, "{\"id\":" + core::json_string(c.node_id) +
                      ",\"site\":" + core::json_string(c.site) + "}\n");
  });
  server.route("/health", {"GET", "HEAD"}, [status = n.status(), config](HttpExchange& ex) {
    ex.add_header("Cache-Control", "no-store");
    ex.reply(200, status.health_json(config->get().config));
  });
  // What the players report, apart from /health: no audience can make the health signal the
  // balancers poll larger or slower (quality_meter.h: bounded, made at most once a second).
  // The audience's size and health are the operator's: behind the operator key.
  server.route("/playback", {"GET", "HEAD"},
               [&playback = n.playback, &counters = n.counters, config](HttpExchange& ex) {
                 const CacheNodeConfig& c = config->get().config;
                 const http::OperatorVerdict access =
                     http::check_operator({c.operator_key, c.operator_allow_loopback},
                                          http::presented_operator_key(ex), ex.remote_ip());
                 ex.add_header("Cache-Control", "no-store");
                 if (!access.allowed) {
                   counters.error(access.code).inc();
                   return ex.reply_error(access.status, access.code, access.message);
                 }
                 ex.reply(200, playback.json() + "\n");
               });
  server.route("/metrics", {"GET"}, [&metrics = n.metrics](HttpExchange& ex) {
    ex.add_header("Cache-Control", "no-store");
    ex.reply(200, metrics.render(), "text/plain; version=0.0.4");
  });
}

// Prepare: the log level and the signer are checked and built here; the running
// snapshot and the shared cache change only in the swap.
core::Result<http::ReloadSwap> CacheNode::prepare_reload(CacheNodeConfig config) {
  Shared& n = *shared_;
  std::shared_ptr<const RuntimeConfig> running = n.config.load();
  const CacheNodeConfig& old = running->config;
  core::LogLevel level;
  if (!core::parse_log_level(config.log_level, level)) {
    return core::Error{"bad_config", "log.level: unknown level " + config.log_level};
  }
  const bool restart_only_differs =
      config.server.host != old.server.host || config.server.port != old.server.port ||
      config.server.threads != old.server.threads || config.data_dir != old.data_dir ||
      config.memory_bytes != old.memory_bytes || config.disk_bytes != old.disk_bytes ||
      config.max_entries != old.max_entries;
  config.server = old.server;
  config.data_dir = old.data_dir;
  config.memory_bytes = old.memory_bytes;
  config.disk_bytes = old.disk_bytes;
  config.max_entries = old.max_entries;
  const size_t negative_max_entries = config.negative_max_entries;
  std::vector<std::string> channel_labels = config.playback_channels;
  auto runtime = make_runtime(std::move(config));
  if (!runtime) return runtime.error();
  return http::ReloadSwap([&n, next = std::move(runtime).value(), level, restart_only_differs,
                           negative_max_entries, channel_labels = std::move(channel_labels)] {
    if (restart_only_differs) {
      LOG_WARN(
          kLog,
          "reload: listen address, threads, data_dir and storage sizes change only on restart");
    }
    core::set_log_level(level);
    n.config.publish(next);
    n.cache->set_max_negative(negative_max_entries);
    n.playback.set_channel_labels(channel_labels);
  });
}

}  // namespace cache_node

// Wiring: the shared parts (balancer_loop.h), one BalancerLoop per event loop and
// config apply. Handlers live in viewers/ (ViewerEndpoints) and operator_endpoints.cc,
// the fetch loop's part in balancer_fetchers.cc, metrics in balancer_metrics.cc.
#include "balancer/balancer.h"

#include "balancer/balancer_loop.h"
#include "balancer/log_tag.h"
#include "balancer/operator/web_pages.h"
#include "core/log.h"
#include "core/thread_rule.h"

namespace balancer {

using http::HttpExchange;

namespace {

// The operator switch: the path the existing app and test plans use (sic), and its alias.
constexpr std::string_view kSwitchPath = "/access_queue_swith";
constexpr std::string_view kSwitchAlias = "/access_queue_switch";
constexpr std::string_view kAdminStatusPath = "/admin/status";

std::string describe(const AdmissionLimits& l) {
  auto s = [](Duration d) { return std::chrono::duration<double>(d).count(); };
  return core::str_cat(
      "max_streams=", l.max_streams, " max_traffic_mbps=", l.max_traffic_mbps,
      " idle_timeout_s=", s(l.idle_timeout), " ticket_grace_s=", s(l.ticket_grace),
      " head_reservation_s=", s(l.head_reservation), " retry_after_s=", s(l.retry_after),
      " max_anonymous_per_address=", l.max_anonymous_per_address,
      " max_tickets_per_address=", l.max_tickets_per_address, " max_entries=", l.max_entries,
      " max_streams_per_account=", l.max_streams_per_account);
}

// Validates `fresh` and derives what it needs (signer, tickets).
core::Result<std::shared_ptr<const RuntimeConfig>> make_runtime(BalancerConfig fresh,
                                                                uint64_t generation) {
  auto signer = signing::UrlSigner::create(fresh.signing_keys);
  if (!signer) return signer.error();
  auto tickets = signing::PlaybackTickets::create(fresh.ticket_keys);
  if (!tickets) return tickets.error();
  core::LogLevel level;
  if (!core::parse_log_level(fresh.log_level, level)) {
    return core::Error{"bad_config", "log.level: unknown level " + fresh.log_level};
  }
  auto rc = std::make_shared<RuntimeConfig>();
  rc->config = std::move(fresh);
  rc->signer = std::move(signer).value();
  rc->tickets = std::move(tickets).value();
  rc->generation = generation;
  return std::shared_ptr<const RuntimeConfig>(std::move(rc));
}

// The one place the backend is chosen (admission.backend; restart to change it).
std::unique_ptr<Admission> make_admission(const http::ServiceContext& context,
                                          const BalancerConfig& c) {
  if (c.admission_backend == "redis") {
    return admission::make_redis_admission(context.loops, c.admission_redis, c.admission);
  }
  return admission::make_local_admission(c.admission);
}

bool fresh_backend_differs(const BalancerConfig& running, const BalancerConfig& fresh) {
  return running.admission_backend != fresh.admission_backend ||
         !(running.admission_redis == fresh.admission_redis);
}

}  // namespace

// ---- shared state ----

Balancer::Shared::Shared(http::ServiceContext& c, std::shared_ptr<const RuntimeConfig> initial)
    : context(c),
      clock(*c.clock),
      config(initial),
      health(std::make_shared<const HealthView>()),
      metrics(*c.metrics),
      playback(*c.metrics, *c.clock, {}),
      any_loop(make_admission(c, initial->config)),
      admission_report(*c.metrics, *any_loop.admission, c.clock->now()) {}

void Balancer::Shared::on_fetch_loop(std::function<void()> job) {
  core::EventLoop& fetch = context.fetch_loop();
  if (fetch.owned_here()) return job();
  fetch.post(std::move(job));
}

size_t LoopSet::active_requests() const {
  size_t n = 0;
  for (const auto* s : servers_) n += s->active_requests();
  return n;
}

bool LoopSet::draining() const {
  for (const auto* s : servers_) {
    if (s->draining()) return true;
  }
  return false;
}

// ---- one loop ----

BalancerLoop::BalancerLoop(AnyThreadParts parts, size_t serving_loops, SourceAsker& sources,
                           KeyFetcher& keys, SourceChooser& chooser, core::EventLoop& loop)
    : parts_(parts),
      chooser_(chooser),
      loop_(loop),
      config_(parts.config),
      health_(parts.health),
      viewers_({parts.clock, parts.config, parts.health, parts.metrics, parts.playback,
                parts.any_loop, serving_loops},
               sources, keys, loop) {}

void BalancerLoop::attach(http::HttpServer& server) {
  // Viewer-facing answers (playlists, keys, the API, errors) carry CORS headers;
  // operator endpoints carry none, so no web page on another origin can read them.
  http::CorsRules cors;
  cors.allow_methods = "GET, HEAD, POST, DELETE, OPTIONS";
  cors.exempt_paths = {"/health", "/metrics", std::string(kSwitchPath), std::string(kSwitchAlias)};
  cors.exempt_prefixes = {"/admin/"};
  server.set_pre_route([this, cors](HttpExchange& ex) {
    core::expect_on(loop_);  // every request of this loop's server: its state is this loop's
    return http::apply_cors(config_.get().config.cors, cors, ex);
  });
  server.route_prefix(std::string(kPlaylistPrefix), {"GET", "HEAD"},
                      [this](HttpExchange& ex) { viewers_.handle_playlist(ex); });
  server.route_prefix(std::string(kKeyPrefix), {"GET", "HEAD"},
                      [this](HttpExchange& ex) { viewers_.handle_key(ex); });
  server.route_prefix(std::string(kSteeringPrefix), {"GET", "HEAD"},
                      [this](HttpExchange& ex) { viewers_.handle_steering(ex); });
  server.route("/health", {"GET", "HEAD"}, [this](HttpExchange& ex) { handle_health(ex); });
  server.route("/metrics", {"GET"}, [this](HttpExchange& ex) {
    ex.add_header("Cache-Control", "no-store");
    ex.reply(200, parts_.admission_report.render(parts_.clock.now()), "text/plain; version=0.0.4");
  });
  for (std::string_view path : {kSwitchPath, kSwitchAlias}) {
    server.route(std::string(path), {"GET"}, [this](HttpExchange& ex) { handle_switch(ex); });
  }
  server.route(std::string(kAdminStatusPath), {"GET", "HEAD"},
               [this](HttpExchange& ex) { handle_admin_status(ex); });
  server.route("/admin/sources", {"GET", "HEAD", "POST"},
               [this](HttpExchange& ex) { handle_admin_sources(ex); });
  // A browser asks every server for an icon: the pages' own (their <link rel="icon">), not a 404.
  server.route("/favicon.ico", {"GET", "HEAD"}, [](HttpExchange& ex) {
    ex.add_header("Location", "/player/favicon.svg");
    ex.add_header("Cache-Control", "max-age=86400");
    ex.reply_error(301, "moved", "The icon is at /player/favicon.svg.");
  });
  // The web player and the operator's dashboard (static; their data come from the endpoints above).
  for (const char* page : {"/player", "/admin", "/player/", "/admin/", "/vendor/"}) {
    auto serve = [this](HttpExchange& ex) { serve_web_page(config_.get().config.web_dir, ex); };
    if (std::string_view(page).back() == '/') {
      server.route_prefix(page, {"GET", "HEAD"}, serve);
    } else {
      server.route(page, {"GET", "HEAD"}, serve);
    }
  }
}

// ---- Balancer ----

Balancer::Balancer(std::unique_ptr<Shared> shared) : shared_(std::move(shared)) {}
Balancer::~Balancer() = default;

void Balancer::attach(size_t index, http::HttpServer& server) {
  shared_->loops.add_server(server);
  shared_->loops.loop(index).attach(server);
  shared_->api->attach(index, server);
}

void Balancer::stop_background() {
  shared_->on_fetch_loop([&s = *shared_] { s.fetchers->stop(); });
}

// Prepare: everything fallible (keys, tickets, log level) is built into a new
// immutable snapshot here; the home and fetch loops' objects are touched only by the swap.
core::Result<http::ReloadSwap> Balancer::prepare_reload(BalancerConfig fresh) {
  Shared& s = *shared_;
  std::shared_ptr<const RuntimeConfig> running = s.config.load();
  const BalancerConfig& old = running->config;
  const bool server_differs = fresh.server.host != old.server.host ||
                              fresh.server.port != old.server.port ||
                              fresh.server.threads != old.server.threads ||
                              fresh.server.max_header_bytes != old.server.max_header_bytes ||
                              fresh.server.max_body_bytes != old.server.max_body_bytes ||
                              fresh.server.io_timeout_s != old.server.io_timeout_s ||
                              fresh.server.ipv6_prefix_length != old.server.ipv6_prefix_length;
  fresh.server = old.server;
  const bool backend_differs = fresh_backend_differs(old, fresh);
  fresh.admission_backend = old.admission_backend;
  fresh.admission_redis = old.admission_redis;
  auto rc = make_runtime(std::move(fresh), running->generation + 1);
  if (!rc) return rc.error();
  core::LogLevel level;
  core::parse_log_level((*rc)->config.log_level, level);  // make_runtime checked it
  return http::ReloadSwap([&s, running, next = std::move(rc).value(), level, server_differs,
                           backend_differs] {
    const BalancerConfig& was = running->config;
    const BalancerConfig& c = next->config;
    if (server_differs)
      LOG_WARN(kLog,
               "reload: the listen address, threads and server limits change only on restart");
    if (backend_differs) {
      LOG_WARN(kLog,
               "reload: admission.backend and admission.redis.* change only on restart (running: ",
               was.admission_backend, ")");
    }
    core::set_log_level(level);
    s.any_loop.admission->set_limits(c.admission, s.clock.now());
    s.admission_report.register_groups(c);
    s.on_fetch_loop([&s, next] { s.fetchers->configure(next->config); });
    s.api->reload(c.api);
    if (was.admission != c.admission) {
      LOG_INFO(kLog, "admission limits now ", describe(c.admission), " (were ",
               describe(was.admission), "); admitted viewers keep their slots");
    }
    s.config.publish(next);
  });
}

core::Result<std::unique_ptr<Balancer>> Balancer::create(http::ServiceContext& context,
                                                         const BalancerConfig& config) {
  auto rc = make_runtime(config, 1);
  if (!rc) return rc.error();
  auto shared = std::make_unique<Shared>(context, std::move(rc).value());
  Shared& s = *shared;
  core::LogLevel level;
  if (core::parse_log_level(config.log_level, level)) core::set_log_level(level);
  auto fetchers = BalancerFetchers::create(context.fetch_loop(), s.clock, *context.metrics, config,
                                           s.any_loop, s.health);
  if (!fetchers) return fetchers.error();
  s.fetchers = std::move(fetchers).value();
  s.fetchers->configure(config);
  s.any_loop.admission->set_limits(config.admission, s.clock.now());
  s.admission_report.register_groups(config);
  s.admission_tick =
      std::make_unique<AdmissionTick>(context.home(), s.clock, *s.any_loop.admission, s.health);
  for (core::EventLoop* loop : context.loops)
    s.loops.add_loop(std::make_unique<BalancerLoop>(s.any_thread_parts(), context.loops.size(),
                                                    s.fetchers->source_asker(), *s.fetchers,
                                                    *s.fetchers, *loop));
  s.api_host = std::make_unique<ApiHost>(s.any_thread_parts());
  auto api = api::Api::create(context, config.api, *s.api_host);
  if (!api) return api.error();
  s.api = std::move(api).value();

  s.admission_report.register_gauges();
  core::MetricsRegistry& registry = *context.metrics;
  registry.gauge_fn("balancer_playlist_sources", "Source playlists held in memory",
                    [&s] { return double(s.any_loop.source_entries.load()); });
  registry.gauge_fn("balancer_playlist_sources_refreshing",
                    "Live sources refreshed in the background",
                    [&s] { return double(s.any_loop.sources_refreshing.load()); });
  registry.gauge_fn(
      "balancer_playlist_unsent_bytes",
      "Bytes of playlist replies not yet written to their clients (bounded by "
      "playlists.max_unsent_bytes)",
      [&s] { return double(s.any_loop.unsent_playlist_bytes.load(std::memory_order_relaxed)); });
  registry.gauge_fn("balancer_active_requests", "Requests in progress",
                    [&s] { return double(s.loops.active_requests()); });
  LOG_INFO(kLog, "serving ", config.channels.size(), " channel(s) with ", config.caches.size(),
           " cache node(s)",
           config.allow_anonymous ? "; anonymous viewers allowed on free channels" : "",
           "; admission ", describe(config.admission),
           config.admission_backend == "redis"
               ? core::str_cat(", shared through Redis at ", config.admission_redis.host, ":",
                               config.admission_redis.port, " (prefix ",
                               config.admission_redis.prefix, ")")
               : std::string(", in this process"));
  return std::unique_ptr<Balancer>(new Balancer(std::move(shared)));
}

}  // namespace balancer

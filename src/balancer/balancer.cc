// Wiring: the shared state, one BalancerLoop per event loop, config apply and
// the home loop's timer. Handlers live in viewer_endpoints.cc and
// operator_endpoints.cc, metrics in balancer_metrics.cc.
#include "balancer/balancer.h"

#include "balancer/balancer_loop.h"
#include "balancer/web_pages.h"
#include "common/log.h"

namespace balancer {

using common::HttpExchange;

namespace {

constexpr const char* kLog = "balancer";
// The operator switch: the path the existing app and test plans use (sic), and its alias.
constexpr std::string_view kSwitchPath = "/access_queue_swith";
constexpr std::string_view kSwitchAlias = "/access_queue_switch";
constexpr std::string_view kAdminStatusPath = "/admin/status";

std::string describe(const AdmissionLimits& l) {
  auto s = [](Duration d) { return std::chrono::duration<double>(d).count(); };
  return common::str_cat("max_streams=", l.max_streams, " max_traffic_mbps=", l.max_traffic_mbps,
                         " idle_timeout_s=", s(l.idle_timeout), " ticket_grace_s=", s(l.ticket_grace),
                         " head_reservation_s=", s(l.head_reservation), " retry_after_s=", s(l.retry_after),
                         " max_anonymous_per_address=", l.max_anonymous_per_address,
                         " max_tickets_per_address=", l.max_tickets_per_address, " max_entries=", l.max_entries);
}

std::vector<double> rewrite_buckets() {
  return {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25};
}

// Validates `fresh` and derives what it needs (signer, tickets).
common::Result<std::shared_ptr<const RuntimeConfig>> make_runtime(BalancerConfig fresh, uint64_t generation) {
  auto signer = common::UrlSigner::create(fresh.signing_keys);
  if (!signer) return signer.error();
  auto tickets = common::PlaybackTickets::create(fresh.ticket_keys);
  if (!tickets) return tickets.error();
  common::LogLevel level;
  if (!common::parse_log_level(fresh.log_level, level)) {
    return common::Error{"bad_config", "log.level: unknown level " + fresh.log_level};
  }
  auto rc = std::make_shared<RuntimeConfig>();
  rc->config = std::move(fresh);
  rc->signer = std::move(signer).value();
  rc->tickets = std::move(tickets).value();
  rc->generation = generation;
  return std::shared_ptr<const RuntimeConfig>(std::move(rc));
}

// The one place the backend is chosen (admission.backend; restart to change it).
std::unique_ptr<Admission> make_admission(const common::ServiceContext& context, const BalancerConfig& c) {
  if (c.admission_backend == "redis") {
    return admission::make_redis_admission(context.loops, c.admission_redis, c.admission);
  }
  return admission::make_local_admission(c.admission);
}

bool fresh_backend_differs(const BalancerConfig& running, const BalancerConfig& fresh) {
  return running.admission_backend != fresh.admission_backend || !(running.admission_redis == fresh.admission_redis);
}

}  // namespace

// ---- shared state ----

Balancer::Shared::Shared(common::ServiceContext& c, std::shared_ptr<const RuntimeConfig> initial)
    : context(c),
      clock(*c.clock),
      metrics(*c.metrics),
      config(initial),
      health(std::make_shared<const HealthView>()),
      admission(make_admission(c, initial->config)),
      requests_playlist(metrics.counter("balancer_requests_total", "Viewer requests by kind", "kind=\"playlist\"")),
      requests_key(metrics.counter("balancer_requests_total", "Viewer requests by kind", "kind=\"key\"")),
      rewrite_seconds(metrics.histogram("balancer_rewrite_seconds", "Time to render one viewer's copy of a playlist",
                                        rewrite_buckets())),
      playlist_admitted(admission_counter("playlist", "admitted")),
      playlist_queued(admission_counter("playlist", "queued")),
      access_admitted(admission_counter("access", "admitted")),
      access_queued(admission_counter("access", "queued")),
      emulation_switches(metrics.counter("balancer_overload_switches_total",
                                         "Overload emulation switched on or off by an operator")),
      admitted_direct(metrics.counter("balancer_admissions_total", "Viewers admitted, directly or from the queue",
                                      "from=\"direct\"")),
      admitted_from_queue(metrics.counter("balancer_admissions_total", "Viewers admitted, directly or from the queue",
                                          "from=\"queue\"")),
      tickets_issued(metrics.counter("balancer_queue_tickets_issued_total",
                                     "Queue tickets given to viewers who must wait")),
      tickets_not_renewed(metrics.counter("balancer_queue_tickets_dropped_total", "Queue tickets dropped",
                                          "reason=\"not_renewed\"")),
      tickets_lapsed(metrics.counter("balancer_queue_tickets_dropped_total", "Queue tickets dropped",
                                     "reason=\"reservation_lapsed\"")),
      slots_expired(metrics.counter("balancer_slots_expired_total",
                                    "Stream slots freed because their viewer went idle")),
      released(metrics.counter("balancer_admission_released_total", "Slots or tickets given back explicitly")),
      refused_address(metrics.counter("balancer_admission_refused_total", "New viewers refused by a bound",
                                      "reason=\"per_address\"")),
      refused_full(metrics.counter("balancer_admission_refused_total", "New viewers refused by a bound",
                                   "reason=\"max_entries\"")) {
  generation = initial->generation;
}

void Balancer::Shared::fetch_key(common::EventLoop& back, const std::string& url, KeyCallback done) {
  if (&back == &context.home()) return keys->get(url, std::move(done));
  context.home().post([this, &back, url, done = std::move(done)]() mutable {
    keys->get(url, [&back, done = std::move(done)](const KeyResult& r) mutable {
      back.post([r, done = std::move(done)] { done(r); });
    });
  });
}

size_t Balancer::Shared::active_requests() const {
  size_t n = 0;
  for (const auto* s : servers) n += s->active_requests();
  return n;
}

// The cache nodes' measured egress corrects the BANDWIDTH-based estimate. Only
// a new reading (or the readings going stale) is passed on: dividing an old
// reading by a declared sum that grew since would cancel the admissions made
// in between (docs/admission.md, "Why a ratio").
void Balancer::Shared::feed_measured_traffic(TimePoint now) {
  const std::optional<double> egress = poller->total_egress_mbps(now);
  const uint64_t readings = poller->egress_readings();
  if (readings == egress_readings_fed && egress.has_value() == measured_fed) return;
  egress_readings_fed = readings;
  measured_fed = egress.has_value();
  admission->set_measured_traffic_mbps(egress, now);
}

// Every second on the home loop: frees idle slots and drops stale tickets even
// when no request comes (so counts and memory stay current), passes on new
// egress readings, and publishes the source cache's size.
void Balancer::Shared::tick() {
  const auto now = clock.now();
  admission->tick(now, {});
  feed_measured_traffic(now);
  source_entries.store(sources->entries());
  sources_refreshing.store(sources->refreshing());
}

// Home loop: the parts of a config that the home loop's objects hold.
void Balancer::Shared::configure_home(const BalancerConfig& c) {
  admission->set_limits(c.admission, clock.now());
  sources->set_timings(c.playlists);
  keys->set_options(KeyStoreOptions{c.key_ttl, c.playlists.fetch_timeout, c.key_max_bytes});
  std::vector<HealthPollTarget> targets;
  for (const auto& cache : c.caches) targets.push_back({cache.id, cache.health_url});
  HealthPollOptions options;
  options.interval = c.health.interval;
  options.timeout = c.health.timeout;
  options.thresholds.up_after = c.health.up_after;
  options.thresholds.down_after = c.health.down_after;
  options.thresholds.stale_after = c.health.interval * (c.health.down_after + 1) + c.health.timeout;
  poller->configure(targets, options);
  register_gauges(c);
}

// ---- one loop ----

BalancerLoop::BalancerLoop(Balancer::Shared& shared, common::EventLoop& loop)
    : shared_(shared),
      loop_(loop),
      front_(loop, shared.context.home(), *shared.sources, shared.clock),
      config_(shared.config),
      health_(shared.health) {}

void BalancerLoop::attach(common::HttpServer& server) {
  // Viewer-facing answers (playlists, keys, the API, errors) carry CORS headers;
  // operator endpoints carry none, so no web page on another origin can read them.
  common::CorsRules cors;
  cors.allow_methods = "GET, HEAD, POST, DELETE, OPTIONS";
  cors.exempt_paths = {"/health", "/metrics", std::string(kSwitchPath), std::string(kSwitchAlias)};
  cors.exempt_prefixes = {"/admin/"};
  server.set_pre_route([this, cors](HttpExchange& ex) {
    return common::apply_cors(config_.get().config.cors, cors, ex);
  });
  server.route_prefix(std::string(kPlaylistPrefix), {"GET", "HEAD"}, [this](HttpExchange& ex) { handle_playlist(ex); });
  server.route_prefix(std::string(kKeyPrefix), {"GET", "HEAD"}, [this](HttpExchange& ex) { handle_key(ex); });
  server.route_prefix(std::string(kSteeringPrefix), {"GET", "HEAD"},
                      [this](HttpExchange& ex) { handle_steering(ex); });
  server.route("/health", {"GET", "HEAD"}, [this](HttpExchange& ex) { handle_health(ex); });
  server.route("/metrics", {"GET"}, [this](HttpExchange& ex) {
    ex.add_header("Cache-Control", "no-store");
    ex.reply(200, shared_.render_metrics(), "text/plain; version=0.0.4");
  });
  for (std::string_view path : {kSwitchPath, kSwitchAlias}) {
    server.route(std::string(path), {"GET"}, [this](HttpExchange& ex) { handle_switch(ex); });
  }
  server.route(std::string(kAdminStatusPath), {"GET", "HEAD"}, [this](HttpExchange& ex) { handle_admin_status(ex); });
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

void Balancer::attach(size_t index, common::HttpServer& server) {
  shared_->servers.push_back(&server);
  shared_->loops[index]->attach(server);
  shared_->api->attach(index, server);
}

void Balancer::stop_background() {
  shared_->sources->stop_refreshing();
  shared_->poller->stop();
}

// Prepare: everything fallible (keys, tickets, log level) is built into a new
// immutable snapshot here; the home loop's objects are touched only by the swap.
common::Result<common::ReloadSwap> Balancer::prepare_reload(BalancerConfig fresh) {
  Shared& s = *shared_;
  std::shared_ptr<const RuntimeConfig> running = s.config.load();
  const BalancerConfig& old = running->config;
  const bool server_differs =
      fresh.server.host != old.server.host || fresh.server.port != old.server.port ||
      fresh.server.threads != old.server.threads || fresh.server.max_header_bytes != old.server.max_header_bytes ||
      fresh.server.max_body_bytes != old.server.max_body_bytes || fresh.server.io_timeout_s != old.server.io_timeout_s;
  fresh.server = old.server;
  const bool backend_differs = fresh_backend_differs(old, fresh);
  fresh.admission_backend = old.admission_backend;
  fresh.admission_redis = old.admission_redis;
  auto rc = make_runtime(std::move(fresh), s.generation + 1);
  if (!rc) return rc.error();
  common::LogLevel level;
  common::parse_log_level((*rc)->config.log_level, level);  // make_runtime checked it
  return common::ReloadSwap([&s, running, next = std::move(rc).value(), level, server_differs, backend_differs] {
    const BalancerConfig& was = running->config;
    const BalancerConfig& c = next->config;
    if (server_differs) LOG_WARN(kLog, "reload: the listen address, threads and server limits change only on restart");
    if (backend_differs) {
      LOG_WARN(kLog, "reload: admission.backend and admission.redis.* change only on restart (running: ",
               was.admission_backend, ")");
    }
    ++s.generation;
    common::set_log_level(level);
    s.configure_home(c);
    s.api->reload(c.api);
    if (was.admission != c.admission) {
      LOG_INFO(kLog, "admission limits now ", describe(c.admission), " (were ", describe(was.admission),
               "); admitted viewers keep their slots");
    }
    s.config.publish(next);
  });
}

common::Result<std::unique_ptr<Balancer>> Balancer::create(common::ServiceContext& context,
                                                           const BalancerConfig& config) {
  auto rc = make_runtime(config, 1);
  if (!rc) return rc.error();
  auto shared = std::make_unique<Shared>(context, std::move(rc).value());
  Shared& s = *shared;
  common::LogLevel level;
  if (common::parse_log_level(config.log_level, level)) common::set_log_level(level);
  for (auto reason : {CacheChoice::Reason::requested, CacheChoice::Reason::same_site, CacheChoice::Reason::network,
                      CacheChoice::Reason::origin}) {
    s.choice_counters[static_cast<size_t>(reason)] =
        &s.metrics.counter("balancer_cache_choice_total", "Playlist responses by how the chunk destination was chosen",
                           std::string("reason=\"") + to_string(reason) + "\"");
  }
  common::HttpClientOptions client_options;
  client_options.connect_timeout = config.upstream_connect_timeout;
  client_options.request_timeout = config.playlists.blocking_timeout;
  client_options.http2 = config.upstream_http2;
  client_options.user_agent = "balancer";
  event_base& home = context.home().base();
  auto client = common::HttpClient::create(home, client_options);
  if (!client) return client.error();
  s.client = std::move(client).value();
  s.sources = std::make_unique<SourceCache>(home, *s.client, s.metrics, config.playlists, s.clock);
  s.keys = std::make_unique<KeyStore>(
      home, *s.client, s.metrics, KeyStoreOptions{config.key_ttl, config.playlists.fetch_timeout, config.key_max_bytes},
      s.clock);
  s.poller = std::make_unique<HealthPoller>(home, *s.client, s.metrics, s.clock);
  // Every poll result is published for the loops' cache choice.
  s.poller->on_update([&s] { s.health.publish(std::make_shared<const HealthView>(s.poller->snapshot())); });
  {
    std::lock_guard lock(s.status_mutex);
    s.refresh_snapshot(s.clock.now());
  }
  s.configure_home(config);
  for (common::EventLoop* loop : context.loops) s.loops.push_back(std::make_unique<BalancerLoop>(s, *loop));
  s.api_host = std::make_unique<ApiHost>(s);
  auto api = api::Api::create(context, config.api, *s.api_host);
  if (!api) return api.error();
  s.api = std::move(api).value();

  s.register_admission_metrics();
  s.metrics.gauge_fn("balancer_playlist_sources", "Source playlists held in memory",
                     [&s] { return double(s.source_entries.load()); });
  s.metrics.gauge_fn("balancer_playlist_sources_refreshing", "Live sources refreshed in the background",
                     [&s] { return double(s.sources_refreshing.load()); });
  s.metrics.gauge_fn("balancer_playlist_unsent_bytes",
                     "Bytes of playlist replies not yet written to their clients (bounded by playlists.max_unsent_bytes)",
                     [&s] { return double(s.unsent_playlist_bytes.load(std::memory_order_relaxed)); });
  s.metrics.gauge_fn("balancer_active_requests", "Requests in progress", [&s] { return double(s.active_requests()); });

  s.tick_timer.reset(event_new(
      &home, -1, EV_PERSIST, [](evutil_socket_t, short, void* arg) { static_cast<Shared*>(arg)->tick(); }, &s));
  timeval one_second{1, 0};
  evtimer_add(s.tick_timer.get(), &one_second);
  LOG_INFO(kLog, "serving ", config.channels.size(), " channel(s) with ", config.caches.size(), " cache node(s)",
           config.allow_anonymous ? "; anonymous viewers allowed on free channels" : "", "; admission ",
           describe(config.admission),
           config.admission_backend == "redis" ? common::str_cat(", shared through Redis at ", config.admission_redis.host, ":",
                                     config.admission_redis.port, " (prefix ", config.admission_redis.prefix, ")")
                   : std::string(", in this process"));
  return std::unique_ptr<Balancer>(new Balancer(std::move(shared)));
}

}  // namespace balancer

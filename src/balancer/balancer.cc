#include "balancer/balancer.h"

#include <ctime>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "balancer/cache_choice.h"
#include "balancer/health_poller.h"
#include "balancer/key_store.h"
#include "balancer/playlist_mapper.h"
#include "balancer/request_params.h"
#include "balancer/source_cache.h"
#include "balancer/viewer_tracker.h"
#include "common/http_client.h"
#include "common/json.h"
#include "common/log.h"
#include "common/playback_ticket.h"
#include "common/url_signing.h"

namespace balancer {

using common::HttpExchange;

namespace {

constexpr const char* kLog = "balancer";
constexpr size_t kMaxLearnedPerChannel = 4096;
constexpr std::string_view kPlaylistType = "application/vnd.apple.mpegurl";

int64_t unix_now() {
  return static_cast<int64_t>(time(nullptr));
}

std::vector<double> rewrite_buckets() {
  return {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
          0.001,   0.0025,   0.005,   0.01,   0.05,    0.25};
}

// Prometheus label values: escape backslash, quote and newline.
std::string label_value(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

// What the balancer learned a channel may fetch: its source, plus every playlist
// and key its parsed playlists link to on its origin. A viewer entitled to one
// channel can never make the balancer fetch (or sign) another channel's paths.
struct ChannelState {
  std::string origin;
  std::string source;
  std::unordered_set<std::string> playlists;
  std::unordered_set<std::string> keys;
  std::unordered_set<uint64_t> learned_serials;
  bool full_logged = false;
};

// A viewer's request in progress (waiting for origin).
struct Pending {
  explicit Pending(HttpExchange e) : ex(std::move(e)) {}
  HttpExchange ex;
  ViewerRequest request;
  std::shared_ptr<const BalancerConfig> config;
  const ChannelConfig* channel = nullptr;  // into *config
  std::string viewer_key;
};
using PendingPtr = std::shared_ptr<Pending>;

struct Balancer::Impl {
  Impl(event_base& b, BalancerConfig c)
      : base(b),
        config(std::make_shared<const BalancerConfig>(std::move(c))),
        requests_playlist(metrics.counter("balancer_requests_total", "Viewer requests by kind",
                                          "kind=\"playlist\"")),
        requests_key(
            metrics.counter("balancer_requests_total", "Viewer requests by kind", "kind=\"key\"")),
        rewrite_seconds(metrics.histogram("balancer_rewrite_seconds",
                                          "Time to render one viewer's copy of a playlist",
                                          rewrite_buckets())),
        reloads_ok(metrics.counter("balancer_config_reloads_total", "Config reloads by result",
                                   "result=\"ok\"")),
        reloads_rejected(metrics.counter("balancer_config_reloads_total",
                                         "Config reloads by result", "result=\"rejected\"")) {}

  // ---- helpers ----
  common::Counter& error_counter(const std::string& code) {
    return metrics.counter("balancer_errors_total", "Error replies by code",
                           "code=\"" + label_value(code) + "\"");
  }
  void fail(HttpExchange& ex, int status, const std::string& code, const std::string& message) {
    error_counter(code).inc();
    if (ex.closed()) return;
    ex.add_header("Cache-Control", "no-store");
    ex.add_header("Access-Control-Allow-Origin", "*");
    ex.reply_error(status, code, message);
  }
  ChannelState& channel_state(const ChannelConfig& channel);
  const ChannelConfig* find_channel(const BalancerConfig& c, const std::string& id) const;
  common::Result<std::string> authorize(const BalancerConfig& c, const ViewerRequest& request,
                                        const ChannelConfig& channel);
  void learn(const ChannelConfig& channel, const SourceVersion& version);
  SourceRequest source_request(const BalancerConfig& c, const ChannelConfig& channel,
                               const std::string& target, DeliveryDirectives directives = {}) const;
  void ensure_allowed(const PendingPtr& p, bool key, std::function<void(bool)> then);
  void ensure_key_learned(const PendingPtr& p, std::function<void(bool)> then);

  // ---- handlers ----
  void handle_playlist(HttpExchange& ex);
  void handle_key(HttpExchange& ex);
  void serve_playlist(const PendingPtr& p, const SourceResult& result);
  void handle_health(HttpExchange& ex);
  // Admission (DESIGN.md flow 4) plugs in here: one call before serving a
  // playlist. It answers 503 + Retry-After itself and returns false when the
  // viewer must wait. Until the admission issue wires AdmissionPolicy, everyone
  // is admitted.
  bool admit(const Pending& p) {
    (void)p;
    return true;
  }

  const std::vector<std::string>& chunk_links_for(const SourceVersion& version,
                                                  const BalancerConfig& c,
                                                  const ChannelConfig& channel,
                                                  const CacheConfig* cache);
  std::pair<const CacheConfig*, CacheChoice::Reason> choose(const BalancerConfig& c,
                                                            const std::string& requested,
                                                            const std::string& remote_ip,
                                                            const std::string& viewer_key);

  common::Status apply(BalancerConfig fresh, bool initial);
  void register_gauges(const BalancerConfig& c);
  void tick();

  event_base& base;
  std::shared_ptr<const BalancerConfig> config;
  common::MetricsRegistry metrics;
  std::unique_ptr<common::HttpServer> server;
  std::unique_ptr<common::HttpClient> client;
  std::unique_ptr<SourceCache> sources;
  std::unique_ptr<KeyStore> keys;
  std::unique_ptr<HealthPoller> health;
  std::optional<common::UrlSigner> signer;
  std::optional<common::PlaybackTickets> tickets;
  std::unordered_map<std::string, ChannelState> channels;
  ViewerTracker viewers;
  uint64_t generation = 1;  // bumps on every applied config (invalidates signed link memos)
  common::EventPtr tick_timer;
  std::set<std::string> gauges_channel, gauges_cache;
  common::LogRateLimiter log_limiter;

  common::Counter& requests_playlist;
  common::Counter& requests_key;
  common::Histogram& rewrite_seconds;
  common::Counter& reloads_ok;
  common::Counter& reloads_rejected;
  common::Counter* choice_counters[4] = {};
};

// ---- channels and entitlement ----

ChannelState& Balancer::Impl::channel_state(const ChannelConfig& channel) {
  ChannelState& st = channels[channel.id];
  if (st.origin != channel.origin || st.source != channel.source) {
    st = ChannelState{};
    st.origin = channel.origin;
    st.source = channel.source;
  }
  return st;
}

const ChannelConfig* Balancer::Impl::find_channel(const BalancerConfig& c,
                                                  const std::string& id) const {
  for (const auto& ch : c.channels) {
    if (ch.id == id) return &ch;
  }
  return nullptr;
}

common::Result<std::string> Balancer::Impl::authorize(const BalancerConfig& c,
                                                      const ViewerRequest& request,
                                                      const ChannelConfig& channel) {
  if (!request.ticket.empty()) {
    auto ticket = tickets->verify(request.ticket, channel.id, unix_now());
    if (!ticket) return ticket.error();
    return "t:" + ticket->viewer;
  }
  if (channel.free && c.allow_anonymous) {
    if (request.viewer.empty()) {
      return common::Error{"credentials_required",
                           "Pass a playback ticket (ticket=...) or, for this free channel, a "
                           "viewer id (viewer=...)."};
    }
    return "v:" + request.viewer;
  }
  return common::Error{"ticket_required",
                       channel.free ? "This channel needs a playback ticket (ticket=...)."
                                    : "This paid channel needs a playback ticket that grants it."};
}

void Balancer::Impl::learn(const ChannelConfig& channel, const SourceVersion& version) {
  ChannelState& st = channel_state(channel);
  if (!st.learned_serials.insert(version.serial).second) return;
  if (st.learned_serials.size() > 256) {
    st.learned_serials.clear();
    st.learned_serials.insert(version.serial);
  }
  for (const auto& slot : version.plan.slots) {
    std::unordered_set<std::string>* into = nullptr;
    if (slot.kind == SlotTarget::Kind::playlist) into = &st.playlists;
    if (slot.kind == SlotTarget::Kind::key) into = &st.keys;
    if (into == nullptr || into->count(slot.origin_target)) continue;
    if (into->size() >= kMaxLearnedPerChannel) {
      if (!st.full_logged)
        LOG_WARN(kLog, "channel ", channel.id,
                 ": too many distinct playlists/keys; not learning more");
      st.full_logged = true;
      continue;
    }
    into->insert(slot.origin_target);
  }
}

SourceRequest Balancer::Impl::source_request(const BalancerConfig& c, const ChannelConfig& channel,
                                             const std::string& target,
                                             DeliveryDirectives directives) const {
  SourceRequest r;
  r.origin_id = channel.origin;
  r.origin_base = c.origins.at(channel.origin).url;
  r.target = target;
  r.directives = std::move(directives);
  return r;
}

// Calls then(true) when the request's target may be fetched for its channel,
// learning from the channel's source first if needed.
void Balancer::Impl::ensure_allowed(const PendingPtr& p, bool key, std::function<void(bool)> then) {
  const std::string& target = p->request.origin_target;
  {
    ChannelState& st = channel_state(*p->channel);
    if (!key && target == p->channel->source) return then(true);
    if ((key ? st.keys : st.playlists).count(target)) return then(true);
  }
  sources->get(source_request(*p->config, *p->channel, p->channel->source),
               [this, p, key, then = std::move(then)](const SourceResult& r) {
                 if (r.version) learn(*p->channel, *r.version);
                 ChannelState& st = channel_state(*p->channel);
                 if ((key ? st.keys : st.playlists).count(p->request.origin_target))
                   return then(true);
                 if (!key) return then(false);
                 ensure_key_learned(p, then);
               });
}

// Keys are listed in media playlists: after a restart a viewer may ask for a key
// before anyone fetched its playlist here. Load the channel's playlists (shared,
// usually cached) and look again.
void Balancer::Impl::ensure_key_learned(const PendingPtr& p, std::function<void(bool)> then) {
  std::vector<std::string> targets;
  {
    ChannelState& st = channel_state(*p->channel);
    for (const auto& t : st.playlists) {
      if (targets.size() >= 32) break;
      targets.push_back(t);
    }
  }
  if (targets.empty()) return then(false);
  auto remaining = std::make_shared<size_t>(targets.size());
  auto done = std::make_shared<std::function<void(bool)>>(std::move(then));
  for (const auto& t : targets) {
    sources->get(source_request(*p->config, *p->channel, t),
                 [this, p, remaining, done](const SourceResult& r) {
                   if (r.version) learn(*p->channel, *r.version);
                   if (--*remaining > 0) return;
                   (*done)(channel_state(*p->channel).keys.count(p->request.origin_target) > 0);
                 });
  }
}

// ---- cache choice and links ----

std::pair<const CacheConfig*, CacheChoice::Reason> Balancer::Impl::choose(
    const BalancerConfig& c, const std::string& requested, const std::string& remote_ip,
    const std::string& viewer_key) {
  auto now = Clock::now();
  std::vector<CacheCandidate> candidates;
  candidates.reserve(c.caches.size());
  for (const auto& cache : c.caches) {
    const CacheHealth* h = health->health(cache.id);
    candidates.push_back({cache.id, cache.site, &cache.networks, h != nullptr && h->usable(now)});
  }
  CacheChoice choice =
      choose_cache(candidates, requested, IpAddress::parse(remote_ip), viewer_hash(viewer_key));
  choice_counters[static_cast<size_t>(choice.reason)]->inc();
  if (!choice.index) return {nullptr, choice.reason};
  return {&c.caches[*choice.index], choice.reason};
}

const std::vector<std::string>& Balancer::Impl::chunk_links_for(const SourceVersion& version,
                                                                const BalancerConfig& c,
                                                                const ChannelConfig& channel,
                                                                const CacheConfig* cache) {
  const std::string destination = cache ? cache->url : std::string();
  int64_t now = unix_now();
  ChunkLinkMemo& memo = version.chunk_links[destination];
  // Signed links are renewed every second, so each refresh carries a fresh expiry.
  if (memo.generation == generation && memo.computed_unix == now &&
      memo.links.size() == version.plan.chunk_slots) {
    return memo.links;
  }
  int64_t lifetime = c.chunk_url_lifetime.count();
  lifetime = std::max<int64_t>(
      lifetime,
      3 * std::chrono::duration_cast<std::chrono::seconds>(version.target_duration).count());
  if (version.kind == SourceKind::vod)
    lifetime += static_cast<int64_t>(version.total_duration_s) + 1;
  ChunkDestination d;
  d.cache_url = destination;
  d.origin_id = channel.origin;
  d.signer = signer ? &*signer : nullptr;
  d.expires_unix = now + lifetime;
  memo.links = chunk_links(version.playlist.tmpl, version.plan, d);
  memo.computed_unix = now;
  memo.generation = generation;
  return memo.links;
}

// ---- handlers ----

void Balancer::Impl::handle_playlist(HttpExchange& ex) {
  requests_playlist.inc();
  auto request = parse_viewer_request(ex.target(), kPlaylistPrefix);
  if (!request) return fail(ex, 400, request.error().code, request.error().message);
  std::shared_ptr<const BalancerConfig> snapshot = config;
  const ChannelConfig* channel = find_channel(*snapshot, request->channel);
  if (channel == nullptr)
    return fail(ex, 404, "unknown_channel", "No channel '" + request->channel + "' is configured.");
  auto viewer = authorize(*snapshot, *request, *channel);
  if (!viewer) {
    int status = viewer.error().code == "ticket_wrong_channel" ? 403 : 401;
    return fail(ex, status, viewer.error().code, viewer.error().message);
  }
  auto p = std::make_shared<Pending>(std::move(ex));
  p->request = std::move(request).value();
  p->config = std::move(snapshot);
  p->channel = channel;
  p->viewer_key = std::move(viewer).value();
  if (!admit(*p)) return;
  ensure_allowed(p, false, [this, p](bool allowed) {
    if (!allowed) {
      return fail(p->ex, 404, "not_found", "This channel has no playlist at that path.");
    }
    sources->get(
        source_request(*p->config, *p->channel, p->request.origin_target, p->request.directives),
        [this, p](const SourceResult& r) { serve_playlist(p, r); });
  });
}

void Balancer::Impl::serve_playlist(const PendingPtr& p, const SourceResult& r) {
  HttpExchange& ex = p->ex;
  if (r.from == SourceResult::From::error) return fail(ex, r.status, r.error.code, r.error.message);
  if (ex.closed()) return;
  const SourceVersion& version = *r.version;
  learn(*p->channel, version);
  auto started = Clock::now();
  auto [cache, reason] = choose(*p->config, p->request.cache, ex.remote_ip(), p->viewer_key);
  const std::vector<std::string>* links = nullptr;
  if (version.plan.chunk_slots > 0)
    links = &chunk_links_for(version, *p->config, *p->channel, cache);
  ViewerLinks viewer_links;
  viewer_links.balancer_base = p->config->public_url;
  viewer_links.channel = p->channel->id;
  viewer_links.viewer_query = p->request.viewer_query;
  viewer_links.chunk_links = links;
  std::string body = render_for_viewer(version.playlist.tmpl, version.plan, viewer_links);
  rewrite_seconds.observe(std::chrono::duration<double>(Clock::now() - started).count());
  viewers.seen(p->viewer_key, p->channel->id, cache ? cache->id : std::string(), started);
  ex.add_header("Cache-Control",
                version.kind == SourceKind::vod ? "private, max-age=5" : "private, no-cache");
  ex.add_header("Access-Control-Allow-Origin", "*");
  ex.add_header("X-Playlist-Source", to_string(r.from));
  ex.add_header("X-Cache-Choice", cache ? cache->id : "origin");
  ex.set_log_note(std::string(to_string(r.from)) + " " + (cache ? cache->id : "origin") + " " +
                  to_string(reason));
  ex.reply(200, body, kPlaylistType);
}

void Balancer::Impl::handle_key(HttpExchange& ex) {
  requests_key.inc();
  auto request = parse_viewer_request(ex.target(), kKeyPrefix);
  if (!request) return fail(ex, 400, request.error().code, request.error().message);
  std::shared_ptr<const BalancerConfig> snapshot = config;
  const ChannelConfig* channel = find_channel(*snapshot, request->channel);
  if (channel == nullptr)
    return fail(ex, 404, "unknown_channel", "No channel '" + request->channel + "' is configured.");
  auto viewer = authorize(*snapshot, *request, *channel);
  if (!viewer) {
    int status = viewer.error().code == "ticket_wrong_channel" ? 403 : 401;
    return fail(ex, status, viewer.error().code, viewer.error().message);
  }
  auto p = std::make_shared<Pending>(std::move(ex));
  p->request = std::move(request).value();
  p->config = std::move(snapshot);
  p->channel = channel;
  p->viewer_key = std::move(viewer).value();
  ensure_allowed(p, true, [this, p](bool allowed) {
    if (!allowed) return fail(p->ex, 404, "not_found", "This channel has no key at that path.");
    std::string url = p->config->origins.at(p->channel->origin).url + p->request.origin_target;
    keys->get(url, [this, p](const KeyResult& r) {
      HttpExchange& reply = p->ex;
      if (!r.key) return fail(reply, r.status, r.error.code, r.error.message);
      if (reply.closed()) return;
      reply.add_header("Cache-Control", "private, no-store");
      reply.add_header("Access-Control-Allow-Origin", "*");
      reply.reply(200, r.key->bytes, r.key->content_type);
    });
  });
}

void Balancer::Impl::handle_health(HttpExchange& ex) {
  auto now = Clock::now();
  const BalancerConfig& c = *config;
  std::string out = "{\"status\":";
  out += server->draining() ? "\"draining\"" : "\"ok\"";
  out += ",\"channels\":" + std::to_string(c.channels.size());
  out += ",\"viewers\":" + std::to_string(viewers.total());
  out += ",\"sources\":" + std::to_string(sources->entries());
  out += ",\"refreshing\":" + std::to_string(sources->refreshing());
  out += ",\"caches\":[";
  bool first = true;
  for (const auto& cache : c.caches) {
    const CacheHealth* h = health->health(cache.id);
    if (!first) out += ",";
    first = false;
    out +=
        "{\"id\":" + common::json_string(cache.id) + ",\"site\":" + common::json_string(cache.site);
    out += ",\"state\":\"";
    out += h ? to_string(h->state()) : "unknown";
    out += "\",\"overloaded\":";
    out += h && h->overloaded() ? "true" : "false";
    out += ",\"usable\":";
    out += h && h->usable(now) ? "true" : "false";
    out += ",\"viewers\":" + std::to_string(viewers.on_cache(cache.id));
    if (h && !h->last_error().empty())
      out += ",\"last_error\":" + common::json_string(h->last_error());
    out += "}";
  }
  out += "]}\n";
  ex.add_header("Cache-Control", "no-store");
  ex.reply(200, out);
}

// ---- config ----

void Balancer::Impl::register_gauges(const BalancerConfig& c) {
  for (const auto& ch : c.channels) {
    if (!gauges_channel.insert(ch.id).second) continue;
    std::string id = ch.id;
    metrics.gauge_fn(
        "balancer_viewers", "Active viewers per channel",
        [this, id] { return static_cast<double>(viewers.on_channel(id)); },
        "channel=\"" + label_value(id) + "\"");
  }
  auto cache_gauge = [&](const std::string& id, const std::string& label) {
    if (!gauges_cache.insert(id).second) return;
    metrics.gauge_fn(
        "balancer_viewers_by_cache", "Active viewers per chunk destination (cache id or origin)",
        [this, id] { return static_cast<double>(viewers.on_cache(id)); },
        "cache=\"" + label_value(label) + "\"");
  };
  cache_gauge("", "origin");
  for (const auto& cache : c.caches) cache_gauge(cache.id, cache.id);
}

common::Status Balancer::Impl::apply(BalancerConfig fresh, bool initial) {
  auto new_signer = common::UrlSigner::create(fresh.signing_keys);
  if (!new_signer) return new_signer.error();
  auto new_tickets = common::PlaybackTickets::create(fresh.ticket_keys);
  if (!new_tickets) return new_tickets.error();
  common::LogLevel level;
  if (!common::parse_log_level(fresh.log_level, level)) {
    return common::Error{"bad_config", "log.level: unknown level " + fresh.log_level};
  }
  if (!initial) {
    const BalancerConfig& old = *config;
    if (fresh.server.host != old.server.host || fresh.server.port != old.server.port ||
        fresh.server.max_header_bytes != old.server.max_header_bytes ||
        fresh.server.max_body_bytes != old.server.max_body_bytes ||
        fresh.server.io_timeout_s != old.server.io_timeout_s) {
      LOG_WARN(kLog, "reload: the listen address and server limits change only on restart");
    }
    fresh.server = old.server;
  }
  common::set_log_level(level);
  signer = std::move(new_signer).value();
  tickets = std::move(new_tickets).value();
  config = std::make_shared<const BalancerConfig>(std::move(fresh));
  ++generation;
  const BalancerConfig& c = *config;
  // Forget what removed channels learned; changed channels reset in channel_state().
  for (auto it = channels.begin(); it != channels.end();) {
    it = find_channel(c, it->first) == nullptr ? channels.erase(it) : std::next(it);
  }
  viewers.set_idle(c.viewer_idle);
  if (sources) sources->set_timings(c.playlists);
  if (keys)
    keys->set_options(KeyStoreOptions{c.key_ttl, c.playlists.fetch_timeout, c.key_max_bytes});
  if (health) {
    std::vector<HealthPollTarget> targets;
    for (const auto& cache : c.caches) targets.push_back({cache.id, cache.health_url});
    HealthPollOptions options;
    options.interval = c.health.interval;
    options.timeout = c.health.timeout;
    options.thresholds.up_after = c.health.up_after;
    options.thresholds.down_after = c.health.down_after;
    options.thresholds.stale_after =
        c.health.interval * (c.health.down_after + 1) + c.health.timeout;
    health->configure(targets, options);
  }
  register_gauges(c);
  return {};
}

void Balancer::Impl::tick() {
  viewers.expire(Clock::now());
}

// ---- Balancer ----

Balancer::Balancer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Balancer::~Balancer() = default;
uint16_t Balancer::port() const {
  return impl_->server->port();
}

void Balancer::drain(std::function<void()> on_drained) {
  impl_->sources->stop_refreshing();
  impl_->health->stop();
  impl_->server->drain(std::move(on_drained));
}

void Balancer::reload(common::Result<BalancerConfig> fresh) {
  Impl& impl = *impl_;
  if (!fresh) {
    impl.reloads_rejected.inc();
    LOG_ERROR(kLog, "reload rejected, keeping the running config: ", fresh.error().message);
    return;
  }
  auto status = impl.apply(std::move(fresh).value(), false);
  if (!status) {
    impl.reloads_rejected.inc();
    LOG_ERROR(kLog, "reload rejected, keeping the running config: ", status.error().message);
    return;
  }
  impl.reloads_ok.inc();
  LOG_INFO(kLog, "configuration reloaded: ", impl.config->channels.size(), " channel(s), ",
           impl.config->caches.size(), " cache node(s)");
}

common::Result<std::unique_ptr<Balancer>> Balancer::create(event_base& base,
                                                           BalancerConfig config) {
  auto impl = std::make_unique<Impl>(base, BalancerConfig{});
  Impl& b = *impl;
  for (auto reason : {CacheChoice::Reason::requested, CacheChoice::Reason::same_site,
                      CacheChoice::Reason::network, CacheChoice::Reason::origin}) {
    b.choice_counters[static_cast<size_t>(reason)] = &b.metrics.counter(
        "balancer_cache_choice_total", "Playlist responses by how the chunk destination was chosen",
        std::string("reason=\"") + to_string(reason) + "\"");
  }
  common::HttpClientOptions client_options;
  client_options.connect_timeout = config.upstream_connect_timeout;
  client_options.request_timeout = config.playlists.blocking_timeout;
  client_options.http2 = config.upstream_http2;
  client_options.user_agent = "balancer";
  auto client = common::HttpClient::create(base, client_options);
  if (!client) return client.error();
  b.client = std::move(client).value();
  auto server = common::HttpServer::create(base, config.server, b.metrics);
  if (!server) return server.error();
  b.server = std::move(server).value();
  b.sources = std::make_unique<SourceCache>(base, *b.client, b.metrics, config.playlists);
  b.keys = std::make_unique<KeyStore>(
      base, *b.client, b.metrics,
      KeyStoreOptions{config.key_ttl, config.playlists.fetch_timeout, config.key_max_bytes});
  b.health = std::make_unique<HealthPoller>(base, *b.client, b.metrics);
  auto applied = b.apply(std::move(config), true);
  if (!applied) return applied.error();

  b.server->route_prefix(std::string(kPlaylistPrefix), {"GET", "HEAD"},
                         [&b](HttpExchange& ex) { b.handle_playlist(ex); });
  b.server->route_prefix(std::string(kKeyPrefix), {"GET", "HEAD"},
                         [&b](HttpExchange& ex) { b.handle_key(ex); });
  b.server->route("/health", {"GET", "HEAD"}, [&b](HttpExchange& ex) { b.handle_health(ex); });
  b.server->route("/metrics", {"GET"}, [&b](HttpExchange& ex) {
    ex.add_header("Cache-Control", "no-store");
    ex.reply(200, b.metrics.render(), "text/plain; version=0.0.4");
  });
  b.metrics.gauge_fn("balancer_viewers_total", "Active viewers",
                     [&b] { return double(b.viewers.total()); });
  b.metrics.gauge_fn("balancer_playlist_sources", "Source playlists held in memory",
                     [&b] { return double(b.sources->entries()); });
  b.metrics.gauge_fn("balancer_playlist_sources_refreshing",
                     "Live sources refreshed in the background",
                     [&b] { return double(b.sources->refreshing()); });
  b.metrics.gauge_fn("balancer_active_requests", "Requests in progress",
                     [&b] { return double(b.server->active_requests()); });

  b.tick_timer.reset(event_new(
      &base, -1, EV_PERSIST,
      [](evutil_socket_t, short, void* arg) { static_cast<Impl*>(arg)->tick(); }, &b));
  timeval five_seconds{5, 0};
  evtimer_add(b.tick_timer.get(), &five_seconds);
  LOG_INFO(kLog, "serving ", b.config->channels.size(), " channel(s) with ",
           b.config->caches.size(), " cache node(s)",
           b.config->allow_anonymous ? "; anonymous viewers allowed on free channels" : "");
  return std::unique_ptr<Balancer>(new Balancer(std::move(impl)));
}

}  // namespace balancer

#include "balancer/balancer.h"

#include <ctime>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "balancer/admission_http.h"
#include "balancer/cache_choice.h"
#include "balancer/health_poller.h"
#include "balancer/key_store.h"
#include "balancer/playlist_mapper.h"
#include "balancer/request_params.h"
#include "balancer/source_cache.h"
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
constexpr std::string_view kAccessPath = "/api/v1/access";
// The operator switch: the path the existing app and test plans use (sic), and its alias.
constexpr std::string_view kSwitchPath = "/access_queue_swith";
constexpr std::string_view kSwitchAlias = "/access_queue_switch";
constexpr std::string_view kAdminStatusPath = "/admin/status";

int64_t unix_now() {
  return static_cast<int64_t>(time(nullptr));
}

// Group `name` in a status snapshot, or null when it has no active viewers.
const AdmissionGroupCount* find_group(const std::vector<AdmissionGroupCount>& groups,
                                      const std::string& name) {
  for (const auto& g : groups) {
    if (g.name == name) return &g;
  }
  return nullptr;
}

// Brings a registry counter up to a monotonic count kept elsewhere (the policy's counters).
void sync_counter(common::Counter& counter, uint64_t value) {
  if (value > counter.value()) counter.inc(value - counter.value());
}

std::string describe(const AdmissionLimits& l) {
  auto s = [](Duration d) { return std::chrono::duration<double>(d).count(); };
  return common::str_cat(
      "max_streams=", l.max_streams, " max_traffic_mbps=", l.max_traffic_mbps,
      " idle_timeout_s=", s(l.idle_timeout), " ticket_grace_s=", s(l.ticket_grace),
      " head_reservation_s=", s(l.head_reservation), " retry_after_s=", s(l.retry_after));
}

bool same_limits(const AdmissionLimits& a, const AdmissionLimits& b) {
  return a.max_streams == b.max_streams && a.max_traffic_mbps == b.max_traffic_mbps &&
         a.idle_timeout == b.idle_timeout && a.ticket_grace == b.ticket_grace &&
         a.head_reservation == b.head_reservation && a.retry_after == b.retry_after;
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
  // BANDWIDTH of each variant (EXT-X-STREAM-INF) of the channel's masters, by target.
  std::unordered_map<std::string, uint64_t> variant_bandwidth;
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
  // Set by admit(): what the admission policy was told about this request.
  std::string cache_id;  // "" = origin
  uint64_t bandwidth_bps = 0;
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
                                         "Config reloads by result", "result=\"rejected\"")),
        playlist_admitted(admission_counter("playlist", "admitted")),
        playlist_queued(admission_counter("playlist", "queued")),
        access_admitted(admission_counter("access", "admitted")),
        access_queued(admission_counter("access", "queued")),
        emulation_switches(metrics.counter("balancer_overload_switches_total",
                                           "Overload emulation switched on or off by an operator")),
        admitted_direct(metrics.counter("balancer_admissions_total",
                                        "Viewers admitted, directly or from the queue",
                                        "from=\"direct\"")),
        admitted_from_queue(metrics.counter("balancer_admissions_total",
                                            "Viewers admitted, directly or from the queue",
                                            "from=\"queue\"")),
        tickets_issued(metrics.counter("balancer_queue_tickets_issued_total",
                                       "Queue tickets given to viewers who must wait")),
        tickets_not_renewed(metrics.counter("balancer_queue_tickets_dropped_total",
                                            "Queue tickets dropped", "reason=\"not_renewed\"")),
        tickets_lapsed(metrics.counter("balancer_queue_tickets_dropped_total",
                                       "Queue tickets dropped", "reason=\"reservation_lapsed\"")),
        slots_expired(metrics.counter("balancer_slots_expired_total",
                                      "Stream slots freed because their viewer went idle")),
        released(metrics.counter("balancer_admission_released_total",
                                 "Slots or tickets given back explicitly")) {}

  // ---- helpers ----
  common::Counter& admission_counter(const char* endpoint, const char* result) {
    return metrics.counter("balancer_admission_requests_total",
                           "Admission decisions answered, by endpoint and result",
                           std::string("endpoint=\"") + endpoint + "\",result=\"" + result + "\"");
  }
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
  PendingPtr begin_viewer_request(HttpExchange& ex, std::string_view prefix);
  void handle_playlist(HttpExchange& ex);
  void handle_key(HttpExchange& ex);
  void serve_playlist(const PendingPtr& p, const SourceResult& result);
  void handle_health(HttpExchange& ex);
  // Admission (DESIGN.md flow 4): one call per playlist request, once the target
  // is known to belong to the channel. Tells the policy the viewer's channel,
  // cache and variant BANDWIDTH; answers 503 + Retry-After + the queue JSON
  // itself and returns false when the viewer must wait.
  bool admit(Pending& p);
  uint64_t variant_bandwidth(const ChannelConfig& channel, const std::string& target);
  void handle_access(HttpExchange& ex);
  // Operator endpoints. operator_access() answers 401/403 itself and returns
  // nullopt, or returns how the caller was let in ("operator key", "loopback").
  std::optional<std::string> operator_access(HttpExchange& ex);
  void handle_switch(HttpExchange& ex);
  void handle_admin_status(HttpExchange& ex);
  // Re-reads the policy's status for /metrics and /health (one snapshot per render).
  void refresh_snapshot(TimePoint now);
  void feed_measured_traffic(TimePoint now);
  void register_admission_metrics();

  const std::vector<std::string>& chunk_links_for(const SourceVersion& version,
                                                  const BalancerConfig& c,
                                                  const ChannelConfig& channel,
                                                  const CacheConfig* cache);
  // Where this viewer's chunk links lead now (no counting: serve_playlist counts
  // the choice it renders with).
  std::pair<const CacheConfig*, CacheChoice::Reason> choose(const BalancerConfig& c,
                                                            const std::string& requested,
                                                            const std::string& remote_ip,
                                                            const std::string& viewer_key,
                                                            TimePoint now);

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
  // Slots, limits and the queue: the only per-viewer state (docs/admission.md).
  std::unique_ptr<AdmissionPolicy> admission;
  bool emulation = false;           // the operator switch; runtime state, off at start
  AdmissionStatus status_snapshot;  // see refresh_snapshot()
  uint64_t egress_readings_fed = 0;
  bool measured_fed = false;
  uint64_t generation = 1;  // bumps on every applied config (invalidates signed link memos)
  common::EventPtr tick_timer;
  std::set<std::string> gauges_channel, gauges_cache;
  common::LogRateLimiter log_limiter;

  common::Counter& requests_playlist;
  common::Counter& requests_key;
  common::Histogram& rewrite_seconds;
  common::Counter& reloads_ok;
  common::Counter& reloads_rejected;
  common::Counter& playlist_admitted;
  common::Counter& playlist_queued;
  common::Counter& access_admitted;
  common::Counter& access_queued;
  common::Counter& emulation_switches;
  common::Counter& admitted_direct;
  common::Counter& admitted_from_queue;
  common::Counter& tickets_issued;
  common::Counter& tickets_not_renewed;
  common::Counter& tickets_lapsed;
  common::Counter& slots_expired;
  common::Counter& released;
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
  // What each variant costs, for the traffic estimate. I-frame and image
  // playlists are fetched beside a variant, not instead of one: not counted.
  if (version.playlist.kind != hls::PlaylistKind::master) return;
  for (const auto& variant : version.playlist.master.variants) {
    if (variant.kind != hls::Variant::Kind::stream || !variant.uri_slot || !variant.bandwidth)
      continue;
    if (*variant.uri_slot >= version.plan.slots.size()) continue;
    const SlotTarget& slot = version.plan.slots[*variant.uri_slot];
    if (slot.kind != SlotTarget::Kind::playlist) continue;
    if (st.variant_bandwidth.size() >= kMaxLearnedPerChannel &&
        !st.variant_bandwidth.count(slot.origin_target))
      continue;
    st.variant_bandwidth[slot.origin_target] = *variant.bandwidth;
  }
}

uint64_t Balancer::Impl::variant_bandwidth(const ChannelConfig& channel,
                                           const std::string& target) {
  const ChannelState& st = channel_state(channel);
  auto it = st.variant_bandwidth.find(target);
  return it == st.variant_bandwidth.end() ? 0 : it->second;
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
    const std::string& viewer_key, TimePoint now) {
  std::vector<CacheCandidate> candidates;
  candidates.reserve(c.caches.size());
  for (const auto& cache : c.caches) {
    const CacheHealth* h = health->health(cache.id);
    candidates.push_back({cache.id, cache.site, &cache.networks, h != nullptr && h->usable(now)});
  }
  CacheChoice choice =
      choose_cache(candidates, requested, IpAddress::parse(remote_ip), viewer_hash(viewer_key));
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

// Parses the viewer's request, finds the channel and checks the viewer may watch
// it; answers the error itself and returns null when any of that fails.
PendingPtr Balancer::Impl::begin_viewer_request(HttpExchange& ex, std::string_view prefix) {
  auto request = parse_viewer_request(ex.target(), prefix);
  if (!request) {
    fail(ex, 400, request.error().code, request.error().message);
    return nullptr;
  }
  std::shared_ptr<const BalancerConfig> snapshot = config;
  const ChannelConfig* channel = find_channel(*snapshot, request->channel);
  if (channel == nullptr) {
    fail(ex, 404, "unknown_channel", "No channel '" + request->channel + "' is configured.");
    return nullptr;
  }
  auto viewer = authorize(*snapshot, *request, *channel);
  if (!viewer) {
    int status = viewer.error().code == "ticket_wrong_channel" ? 403 : 401;
    fail(ex, status, viewer.error().code, viewer.error().message);
    return nullptr;
  }
  auto p = std::make_shared<Pending>(std::move(ex));
  p->request = std::move(request).value();
  p->config = std::move(snapshot);
  p->channel = channel;
  p->viewer_key = std::move(viewer).value();
  return p;
}

void Balancer::Impl::handle_playlist(HttpExchange& ex) {
  requests_playlist.inc();
  PendingPtr p = begin_viewer_request(ex, kPlaylistPrefix);
  if (!p) return;
  ensure_allowed(p, false, [this, p](bool allowed) {
    if (!allowed) {
      return fail(p->ex, 404, "not_found", "This channel has no playlist at that path.");
    }
    if (!admit(*p)) return;
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
  auto [cache, reason] =
      choose(*p->config, p->request.cache, ex.remote_ip(), p->viewer_key, started);
  choice_counters[static_cast<size_t>(reason)]->inc();
  if (const std::string& cache_id = cache ? cache->id : std::string(); cache_id != p->cache_id) {
    // A node's health changed while origin answered: the viewer's slot follows its chunks (an
    // admitted viewer keeps its one slot; this response was admitted when it arrived).
    (void)admission->request(p->viewer_key, {p->channel->id, cache_id, p->bandwidth_bps}, started);
  }
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
  PendingPtr p = begin_viewer_request(ex, kKeyPrefix);
  if (!p) return;
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

// ---- admission ----

bool Balancer::Impl::admit(Pending& p) {
  const auto now = Clock::now();
  const CacheConfig* cache =
      choose(*p.config, p.request.cache, p.ex.remote_ip(), p.viewer_key, now).first;
  p.cache_id = cache ? cache->id : std::string();
  p.bandwidth_bps = variant_bandwidth(*p.channel, p.request.origin_target);
  const AdmissionDecision d =
      admission->request(p.viewer_key, {p.channel->id, p.cache_id, p.bandwidth_bps}, now);
  switch (d.kind) {
    case AdmissionDecision::Kind::kAdmitted:
      playlist_admitted.inc();
      return true;
    case AdmissionDecision::Kind::kQueued:
      playlist_queued.inc();
      error_counter("queued").inc();
      p.ex.set_log_note("queued #" + std::to_string(d.position));
      send_reply(p.ex, queued_reply(d));
      return false;
    case AdmissionDecision::Kind::kBadViewerKey:
      break;
  }
  fail(p.ex, 400, "bad_viewer", "The ticket or viewer id cannot identify a viewer.");
  return false;
}

// GET /api/v1/access?channel=<id>&ticket=..|viewer=..: the same credentials and
// the same decision as a playlist request, through AdmissionGate only.
void Balancer::Impl::handle_access(HttpExchange& ex) {
  const std::optional<std::string> channel_id = ex.query_param("channel");
  if (!channel_id || channel_id->empty()) {
    return fail(ex, 400, "bad_request",
                "Pass the channel: /api/v1/access?channel=<id>&ticket=... (or viewer=...).");
  }
  std::shared_ptr<const BalancerConfig> snapshot = config;
  const ChannelConfig* channel = find_channel(*snapshot, *channel_id);
  if (channel == nullptr)
    return fail(ex, 404, "unknown_channel", "No channel '" + *channel_id + "' is configured.");
  ViewerRequest credentials;
  credentials.ticket = ex.query_param("ticket").value_or("");
  credentials.viewer = ex.query_param("viewer").value_or("");
  if (!credentials.viewer.empty() && !common::valid_viewer_id(credentials.viewer)) {
    return fail(ex, 400, "bad_request",
                "The viewer id must be 1 to 128 printable characters without spaces.");
  }
  auto viewer = authorize(*snapshot, credentials, *channel);
  if (!viewer) {
    int status = viewer.error().code == "ticket_wrong_channel" ? 403 : 401;
    return fail(ex, status, viewer.error().code, viewer.error().message);
  }
  const Reply reply = access_reply(*admission, *viewer, channel->id, Clock::now());
  if (reply.status == 200) {
    access_admitted.inc();
  } else {
    if (reply.status == 503) access_queued.inc();
    error_counter(reply.status == 503 ? "queued" : "bad_viewer").inc();
  }
  send_reply(ex, reply);
}

std::optional<std::string> Balancer::Impl::operator_access(HttpExchange& ex) {
  std::optional<std::string> key = ex.header("X-Operator-Key");
  if (!key) key = ex.query_param("key");
  const BalancerConfig& c = *config;
  OperatorAccess access =
      authorize_operator({c.operator_key, c.operator_allow_loopback}, key, ex.remote_ip());
  if (access.allowed) return std::move(access.via);
  const std::string& code = access.code;
  error_counter(code).inc();
  if (log_limiter.allow("operator_denied", Clock::now())) {
    LOG_WARN(kLog, "operator request ", ex.path(), " from ", ex.remote_ip(), " refused (", code,
             ")");
  }
  send_reply(ex, access.denial);
  return std::nullopt;
}

// GET /access_queue_swith (toggle) and /access_queue_switch[?state=on|off].
void Balancer::Impl::handle_switch(HttpExchange& ex) {
  const std::optional<std::string> via = operator_access(ex);
  if (!via) return;
  const SwitchState state = parse_switch_state(ex.query());
  if (!state.valid) {
    error_counter("bad_request").inc();
    Reply bad = error_reply(400, "bad_request",
                            "state must be on or off (or left out, to toggle overload emulation).");
    bad.cross_origin = false;
    return send_reply(ex, bad);
  }
  const bool on = state.present ? state.on : !emulation;
  const bool changed = on != emulation;
  if (changed) {
    emulation = on;
    admission->set_emulation(on, Clock::now());
    emulation_switches.inc();
    LOG_WARN(kLog, "overload emulation switched ", on ? "ON" : "OFF", " by ", ex.remote_ip(), " (",
             *via, ", ", ex.path(), ")");
  } else {
    LOG_INFO(kLog, "overload emulation stays ", on ? "on" : "off", ": asked by ", ex.remote_ip(),
             " (", *via, ", ", ex.path(), ")");
  }
  send_reply(ex, switch_reply(on, changed));
}

void Balancer::Impl::handle_admin_status(HttpExchange& ex) {
  if (!operator_access(ex)) return;
  send_reply(ex, admin_status_reply(admission->status(Clock::now())));
}

void Balancer::Impl::refresh_snapshot(TimePoint now) {
  status_snapshot = admission->status(now);
  const AdmissionCounters& c = status_snapshot.counters;
  sync_counter(admitted_direct, c.admitted - c.admitted_from_queue);
  sync_counter(admitted_from_queue, c.admitted_from_queue);
  sync_counter(tickets_issued, c.tickets_issued);
  sync_counter(tickets_not_renewed, c.tickets_expired);
  sync_counter(tickets_lapsed, c.reservations_lapsed);
  sync_counter(slots_expired, c.slots_expired);
  sync_counter(released, c.released);
}

// The cache nodes' measured egress corrects the BANDWIDTH-based estimate. Only
// a new reading (or the readings going stale) is passed on: dividing an old
// reading by a declared sum that grew since would cancel the admissions made
// in between (docs/admission.md, "Why a ratio").
void Balancer::Impl::feed_measured_traffic(TimePoint now) {
  const std::optional<double> egress = health->total_egress_mbps(now);
  const uint64_t readings = health->egress_readings();
  if (readings == egress_readings_fed && egress.has_value() == measured_fed) return;
  egress_readings_fed = readings;
  measured_fed = egress.has_value();
  admission->set_measured_traffic_mbps(egress, now);
}

void Balancer::Impl::register_admission_metrics() {
  auto gauge = [this](const char* name, const char* help, auto fn) {
    metrics.gauge_fn(name, help, [this, fn] { return static_cast<double>(fn(status_snapshot)); });
  };
  using S = const AdmissionStatus&;
  gauge("balancer_viewers_total", "Active viewers (holding a stream slot)",
        [](S s) { return s.active_viewers; });
  gauge("balancer_queue_length", "Viewers waiting in the queue",
        [](S s) { return s.queued_viewers; });
  gauge("balancer_queue_reserved_slots", "Freed slots held for the head of the queue",
        [](S s) { return s.reserved_slots; });
  gauge("balancer_queue_head_wait_seconds", "How long the head of the queue has waited",
        [](S s) { return s.head_waited.count(); });
  gauge("balancer_queue_next_wait_seconds", "Estimated wait of a viewer arriving now",
        [](S s) { return s.next_wait.count(); });
  gauge("balancer_slot_free_rate", "Observed stream slots freed per second",
        [](S s) { return s.slot_free_rate_per_s; });
  gauge("balancer_traffic_declared_mbps", "Sum of the active viewers' variant BANDWIDTH, Mbit/s",
        [](S s) { return s.declared_mbps; });
  gauge("balancer_traffic_estimate_mbps", "Traffic estimate (declared x correction), Mbit/s",
        [](S s) { return s.traffic_estimate_mbps; });
  gauge("balancer_traffic_correction", "Measured cache egress / declared, in [0.25, 4]",
        [](S s) { return s.correction; });
  gauge("balancer_traffic_measured_cache_mbps",
        "Egress the cache nodes reported, Mbit/s (0 without a fresh reading)",
        [](S s) { return s.measured_cache_mbps.value_or(0); });
  gauge("balancer_limit_max_streams", "limits.max_streams (0 = unlimited)",
        [](S s) { return s.limits.max_streams; });
  gauge("balancer_limit_max_traffic_mbps", "limits.max_traffic_mbps (0 = unlimited)",
        [](S s) { return s.limits.max_traffic_mbps; });
  gauge("balancer_overload_emulation", "1 while overload emulation is on",
        [](S s) { return s.emulation ? 1 : 0; });
}

void Balancer::Impl::handle_health(HttpExchange& ex) {
  auto now = Clock::now();
  refresh_snapshot(now);
  const BalancerConfig& c = *config;
  std::string out = "{\"status\":";
  out += server->draining() ? "\"draining\"" : "\"ok\"";
  out += ",\"channels\":" + std::to_string(c.channels.size());
  out += ",\"viewers\":" + std::to_string(status_snapshot.active_viewers);
  out += ",\"queued\":" + std::to_string(status_snapshot.queued_viewers);
  out += ",\"emulation\":";
  out += status_snapshot.emulation ? "true" : "false";
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
    const AdmissionGroupCount* on_cache = find_group(status_snapshot.caches, cache.id);
    out += ",\"viewers\":" + std::to_string(on_cache ? on_cache->active_viewers : 0);
    if (h && !h->last_error().empty())
      out += ",\"last_error\":" + common::json_string(h->last_error());
    out += "}";
  }
  out += "]}\n";
  ex.add_header("Cache-Control", "no-store");
  ex.reply(200, out);
}

// ---- config ----

// Per-channel and per-cache series for every id ever configured (removed ones
// read 0), from the snapshot refresh_snapshot() takes before each render.
void Balancer::Impl::register_gauges(const BalancerConfig& c) {
  for (const auto& ch : c.channels) {
    if (!gauges_channel.insert(ch.id).second) continue;
    std::string id = ch.id;
    const std::string label = "channel=\"" + label_value(id) + "\"";
    metrics.gauge_fn(
        "balancer_viewers", "Active viewers per channel",
        [this, id] {
          const AdmissionGroupCount* g = find_group(status_snapshot.channels, id);
          return g ? static_cast<double>(g->active_viewers) : 0.0;
        },
        label);
    metrics.gauge_fn(
        "balancer_traffic_declared_mbps_by_channel", "Declared traffic per channel, Mbit/s",
        [this, id] {
          const AdmissionGroupCount* g = find_group(status_snapshot.channels, id);
          return g ? g->declared_mbps : 0.0;
        },
        label);
  }
  auto cache_gauge = [&](const std::string& id, const std::string& label) {
    if (!gauges_cache.insert(id).second) return;
    metrics.gauge_fn(
        "balancer_viewers_by_cache", "Active viewers per chunk destination (cache id or origin)",
        [this, id] {
          if (id.empty()) return static_cast<double>(status_snapshot.origin_viewers);
          const AdmissionGroupCount* g = find_group(status_snapshot.caches, id);
          return g ? static_cast<double>(g->active_viewers) : 0.0;
        },
        "cache=\"" + label_value(label) + "\"");
    if (id.empty()) return;
    metrics.gauge_fn(
        "balancer_traffic_declared_mbps_by_cache", "Declared traffic per cache node, Mbit/s",
        [this, id] {
          const AdmissionGroupCount* g = find_group(status_snapshot.caches, id);
          return g ? g->declared_mbps : 0.0;
        },
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
  if (admission) admission->set_limits(c.admission, Clock::now());
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

// Every second: frees idle slots and drops stale tickets even when no request
// comes (so counts and memory stay current), and passes on new egress readings.
void Balancer::Impl::tick() {
  const auto now = Clock::now();
  admission->expire(now);
  feed_measured_traffic(now);
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

AdmissionGate& Balancer::admission_gate() {
  return *impl_->admission;
}

void Balancer::reload(common::Result<BalancerConfig> fresh) {
  Impl& impl = *impl_;
  if (!fresh) {
    impl.reloads_rejected.inc();
    LOG_ERROR(kLog, "reload rejected, keeping the running config: ", fresh.error().message);
    return;
  }
  const AdmissionLimits before = impl.config->admission;
  auto status = impl.apply(std::move(fresh).value(), false);
  if (!status) {
    impl.reloads_rejected.inc();
    LOG_ERROR(kLog, "reload rejected, keeping the running config: ", status.error().message);
    return;
  }
  impl.reloads_ok.inc();
  LOG_INFO(kLog, "configuration reloaded: ", impl.config->channels.size(), " channel(s), ",
           impl.config->caches.size(), " cache node(s)");
  if (!same_limits(before, impl.config->admission)) {
    LOG_INFO(kLog, "admission limits now ", describe(impl.config->admission), " (were ",
             describe(before), "); admitted viewers keep their slots");
  }
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
  b.admission = std::make_unique<AdmissionPolicy>(config.admission);
  b.status_snapshot = b.admission->status(Clock::now());
  auto applied = b.apply(std::move(config), true);
  if (!applied) return applied.error();

  b.server->route_prefix(std::string(kPlaylistPrefix), {"GET", "HEAD"},
                         [&b](HttpExchange& ex) { b.handle_playlist(ex); });
  b.server->route_prefix(std::string(kKeyPrefix), {"GET", "HEAD"},
                         [&b](HttpExchange& ex) { b.handle_key(ex); });
  b.server->route("/health", {"GET", "HEAD"}, [&b](HttpExchange& ex) { b.handle_health(ex); });
  b.server->route("/metrics", {"GET"}, [&b](HttpExchange& ex) {
    b.refresh_snapshot(Clock::now());
    ex.add_header("Cache-Control", "no-store");
    ex.reply(200, b.metrics.render(), "text/plain; version=0.0.4");
  });
  b.server->route(std::string(kAccessPath), {"GET"},
                  [&b](HttpExchange& ex) { b.handle_access(ex); });
  for (std::string_view path : {kSwitchPath, kSwitchAlias}) {
    b.server->route(std::string(path), {"GET"}, [&b](HttpExchange& ex) { b.handle_switch(ex); });
  }
  b.server->route(std::string(kAdminStatusPath), {"GET", "HEAD"},
                  [&b](HttpExchange& ex) { b.handle_admin_status(ex); });
  b.register_admission_metrics();
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
  timeval one_second{1, 0};
  evtimer_add(b.tick_timer.get(), &one_second);
  LOG_INFO(kLog, "serving ", b.config->channels.size(), " channel(s) with ",
           b.config->caches.size(), " cache node(s)",
           b.config->allow_anonymous ? "; anonymous viewers allowed on free channels" : "",
           "; admission ", describe(b.config->admission));
  return std::unique_ptr<Balancer>(new Balancer(std::move(impl)));
}

}  // namespace balancer

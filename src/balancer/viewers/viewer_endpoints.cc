// Viewer endpoints of one loop: playlists (/hls/...) and the cache choice; content steering is
// in viewer_steering.cc; keys (/key/...), credentials and admission in viewer_access.cc. Each
// builds its response from the loop's own snapshots; the source cache and key store are asked
// through the fetch loop.
#include <atomic>

#include "balancer/viewers/playlist_mapper.h"
#include "balancer/viewers/viewer_endpoints.h"
#include "core/json.h"
#include "core/url.h"
#include "http/server/body_buffer.h"

namespace balancer {

using http::HttpExchange;

namespace {
constexpr std::string_view kPlaylistType = "application/vnd.apple.mpegurl";
constexpr size_t kMaxLinkMemoVersions = 512;
}  // namespace

ViewerEndpoints::ViewerEndpoints(ViewerParts parts, SourceAsker& sources, KeyFetcher& keys,
                                 core::EventLoop& loop)
    : parts_(parts),
      keys_(keys),
      loop_(loop),
      front_(loop, sources, parts.clock, parts.metrics.registry),
      config_(parts.config),
      health_(parts.health),
      unsent_(parts.any_loop.unsent_playlist_bytes) {}

void ViewerEndpoints::fail(HttpExchange& ex, int status, const std::string& code,
                           const std::string& message) {
  parts_.metrics.error(code).inc();
  send_error(ex, status, code, message);
}

void ViewerEndpoints::send_error(HttpExchange& ex, int status, const std::string& code,
                                 const std::string& message) {
  if (ex.closed()) return;
  ex.add_header("Cache-Control", "no-store");
  ex.reply_error(status, code, message);
}

SourceRequest ViewerEndpoints::source_request(const RuntimeConfig& rc, const ChannelConfig& channel,
                                              const std::string& target,
                                              DeliveryDirectives directives) const {
  SourceRequest r;
  r.origin_id = channel.origin;
  r.origin_base = rc.config.origins.at(channel.origin).url;
  r.target = target;
  r.directives = std::move(directives);
  r.live = {channel.kind, channel.finished, rc.config.playlists.live_end_confirm};
  r.prefetch = channel.prefetch;
  r.target_latency_s = channel.target_latency_s;
  r.channel = channel.id;
  if (channel.sources.size() > 1) {
    // The channel's copy, kept in one timeline across its sources (source_health.h).
    std::vector<std::string> targets;
    for (const ChannelSource& source : channel.sources) targets.push_back(source.source);
    if (auto matched = matched_targets(targets, target)) {
      for (size_t i = 0; i < channel.sources.size(); ++i) {
        const std::string& origin = channel.sources[i].origin;
        r.sources.push_back({origin, rc.config.origins.at(origin).url, (*matched)[i]});
      }
      r.origin_id = r.sources.front().origin_id;
      r.origin_base = r.sources.front().origin_base;
      r.target = r.sources.front().target;
      r.failover = channel.failover;
    }
  }
  return r;
}

void ViewerEndpoints::get_source(const SourceRequest& request, const RuntimeConfig& rc,
                                 SourceCallback done) {
  front_.get(request, rc.config.playlists, std::move(done));
}

CacheDecision ViewerEndpoints::choose(const BalancerConfig& c, const std::string& requested,
                                      const std::string& remote_ip, const std::string& viewer_key,
                                      TimePoint now, const std::string& pathway) {
  CacheDecision decided;
  decided.health = health_.shared();
  const HealthView& view = *decided.health;
  if (!pathway.empty()) {
    if (pathway == kOriginPathway) return decided;
    for (const auto& cache : c.caches) {
      if (cache.id != pathway) continue;
      auto h = view.find(cache.id);
      if (h == view.end() || !h->second.usable(now)) break;  // a dead pathway: the usual choice
      decided.holds_until = h->second.usable_until();
      decided.cache = &cache;
      decided.reason = CacheChoice::Reason::requested;
      return decided;
    }
  }
  std::vector<CacheCandidate>& candidates = candidates_;
  candidates.clear();
  for (const auto& cache : c.caches) {
    auto h = view.find(cache.id);
    const bool usable = h != view.end() && h->second.usable(now);
    if (usable) decided.holds_until = std::min(decided.holds_until, h->second.usable_until());
    candidates.push_back({cache.id, cache.site, &cache.networks, usable});
  }
  CacheChoice choice = choose_cache(candidates, requested, core::IpAddress::parse(remote_ip),
                                    viewer_hash(viewer_key));
  decided.reason = choice.reason;
  if (choice.index) decided.cache = &c.caches[*choice.index];
  return decided;
}

const CacheDecision& ViewerEndpoints::current_choice(Pending& p, TimePoint now) {
  if (p.choice.health != health_.shared() || now > p.choice.holds_until) {
    p.choice = choose(p.config->config, p.request.cache, p.ex.remote_ip(), p.viewer_key, now,
                      p.request.pathway);
  }
  return p.choice;
}

const std::vector<std::string>& ViewerEndpoints::stable_links_for(
    const Pending& p, const SourceVersion& version, const CacheConfig* cache,
    const std::vector<std::string>& fresh, TimePoint now) {
  // Per viewer, requested cache and playlist: a viewer that asks for another cache (it walked out
  // of the venue, its app pinged again) cannot be assumed to reach its previous hosts.
  const std::string_view origin_path =
      std::string_view(p.request.origin_target).substr(0, p.request.origin_target.find('?'));
  std::string& key = listing_key_;
  key.clear();
  key.append(p.viewer_key).append("\n").append(p.request.cache).append("\n");
  key.append(p.request.pathway).append("\n").append(origin_path);
  // A dead pathway's listed segments keep its node: a changed segment URI is "media sequence
  // mismatch" to hls.js. Its listed parts and preload hint move with the new chunks: no player
  // compares them (hls.js matches parts by position, Media3 cancels a loading part whose URI
  // changed and loads the new one), and a player retrying a part on the dead node stalls (Shaka
  // retried parts there for seconds). Its listed maps stay while the viewer plays the playlist
  // (the player holds the init: VHS fetched a moved one again and appended it before each part
  // until one playlist version gave it two, so Chromium dropped the rest of the segment and it
  // stalled), and move for a viewer coming back to it (a rendition switch needs the init).
  const std::string kept_host = p.request.pinned_pathway() ? p.request.pathway : std::string();
  const std::vector<uint64_t>& hashes = version.plan.chunk_hashes;
  const BalancerConfig& c = p.config->config;
  const HealthView& view = health_.get();
  auto find = [&c](std::string_view id) -> const CacheConfig* {
    for (const auto& cache_config : c.caches) {
      if (cache_config.id == id) return &cache_config;
    }
    return nullptr;
  };
  auto usable = [&](std::string_view id) {
    if (id.empty()) return true;  // origin
    auto h = view.find(std::string(id));
    return find(id) != nullptr && h != view.end() && h->second.usable(now);
  };
  std::vector<bool> segments, maps;
  if (!kept_host.empty() && !usable(kept_host)) {
    segments = segment_chunks(version.playlist.tmpl, version.plan);
    maps = map_chunks(version.playlist.tmpl, version.plan);
  }
  // A viewer reloads the playlist it plays at least once per target duration.
  KeptHost kept{kept_host, &segments, &maps, 2 * version.target_duration};
  std::vector<std::string> host_ids;
  std::vector<uint8_t> hosts = parts_.any_loop.listings.update(
      key, hashes, cache ? cache->id : std::string(), usable, now, host_ids, kept);
  if (host_ids.size() <= 1 || hosts.size() != hashes.size()) return fresh;
  // Links of the other hosts (memoised per second like the fresh ones).
  std::vector<const std::vector<std::string>*> per_host(host_ids.size(), &fresh);
  for (size_t i = 1; i < per_host.size(); ++i) {
    per_host[i] = &chunk_links_for(version, *p.config, *p.channel, find(host_ids[i]));
  }
  mixed_links_.resize(hosts.size());
  for (size_t i = 0; i < hosts.size(); ++i) mixed_links_[i] = (*per_host[hosts[i]])[i];
  return mixed_links_;
}

const std::vector<std::string>& ViewerEndpoints::chunk_links_for(const SourceVersion& version,
                                                                 const RuntimeConfig& rc,
                                                                 const ChannelConfig& channel,
                                                                 const CacheConfig* cache) {
  const std::string destination = cache ? cache->url : std::string();
  int64_t now = parts_.clock.unix_now();
  if (link_memo_.size() > kMaxLinkMemoVersions && !link_memo_.count(version.serial))
    link_memo_.clear();
  ChunkLinkMemo& memo = link_memo_[version.serial][destination];
  // A chunk's link expires a fixed time after the chunk was first listed (link_expiry), so it
  // reads the same in every version; computed once per second for the rare long-listed chunk
  // whose expiry moves on.
  if (memo.generation == rc.generation && memo.computed_unix == now &&
      memo.links.size() == version.plan.chunk_slots) {
    return memo.links;
  }
  // Long enough that a chunk listed for the whole playlist (its duration plus a couple of
  // refreshes) stays under half a lifetime: one link from first listing to leaving.
  const int64_t target_s =
      std::chrono::duration_cast<std::chrono::seconds>(version.target_duration).count();
  int64_t lifetime = std::max<int64_t>(rc.config.chunk_url_lifetime.count(), 3 * target_s);
  lifetime = std::max<int64_t>(
      lifetime, 2 * (static_cast<int64_t>(version.total_duration_s) + 2 * target_s + 1));
  ChunkDestination d;
  d.cache_url = destination;
  d.origin_id = channel.origin;
  d.signer = rc.signer ? &*rc.signer : nullptr;
  d.now_unix = now;
  d.lifetime_s = lifetime;
  memo.links = chunk_links(version.playlist.tmpl, version.plan, d);
  memo.computed_unix = now;
  memo.generation = rc.generation;
  return memo.links;
}

core::Histogram& ViewerEndpoints::newest_age_histogram(const std::string& channel) {
  auto it = newest_age_.find(channel);
  if (it != newest_age_.end()) return *it->second;
  core::Histogram& h = parts_.metrics.registry.histogram(
      "balancer_playlist_newest_age_seconds",
      "How old a live playlist's newest segment or part was (by EXT-X-PROGRAM-DATE-TIME) when "
      "served",
      {0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 60}, "channel=\"" + channel + "\"");
  return *newest_age_.emplace(channel, &h).first->second;
}

// The player's CMCD report of an authorised request (admitted, or a key it is entitled to):
// a refused or queued request adds no session. Counted for its channel and the cache it asked
// for (a configured one, else "other": the label set stays bounded).
void ViewerEndpoints::observe_playback(const Pending& p) {
  const ViewerRequest& request = p.request;
  std::string_view node =
      request.cache.empty() ? std::string_view("none") : cmcd::PlaybackQuality::kOtherPlace;
  for (const CacheConfig& cache : p.config->config.caches) {
    if (cache.id == request.cache) node = cache.id;
  }
  parts_.playback.observe(p.ex, request.cmcd, p.channel->id, node);
}

// Parses the viewer's request, finds the channel and checks the viewer may watch
// it; answers the error itself and returns null when any of that fails.
PendingPtr ViewerEndpoints::begin_viewer_request(HttpExchange& ex, std::string_view prefix) {
  auto request = parse_viewer_request(ex.target(), prefix);
  if (!request) {
    fail(ex, 400, request.error().code, request.error().message);
    return nullptr;
  }
  std::shared_ptr<const RuntimeConfig> snapshot = config_.shared();
  if (snapshot->generation != allowlist_generation_) {
    allowlist_.retain(snapshot->config);
    allowlist_generation_ = snapshot->generation;
  }
  const ChannelConfig* channel = snapshot->find_channel(request->channel);
  if (channel == nullptr) {
    fail(ex, 404, "unknown_channel", "No channel '" + request->channel + "' is configured.");
    return nullptr;
  }
  auto viewer = authorize_viewer(*snapshot, *request, *channel, parts_.clock.unix_now());
  if (!viewer) {
    fail(ex, credential_error_status(viewer.error().code), viewer.error().code,
         viewer.error().message);
    return nullptr;
  }
  auto p = std::make_shared<Pending>(std::move(ex));
  p->request = std::move(request).value();
  p->config = std::move(snapshot);
  p->channel = channel;
  p->viewer_key = std::move(viewer).value();
  return p;
}

void ViewerEndpoints::handle_playlist(HttpExchange& ex) {
  parts_.metrics.requests_playlist.inc();
  PendingPtr p = begin_viewer_request(ex, kPlaylistPrefix);
  if (!p) return;
  if (p->request.directives.blocking()) {
    // Each waits up to blocking_timeout_ms with its connection and request held: a player
    // needs one per rendition it plays, so more from one viewer is a client holding resources.
    const size_t cap = p->config->config.playlists.max_blocking_per_viewer;
    if (blocking_reloads_.held_by(p->viewer_key) >= cap) {
      p->ex.add_header("Retry-After", "1");
      return fail(p->ex, 429, "too_many_blocking_reloads",
                  "This viewer already waits on " + std::to_string(cap) +
                      " blocking playlist reloads; ask again when one is answered.");
    }
    p->blocking_hold = blocking_reloads_.hold(p->viewer_key, 1);
  }
  ensure_allowed(p, false, [this, p](bool allowed) {
    if (!allowed)
      return fail(p->ex, 404, "not_found", "This channel has no playlist at that path.");
    admit(p, [this, p] {
      observe_playback(*p);
      get_source(
          source_request(*p->config, *p->channel, p->request.origin_target, p->request.directives),
          *p->config, [this, p](const SourceResult& r) { serve_playlist(p, r); });
    });
  });
}

void ViewerEndpoints::serve_playlist(const PendingPtr& p, const SourceResult& r) {
  HttpExchange& ex = p->ex;
  if (r.from == SourceResult::From::error) {
    if (r.status == 503)
      ex.add_header("Retry-After", "1");  // busy, or a blocked reload not yet satisfiable
    return fail(ex, r.status, r.error.code, r.error.message);
  }
  if (ex.closed()) return;
  const SourceVersion& version = *r.version;
  allowlist_.learn(*p->channel, version);
  auto started = parts_.clock.now();
  const BalancerConfig& c = p->config->config;
  // Clients that do not read hold the budget: a new copy would only add to it. One address
  // holds at most its share, and the largest holders are refused first, so another's viewers
  // still get theirs (unsent_replies.h). Asked before the copy is made, and again with its size.
  const size_t loops = std::max<size_t>(1, parts_.serving_loops);
  const UnsentReplies::Limits limits{
      c.playlists.max_unsent_bytes, c.playlists.max_unsent_bytes / loops,
      std::min(c.playlists.max_unsent_bytes_per_address, c.playlists.max_unsent_bytes) / loops};
  // An address here is a network: an IPv6 client's addresses are one
  // (HttpExchange::remote_network).
  const std::string network = ex.remote_network();
  if (refuse_unsent(ex, unsent_.room_for(network, 0, limits))) return;
  // Chosen once per request: admit()'s choice, unless health changed while origin answered.
  const CacheDecision& choice = current_choice(*p, started);
  const CacheConfig* cache = choice.cache;
  const CacheChoice::Reason reason = choice.reason;
  parts_.metrics.count_choice(reason);
  if (const std::string& cache_id = cache ? cache->id : std::string(); cache_id != p->cache_id) {
    // A node's health changed while origin answered: the viewer's slot follows its chunks (an
    // admitted viewer keeps its one slot; this response was admitted when it arrived).
    parts_.any_loop.admission->request(loop_, p->viewer_key,
                                       {p->channel->id, cache_id, p->bandwidth_bps}, {}, started,
                                       [](const AdmissionDecision&) {});
  }
  std::string body = render_playlist(*p, version, cache, started);
  parts_.metrics.rewrite_seconds.observe(
      std::chrono::duration<double>(parts_.clock.now() - started).count());
  if (refuse_unsent(ex, unsent_.room_for(network, body.size(), limits))) return;
  if (version.kind == SourceKind::live && version.newest_media_end_s) {
    // How old the newest segment or part is as it leaves here: the stack's share of the
    // viewer's latency behind live, per channel.
    const double age_s =
        static_cast<double>(parts_.clock.unix_now_ms()) / 1000 - *version.newest_media_end_s;
    newest_age_histogram(p->channel->id).observe(std::max(0.0, age_s));
  }
  ex.add_header("Cache-Control",
                version.kind == SourceKind::vod ? "private, max-age=5" : "private, no-cache");
  ex.add_header("X-Playlist-Source", to_string(r.from));
  ex.add_header("X-Cache-Choice", cache ? cache->id : "origin");
  if (ex.logs_access()) {
    ex.set_log_note(std::string(to_string(r.from)) + " " + (cache ? cache->id : "origin") + " " +
                    to_string(reason));
  }
  // Handed to the connection by reference, counted until it is written (unsent_replies.h).
  std::shared_ptr<const UnsentReplies::Reply> unsent = unsent_.hold(std::move(body), network);
  http::BodyBuffer buffer;
  buffer.append_reference(unsent->body.data(), unsent->body.size(), unsent);
  ex.reply(200, std::move(buffer), unsent->body.size(), kPlaylistType);
}

bool ViewerEndpoints::refuse_unsent(HttpExchange& ex, UnsentReplies::Room room) {
  switch (room) {
    case UnsentReplies::Room::fits:
      return false;
    case UnsentReplies::Room::process_full:
      ex.add_header("Retry-After", "2");
      fail(ex, 503, "reply_backlog_full",
           "Too many playlist bytes are waiting for clients that do not read them; retry "
           "shortly.");
      return true;
    case UnsentReplies::Room::address_full:
      ex.add_header("Retry-After", "2");
      fail(ex, 429, "reply_backlog_full",
           "Too many playlist bytes are waiting for connections from this address that do not "
           "read them; read those replies, or retry shortly.");
      return true;
  }
  return false;
}

// The viewer's copy of `version`: links to `cache` (origin when null) with the viewer's query,
// a made or steered master where steering applies.
std::string ViewerEndpoints::render_playlist(const Pending& p, const SourceVersion& version,
                                             const CacheConfig* cache, TimePoint started) {
  const BalancerConfig& c = p.config->config;
  ViewerLinks viewer_links;
  viewer_links.balancer_base = c.public_url;
  viewer_links.channel = p.channel->id;
  viewer_links.viewer_query = p.request.viewer_query;
  // A pathway's media playlist names its siblings (EXT-X-RENDITION-REPORT) and keys by the URIs
  // the master lists on that pathway, which carry it: players match reports by exact URI.
  std::string pathway_query;
  if (p.request.pinned_pathway()) {
    pathway_query = p.request.viewer_query;
    if (!pathway_query.empty()) pathway_query += '&';
    pathway_query += "pathway=" + p.request.pathway;
    viewer_links.viewer_query = pathway_query;
  }
  std::string body;
  if (auto made = made_master(p, version, started)) {
    body = std::move(*made);
  } else {
    const std::vector<std::string>* links = nullptr;
    if (version.plan.chunk_slots > 0) {
      // Prefetch asks the nodes this version's viewers were sent to (source_cache.h).
      for (size_t i = 0; cache != nullptr && i < c.caches.size(); ++i) {
        if (&c.caches[i] == cache) version.cache_use.note(i);
      }
      links = &chunk_links_for(version, *p.config, *p.channel, cache);
      // Listed chunks keep their hosts. A live pathway's chunks are all on its node; a dead
      // pathway answers 200 rather than an error (Shaka Player bans the balancer's host name on
      // one, VHS waits for its manifest): the chunks it listed keep their URIs, new ones follow
      // the cache choice. docs/balancer.md § Content steering.
      links = &stable_links_for(p, version, cache, *links, started);
    }
    viewer_links.chunk_links = links;
    std::optional<std::string> steered;
    if (version.kind == SourceKind::master && c.steering_enabled && !c.caches.empty()) {
      steered = steered_master(p, version, viewer_links, started);
    }
    body = steered ? std::move(*steered)
                   : render_for_viewer(version.playlist.tmpl, version.plan, viewer_links);
  }
  return body;
}

}  // namespace balancer

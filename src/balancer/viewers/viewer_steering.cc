// Content steering on one loop (docs/balancer.md § Content steering): a viewer's pathways, the
// steering manifest (/steering/...), the master that lists the cache choice's pathway, and the
// master made for a bare media playlist. The playlists' handlers are in viewer_endpoints.cc.
#include "balancer/viewers/viewer_endpoints.h"
#include "core/url.h"
#include "hls/steering.h"

namespace balancer {

using http::HttpExchange;

namespace {
// BANDWIDTH of the one variant of a master made for a bare media playlist: nominal (the
// balancer never sees the segments' sizes); a player with one variant plays it whatever it
// says, and admission counts such a channel's viewers at the mean, as before.
constexpr uint64_t kMadeMasterBandwidth = 1000000;
// At most this many masters' steered shapes on one loop, then it starts again (a channel's
// master changes rarely).
constexpr size_t kMaxSteeredShapes = 256;

// Where the viewer reached the balancer, for URIs players must not resolve themselves: the
// configured public URL, else the scheme of the connection and the Host header; "" when that
// header is missing or more than host[:port].
std::string viewer_facing_base(const HttpExchange& ex, const BalancerConfig& c) {
  if (!c.public_url.empty()) return c.public_url;
  std::optional<std::string> host = ex.header("Host");
  if (!host || host->empty() || host->size() > 255) return {};
  for (char ch : *host) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_' || ch == ':' ||
                    ch == '[' || ch == ']';
    if (!ok) return {};
  }
  return (ex.secure() ? "https://" : "http://") + *host;
}

// The steering manifest's URI for this viewer whose master lists pathway `listed` (the base of
// the manifest's clones). Absolute: Shaka Player cannot resolve a path-absolute one.
std::string steering_server_uri(const std::string& base, const Pending& p,
                                const std::string& listed) {
  std::string uri = base + std::string(kSteeringPrefix) + p.channel->id;
  core::append_query(uri, p.request.viewer_query);
  core::append_query(uri, "pathway=" + listed);
  return uri;
}

// "host[:port]" of an absolute base URL ("https://tv.example:8443/x" → "tv.example:8443").
std::string authority_of(const std::string& base) {
  const size_t scheme = base.find("://");
  if (scheme == std::string::npos) return {};
  const size_t start = scheme + 3;
  return base.substr(start, base.find_first_of("/?#", start) - start);
}

}  // namespace

std::vector<std::string> ViewerEndpoints::pathways(const BalancerConfig& c,
                                                   const std::string& requested,
                                                   const std::string& remote_ip,
                                                   const std::string& viewer_key, TimePoint now,
                                                   bool usable_only) {
  // Held: choose() re-reads the snapshot, which may replace the reader's copy.
  const std::shared_ptr<const HealthView> health = health_.shared();
  const HealthView& view = *health;
  const CacheConfig* first = choose(c, requested, remote_ip, viewer_key, now).cache;
  const CacheConfig* asked = nullptr;
  for (const auto& cache : c.caches) {
    if (cache.id == kOriginPathway) return {};  // a cache named like origin's pathway: no steering
    if (cache.id == requested) asked = &cache;
  }
  const std::string* site = asked ? &asked->site : first ? &first->site : nullptr;
  std::vector<std::string> out;
  // The current choice leads: the viewer's default copy goes there (origin without a usable node).
  out.emplace_back(first ? first->id : std::string(kOriginPathway));
  for (const auto& cache : c.caches) {
    if (site == nullptr || cache.site != *site || &cache == first) continue;
    auto h = view.find(cache.id);
    if (usable_only && !(h != view.end() && h->second.usable(now))) continue;
    out.push_back(cache.id);
  }
  if (first) out.emplace_back(kOriginPathway);
  return out;
}

void ViewerEndpoints::handle_steering(HttpExchange& ex) {
  std::string_view path = ex.path();
  path.remove_prefix(kSteeringPrefix.size());
  std::shared_ptr<const RuntimeConfig> snapshot = config_.shared();
  const BalancerConfig& c = snapshot->config;
  if (snapshot->find_channel(std::string(path)) == nullptr) {
    return fail(ex, 404, "unknown_channel",
                "No channel '" + std::string(path) + "' is configured.");
  }
  if (!c.steering_enabled)
    return fail(ex, 404, "not_found", "Content steering is off on this server.");
  const std::string requested = ex.query_param("cache").value_or("");
  // The viewer key only spreads viewers over siblings (choose_cache's hash): the same as for its
  // playlists.
  std::string viewer_key = ex.query_param("viewer").value_or(ex.query_param("ticket").value_or(""));
  const TimePoint now = parts_.clock.now();
  std::vector<std::string> priority = pathways(c, requested, ex.remote_ip(), viewer_key, now, true);
  // The master lists one pathway (`pathway=`); every other one is its clone with that parameter
  // changed. One that goes down lists its new segments on the next usable host at once
  // (docs/balancer.md § Content steering).
  std::vector<hls::PathwayClone> clones;
  const std::string listed = ex.query_param("pathway").value_or("");
  const std::string host = authority_of(viewer_facing_base(ex, c));
  if (hls::valid_pathway_id(listed) && !host.empty()) {
    for (const std::string& id : pathways(c, requested, ex.remote_ip(), viewer_key, now, false)) {
      if (id != listed) clones.push_back({id, listed, host, {{"pathway", id}}});
    }
  }
  ex.add_header("Cache-Control", "no-store");
  ex.reply(200, hls::steering_manifest(c.steering_ttl_s, priority, clones), "application/json");
}

std::optional<std::string> ViewerEndpoints::steered_master(const Pending& p,
                                                           const SourceVersion& version,
                                                           const ViewerLinks& links,
                                                           TimePoint now) {
  const BalancerConfig& c = p.config->config;
  std::vector<std::string> ids =
      pathways(c, p.request.cache, p.ex.remote_ip(), p.viewer_key, now, false);
  const std::string base = viewer_facing_base(p.ex, c);
  if (ids.size() < 2 || base.empty()) return std::nullopt;
  const hls::SteeredShape* shape = steered_shape(version);
  if (shape == nullptr) return std::nullopt;
  // Only the cache choice's pathway is listed: a player without steering (ffmpeg, native
  // players, Media3 before 1.11) plays it and probes no other host; steering players start on
  // it and get the other pathways as the manifest's clones of it. Its segment URIs never change
  // while its node is usable (hls.js reports a changed one as "media sequence mismatch"); after
  // its death it lists new segments on the next usable host, for every player.
  std::string query = p.request.viewer_query;
  if (!query.empty()) query += '&';
  query += "pathway=" + ids.front();
  ViewerLinks pathway_links = links;
  pathway_links.viewer_query = query;
  // The shape is the version's; only the URIs, the pathway and the steering URI are this
  // viewer's.
  render_viewer_slots(version.playlist.tmpl, version.plan, pathway_links, slot_texts_);
  return shape->render(version.playlist.tmpl, slot_texts_, ids.front(),
                       steering_server_uri(base, p, ids.front()));
}

const hls::SteeredShape* ViewerEndpoints::steered_shape(const SourceVersion& version) {
  if (steered_shapes_.size() >= kMaxSteeredShapes && !steered_shapes_.count(version.serial))
    steered_shapes_.clear();
  auto [shape, added] = steered_shapes_.try_emplace(version.serial);
  if (added) shape->second = hls::SteeredShape::of(version.playlist.tmpl);
  return shape->second ? &*shape->second : nullptr;
}

std::optional<std::string> ViewerEndpoints::made_master(const Pending& p,
                                                        const SourceVersion& version,
                                                        TimePoint now) {
  const BalancerConfig& c = p.config->config;
  // Only the channel's own entry (the URL the API hands out) asked for as such: a variant URI
  // names a pathway, and an LL-HLS reload is a media playlist's.
  if (version.kind == SourceKind::master || !c.steering_enabled || !c.steering_media_masters ||
      c.caches.empty() || !p.request.pathway.empty() || p.request.directives.any() ||
      p.request.origin_target != p.channel->source) {
    return std::nullopt;
  }
  const std::string base = viewer_facing_base(p.ex, c);
  if (base.empty()) return std::nullopt;
  std::vector<std::string> ids =
      pathways(c, p.request.cache, p.ex.remote_ip(), p.viewer_key, now, false);
  // The variant is the source itself on the cache choice's pathway (hls/steering.h: the only
  // one listed); with a single pathway, on the default copy's "." (its URI must differ from the
  // master's).
  const std::string listed = ids.size() < 2 ? std::string(kDefaultPathway) : ids.front();
  std::string uri =
      c.public_url + std::string(kPlaylistPrefix) + p.channel->id + p.request.origin_target;
  core::append_query(uri, p.request.viewer_query);
  core::append_query(uri, "pathway=" + listed);
  std::string text = hls::one_variant_master(uri, kMadeMasterBandwidth);
  if (ids.size() < 2) return text;
  const std::vector<hls::PathwayCopy> copies = {{listed, text}};
  if (auto steered = hls::steered_master(copies, steering_server_uri(base, p, listed), listed))
    return steered;
  return text;
}

}  // namespace balancer

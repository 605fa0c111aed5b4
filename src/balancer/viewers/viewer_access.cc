// Who may watch, on one loop: a viewer's credentials (playback ticket or, on a free channel, a
// viewer id), the targets a channel's playlists allow (keys among them, learned from its
// playlists), keys served to the entitled, and admission's answer for a playlist request.
#include <algorithm>

#include "balancer/viewers/viewer_access.h"
#include "balancer/viewers/viewer_endpoints.h"

namespace balancer {

using http::HttpExchange;

int credential_error_status(const std::string& code) {
  return code == "ticket_wrong_channel" || code == "not_entitled" ? 403 : 401;
}

core::Result<std::string> authorize_viewer(const RuntimeConfig& rc, const ViewerRequest& request,
                                           const ChannelConfig& channel, int64_t now_unix) {
  if (!request.ticket.empty()) {
    auto ticket = rc.tickets->verify(request.ticket, channel.id, now_unix);
    if (!ticket) return ticket.error();
    return "t:" + ticket->viewer;
  }
  if (channel.free && rc.config.allow_anonymous) {
    if (request.viewer.empty()) {
      return core::Error{"credentials_required",
                         "Pass a playback ticket (ticket=...) or, for this free channel, a "
                         "viewer id (viewer=...)."};
    }
    return "v:" + request.viewer;
  }
  if (!channel.free && !request.viewer.empty()) {
    // A made-up viewer id never unlocks a paid channel: only the access check of an entitled
    // user hands out a ticket for it.
    return core::Error{"not_entitled",
                       "This paid channel plays only with a playback ticket from the access check "
                       "(/api/v1/access) of a user who bought it."};
  }
  return core::Error{"ticket_required",
                     channel.free ? "This channel needs a playback ticket (ticket=...)."
                                  : "This paid channel needs a playback ticket that grants it."};
}

ViewerOrigin viewer_origin(const RuntimeConfig& rc, const std::string& ip,
                           std::string_view viewer_key) {
  ViewerOrigin from;
  from.anonymous = viewer_key.starts_with("v:");
  from.account = ticket_account(viewer_key);
  if (!rc.config.per_address_exempt.empty()) {
    auto address = core::IpAddress::parse(ip);
    for (const core::Cidr& network : rc.config.per_address_exempt) {
      if (address && network.contains(*address)) return from;
    }
  }
  from.network = core::address_group_key(ip, rc.config.server.ipv6_prefix_length);
  return from;
}

std::string_view ticket_account(std::string_view viewer_key) {
  if (!viewer_key.starts_with("t:")) return {};
  const std::string_view viewer = viewer_key.substr(2);
  const size_t slash = viewer.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == viewer.size()) return {};
  return viewer.substr(0, slash);
}

// Calls then(true) when the request's target may be fetched for its channel,
// learning from the channel's source first if needed.
void ViewerEndpoints::ensure_allowed(const PendingPtr& p, bool key,
                                     std::function<void(bool)> then) {
  const std::string& target = p->request.origin_target;
  if (!key && allowlist_.allows_playlist(*p->channel, target)) return then(true);
  if (key && allowlist_.allows_key(*p->channel, target)) return then(true);
  get_source(source_request(*p->config, *p->channel, p->channel->source), *p->config,
             [this, p, key, then = std::move(then)](const SourceResult& r) {
               if (r.version) allowlist_.learn(*p->channel, *r.version);
               const std::string& t = p->request.origin_target;
               if (key ? allowlist_.allows_key(*p->channel, t)
                       : allowlist_.allows_playlist(*p->channel, t))
                 return then(true);
               if (!key) return then(false);
               ensure_key_learned(p, then);
             });
}

// Keys are listed in media playlists: after a restart a viewer may ask for a key
// before anyone fetched its playlist here. Load the channel's playlists (shared,
// usually cached) and look again.
void ViewerEndpoints::ensure_key_learned(const PendingPtr& p, std::function<void(bool)> then) {
  std::vector<std::string> targets = allowlist_.playlists(*p->channel, 32);
  if (targets.empty()) return then(false);
  auto remaining = std::make_shared<size_t>(targets.size());
  auto done = std::make_shared<std::function<void(bool)>>(std::move(then));
  for (const auto& t : targets) {
    get_source(source_request(*p->config, *p->channel, t), *p->config,
               [this, p, remaining, done](const SourceResult& r) {
                 if (r.version) allowlist_.learn(*p->channel, *r.version);
                 if (--*remaining > 0) return;
                 (*done)(allowlist_.allows_key(*p->channel, p->request.origin_target));
               });
  }
}

void ViewerEndpoints::handle_key(HttpExchange& ex) {
  parts_.metrics.requests_key.inc();
  PendingPtr p = begin_viewer_request(ex, kKeyPrefix);
  if (!p) return;
  ensure_allowed(p, true, [this, p](bool allowed) {
    if (!allowed) return fail(p->ex, 404, "not_found", "This channel has no key at that path.");
    // The source whose playlist listed the key (a channel with several sources), else the first.
    const std::string& origin_id =
        p->request.key_origin.empty() ? p->channel->origin : p->request.key_origin;
    const bool a_source =
        std::any_of(p->channel->sources.begin(), p->channel->sources.end(),
                    [&](const ChannelSource& s) { return s.origin == origin_id; });
    if (origin_id != p->channel->origin && !a_source)
      return fail(p->ex, 404, "not_found", "This channel has no source on that origin.");
    observe_playback(*p);
    std::string url = p->config->config.origins.at(origin_id).url + p->request.origin_target;
    keys_.fetch_key(loop_, url, [this, p](const KeyResult& r) {
      HttpExchange& reply = p->ex;
      if (!r.key) return fail(reply, r.status, r.error.code, r.error.message);
      if (reply.closed()) return;
      reply.add_header("Cache-Control", "private, no-store");
      reply.reply(200, r.key->bytes, r.key->content_type);
    });
  });
}

void ViewerEndpoints::admit(const PendingPtr& p, std::function<void()> then) {
  const auto now = parts_.clock.now();
  p->choice = choose(p->config->config, p->request.cache, p->ex.remote_ip(), p->viewer_key, now,
                     p->request.pathway);
  p->cache_id = p->choice.cache ? p->choice.cache->id : std::string();
  p->bandwidth_bps = allowlist_.variant_bandwidth(*p->channel, p->request.origin_target);
  parts_.any_loop.admission->request(
      loop_, p->viewer_key, {p->channel->id, p->cache_id, p->bandwidth_bps},
      viewer_origin(*p->config, p->ex.remote_ip(), p->viewer_key).source(), now,
      [this, p, then = std::move(then)](const AdmissionDecision& d) {
        if (answer_admission(*p, d)) then();
      });
}

bool ViewerEndpoints::answer_admission(Pending& p, const AdmissionDecision& d) {
  parts_.metrics.count_decision(AdmissionEndpoint::playlist, d);
  switch (d.kind) {
    case AdmissionDecision::Kind::admitted:
      return true;
    case AdmissionDecision::Kind::queued:
      p.ex.set_log_note("queued #" + std::to_string(d.position));
      send_reply(p.ex, queued_reply(d));
      return false;
    case AdmissionDecision::Kind::refused:
      send_reply(p.ex, refused_reply(d));
      return false;
    case AdmissionDecision::Kind::bad_viewer_key:
      break;
  }
  send_error(p.ex, 400, "bad_viewer", "The ticket or viewer id cannot identify a viewer.");
  return false;
}

}  // namespace balancer

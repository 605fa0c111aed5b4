// The balancer's side of api::PlaybackHost: what the REST API may ask of it
// (channels, usable caches, credentials, admission, tickets), from any loop.
#include "balancer/balancer_loop.h"

namespace balancer {

ApiHost::ApiHost(AnyThreadParts parts) : parts_(parts) {}

std::vector<api::ChannelEntry> ApiHost::channels() const {
  std::shared_ptr<const RuntimeConfig> rc = parts_.config.load();
  std::vector<api::ChannelEntry> out;
  out.reserve(rc->config.channels.size());
  for (const ChannelConfig& c : rc->config.channels) {
    std::string playlist = rc->config.public_url;
    playlist.append(kPlaylistPrefix).append(c.id).append(c.source);
    out.push_back({c.id, c.title, c.free, c.product, std::move(playlist)});
  }
  return out;
}

std::vector<api::CacheEntry> ApiHost::usable_caches() const {
  std::shared_ptr<const RuntimeConfig> rc = parts_.config.load();
  std::shared_ptr<const HealthView> health = parts_.health.load();
  const TimePoint now = parts_.clock.now();
  std::vector<api::CacheEntry> out;
  for (const CacheConfig& c : rc->config.caches) {
    auto h = health->find(c.id);
    if (h == health->end() || !h->second.usable(now)) continue;
    out.push_back({c.id, c.site, c.url + "/ping"});
  }
  return out;
}

core::Result<std::string> ApiHost::viewer_key(const std::string& channel_id,
                                              const std::string& ticket,
                                              const std::string& viewer) const {
  std::shared_ptr<const RuntimeConfig> rc = parts_.config.load();
  const ChannelConfig* channel = rc->find_channel(channel_id);
  if (channel == nullptr)
    return core::Error{"unknown_channel", "No channel '" + channel_id + "' is configured."};
  ViewerRequest credentials;
  credentials.ticket = ticket;
  credentials.viewer = viewer;
  return authorize_viewer(*rc, credentials, *channel, parts_.clock.unix_now());
}

void ApiHost::admit(const std::string& key, const std::string& channel,
                    const std::string& remote_ip, core::EventLoop& loop,
                    std::function<void(const api::AdmissionAnswer&)> done) {
  std::shared_ptr<const RuntimeConfig> rc = parts_.config.load();
  parts_.any_loop.admission->check(
      loop, key, channel, viewer_origin(*rc, remote_ip, key).source(), parts_.clock.now(),
      [this, channel, done = std::move(done)](const AdmissionDecision& decided) {
        const Reply reply = access_reply(decided, channel);
        parts_.metrics.count_decision(AdmissionEndpoint::access, decided);
        api::AdmissionAnswer answer;
        answer.admitted = decided.kind == AdmissionDecision::Kind::admitted;
        answer.status = reply.status;
        answer.body = reply.body;
        answer.headers = reply.headers;
        done(answer);
      });
}

void ApiHost::release(const std::string& viewer_key, core::EventLoop& loop) {
  parts_.any_loop.admission->release(loop, viewer_key, parts_.clock.now(),
                                     [](std::optional<bool>) {});
}

core::Result<std::string> ApiHost::issue_ticket(const std::string& channel,
                                                const std::string& viewer_id,
                                                int64_t expires_unix) const {
  std::shared_ptr<const RuntimeConfig> rc = parts_.config.load();
  return rc->tickets->issue({channel, viewer_id, expires_unix});
}

}  // namespace balancer

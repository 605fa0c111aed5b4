#include "balancer/viewers/channel_allowlist.h"

#include "core/log.h"

namespace balancer {
namespace {
constexpr size_t kMaxLearnedPerChannel = 4096;
}  // namespace

ChannelAllowlist::State& ChannelAllowlist::state(const ChannelConfig& channel) {
  State& st = channels_[channel.id];
  if (st.origin != channel.origin || st.source != channel.source) {
    st = State{};
    st.origin = channel.origin;
    st.source = channel.source;
  }
  return st;
}

void ChannelAllowlist::retain(const BalancerConfig& config) {
  for (auto it = channels_.begin(); it != channels_.end();) {
    bool kept = false;
    for (const auto& ch : config.channels) kept = kept || ch.id == it->first;
    it = kept ? std::next(it) : channels_.erase(it);
  }
}

bool ChannelAllowlist::allows_playlist(const ChannelConfig& channel, const std::string& target) {
  return target == channel.source || state(channel).playlists.count(target) > 0;
}

bool ChannelAllowlist::allows_key(const ChannelConfig& channel, const std::string& target) {
  return state(channel).keys.count(target) > 0;
}

std::vector<std::string> ChannelAllowlist::playlists(const ChannelConfig& channel, size_t max) {
  std::vector<std::string> out;
  for (const auto& t : state(channel).playlists) {
    if (out.size() >= max) break;
    out.push_back(t);
  }
  return out;
}

uint64_t ChannelAllowlist::variant_bandwidth(const ChannelConfig& channel,
                                             const std::string& target) {
  const State& st = state(channel);
  auto it = st.variant_bandwidth.find(target);
  return it == st.variant_bandwidth.end() ? 0 : it->second;
}

void ChannelAllowlist::learn(const ChannelConfig& channel, const SourceVersion& version) {
  State& st = state(channel);
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
        LOG_WARN("balancer", "channel ", channel.id,
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

}  // namespace balancer

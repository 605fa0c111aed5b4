#include "balancer/viewer_tracker.h"

namespace balancer {

void ViewerTracker::move(std::map<std::string, uint64_t, std::less<>>& counts,
                         const std::string& from, std::string_view to) {
  if (from == to) return;
  auto it = counts.find(from);
  if (it != counts.end() && --it->second == 0) counts.erase(it);
  auto to_it = counts.find(to);
  if (to_it == counts.end()) {
    counts.emplace(std::string(to), 1);
  } else {
    ++to_it->second;
  }
}

void ViewerTracker::seen(std::string_view viewer_key, std::string_view channel,
                         std::string_view cache, TimePoint now) {
  auto it = viewers_.find(std::string(viewer_key));
  if (it == viewers_.end()) {
    if (viewers_.size() >= max_viewers_) {
      ++untracked_;
      return;
    }
    Viewer v{std::string(channel), std::string(cache), now};
    ++per_channel_[v.channel];
    ++per_cache_[v.cache];
    viewers_.emplace(std::string(viewer_key), std::move(v));
    return;
  }
  Viewer& v = it->second;
  v.last_seen = now;
  if (v.channel != channel) {
    move(per_channel_, v.channel, channel);
    v.channel.assign(channel);
  }
  if (v.cache != cache) {
    move(per_cache_, v.cache, cache);
    v.cache.assign(cache);
  }
}

void ViewerTracker::expire(TimePoint now) {
  for (auto it = viewers_.begin(); it != viewers_.end();) {
    if (now - it->second.last_seen > idle_) {
      auto c = per_channel_.find(it->second.channel);
      if (c != per_channel_.end() && --c->second == 0) per_channel_.erase(c);
      auto k = per_cache_.find(it->second.cache);
      if (k != per_cache_.end() && --k->second == 0) per_cache_.erase(k);
      it = viewers_.erase(it);
    } else {
      ++it;
    }
  }
}

uint64_t ViewerTracker::on_channel(const std::string& channel) const {
  auto it = per_channel_.find(channel);
  return it == per_channel_.end() ? 0 : it->second;
}

uint64_t ViewerTracker::on_cache(const std::string& cache) const {
  auto it = per_cache_.find(cache);
  return it == per_cache_.end() ? 0 : it->second;
}

}  // namespace balancer

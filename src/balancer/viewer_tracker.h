// Active viewers per channel and per cache node, for /metrics and /health: a
// viewer counts while it keeps requesting playlists and is forgotten after
// `idle` without one. About 150 bytes per viewer. Pure (callers pass `now`);
// loop thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>

namespace balancer {

class ViewerTracker {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  explicit ViewerTracker(std::chrono::milliseconds idle = std::chrono::seconds(30),
                         size_t max_viewers = 1000000)
      : idle_(idle), max_viewers_(max_viewers) {}

  void set_idle(std::chrono::milliseconds idle) { idle_ = idle; }
  // `cache` is the cache id chunk links lead to, "" for origin. A viewer beyond
  // max_viewers is not tracked (counted in untracked()).
  void seen(std::string_view viewer_key, std::string_view channel, std::string_view cache,
            TimePoint now);
  // Forgets viewers idle for longer than `idle`.
  void expire(TimePoint now);

  size_t total() const { return viewers_.size(); }
  uint64_t on_channel(const std::string& channel) const;
  uint64_t on_cache(const std::string& cache) const;  // "" = origin
  uint64_t untracked() const { return untracked_; }

 private:
  struct Viewer {
    std::string channel;
    std::string cache;
    TimePoint last_seen;
  };
  static void move(std::map<std::string, uint64_t, std::less<>>& counts, const std::string& from,
                   std::string_view to);

  std::chrono::milliseconds idle_;
  size_t max_viewers_;
  std::unordered_map<std::string, Viewer> viewers_;
  std::map<std::string, uint64_t, std::less<>> per_channel_;
  std::map<std::string, uint64_t, std::less<>> per_cache_;
  uint64_t untracked_ = 0;
};

}  // namespace balancer

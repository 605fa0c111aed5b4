// Live prefetch, the balancer's side: when a refresh of a live media playlist
// reveals new segments, the cache nodes that this channel's viewers were sent to
// are asked (POST <node>/prefetch, authenticated with prefetch.key; the node
// side is docs/cache_node.md § Prefetch) to fetch them before any player asks.
// Only usable nodes are asked. Requests wait in a bounded queue (over it the
// oldest is dropped) and leave at most prefetch.max_per_s per second, at most
// prefetch.max_inflight at once; a failed request is counted, never retried (the
// next refresh names newer segments). Fetch loop only.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "balancer/caches/cache_config.h"
#include "core/clock.h"
#include "core/event_loop.h"
#include "core/metrics.h"
#include "http/client/http_client.h"

namespace balancer {

// The body of a prefetch request for `targets` ("/path[?query]" on the origin the
// nodes call `origin_id`): {"chunks":["/o/<origin_id><target>", ...]}.
std::string prefetch_body(const std::string& origin_id, const std::vector<std::string>& targets,
                          size_t first, size_t count);

class PrefetchClient {
 public:
  // Is the cache of this id usable now (healthy, not overloaded)?
  using Usable = std::function<bool(const std::string& cache_id)>;
  // `client`, `metrics` and `loop` outlive the client.
  PrefetchClient(core::EventLoop& loop, http::HttpClient& client, core::MetricsRegistry& metrics,
                 const core::Clock& clock, Usable usable);
  ~PrefetchClient();
  PrefetchClient(const PrefetchClient&) = delete;
  PrefetchClient& operator=(const PrefetchClient&) = delete;

  // The key, bounds and caches from now on (reload).
  void configure(const PrefetchConfig& config, const std::vector<CacheConfig>& caches);
  // New segments of a live source: each usable cache of `caches` (a CacheUse
  // mask) is asked to fetch them (at most 64 per request, the node's bound).
  void offer(const std::string& origin_id, const std::vector<std::string>& targets,
             uint64_t caches);

  size_t queued() const { return queue_.size(); }
  size_t inflight() const { return inflight_; }

 private:
  struct Job {
    std::string url;  // <cache url>/prefetch
    std::string body;
    size_t chunks = 0;
  };
  // Sends what the rate and the in-flight bound allow; arms the timer for the rest.
  void pump();
  void send(Job job);

  core::EventLoop& loop_;
  http::HttpClient& client_;
  const core::Clock& clock_;
  Usable usable_;
  PrefetchConfig config_;
  std::vector<CacheConfig> caches_;
  std::deque<Job> queue_;
  size_t inflight_ = 0;
  double tokens_ = -1;  // < 0: a full bucket at the first send
  core::SteadyTime refilled_{};
  core::LoopTimer timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  core::Counter& requests_sent_;
  core::Counter& requests_ok_;
  core::Counter& requests_failed_;
  core::Counter& requests_dropped_;
  core::Counter& chunks_issued_;
};

}  // namespace balancer

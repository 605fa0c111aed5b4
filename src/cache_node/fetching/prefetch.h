// Prefetch on the cache node: the balancer names chunks that just appeared in a
// live playlist (POST /prefetch), and the node fetches the missing ones before
// any viewer asks, as a miss with nobody waiting (joining a fetch in progress,
// never a second one). This header holds the pure parts:
//  - parse_prefetch_body: the request body, bounded;
//  - PrefetchGate: how many prefetches may start now (a token bucket for the
//    rate, a count for those in progress);
//  - PrefetchLedger: chunks fetched by a prefetch that no viewer asked for yet,
//    to count first-viewer hits and prefetches wasted (never asked for).
// Time comes in as an argument. Gate and ledger: any loop, each under its own
// mutex, never held with the cache's locks (lock_order.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/result.h"

namespace cache_node {

inline constexpr size_t kMaxPrefetchChunks = 64;  // chunk targets per request

// `{"chunks":["/o/<origin>/<path>[?query]", ...]}`, 1 to kMaxPrefetchChunks
// strings. Errors ("bad_request") say what is wrong. The targets themselves are
// checked by the caller as chunk requests are.
core::Result<std::vector<std::string>> parse_prefetch_body(std::string_view body);

// Constant-time comparison of a presented key with a configured one.
bool prefetch_key_matches(std::string_view presented, std::string_view configured);

class PrefetchGate {
 public:
  // True when a prefetch may start at `now_ms`: a token of the rate (`per_s`,
  // burst of one second's worth) and a place among `max_inflight`; it is then
  // counted in progress until finished().
  bool admit(int64_t now_ms, double per_s, size_t max_inflight);
  void finished();
  size_t inflight() const;

 private:
  mutable std::mutex mutex_;
  double tokens_ = -1;  // < 0: not started (a full bucket)
  int64_t refilled_ms_ = 0;
  size_t inflight_ = 0;
};

class PrefetchLedger {
 public:
  // `forget_after_ms`: a chunk nobody asked for that long after its prefetch is
  // wasted; `max_entries`: chunks remembered at most (over it the oldest is
  // dropped uncounted).
  PrefetchLedger(int64_t forget_after_ms, size_t max_entries)
      : forget_after_ms_(forget_after_ms), max_entries_(max_entries) {}
  // A prefetch started the fetch of `key`.
  void prefetched(const std::string& key, int64_t now_ms);
  // A viewer asks for `key`: true the first time after its prefetch (then forgotten).
  bool first_viewer(const std::string& key);
  // Forgets the chunks nobody asked for in time; returns how many (wasted).
  size_t expire(int64_t now_ms);
  size_t size() const;

 private:
  const int64_t forget_after_ms_;
  const size_t max_entries_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, int64_t> awaiting_;  // key → prefetch time
  std::deque<std::pair<std::string, int64_t>>
      order_;                     // oldest first; entries already asked for are skipped
  std::atomic<size_t> count_{0};  // awaiting_.size(), read without the lock
};

}  // namespace cache_node

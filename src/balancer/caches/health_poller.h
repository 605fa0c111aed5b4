// Polls every configured cache node's health URL on a timer (GET with a
// timeout, never blocking the loop) and keeps a CacheHealth per node. A node's
// answer is a JSON object; "overloaded": true or "status": "overloaded" marks it
// overloaded; "egress_mbps" (a number >= 0) is the node's measured egress, summed
// for the admission traffic estimate (docs/admission.md). Loop thread only.
#pragma once

#include <event2/event.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <functional>
#include "balancer/caches/cache_health.h"
#include "balancer/caches/connection_watch.h"
#include "core/clock.h"
#include "core/handles.h"
#include "core/metrics.h"
#include "http/client/http_client.h"

namespace balancer {

struct HealthPollTarget {
  std::string id;
  std::string url;  // the node's health URL
};

struct HealthPollOptions {
  std::chrono::milliseconds interval{1000};
  std::chrono::milliseconds timeout{800};
  HealthThresholds thresholds;
};

// How much of a health reply is read: the members the balancer uses come first in a node's
// reply (under 1 KiB); a larger reply is read up to here and the rest ignored, so a node is
// never taken down, nor the balancer slowed, by what else its reply holds.
inline constexpr size_t kHealthReplyReadBytes = 16 * 1024;

// A node's own chunk fetches from one origin since it started ("origin_chunk_fetches" in its
// reply: {"<origin>":{"answered":N,"failed":M},...}).
struct OriginChunkFetches {
  std::string origin;
  uint64_t answered = 0;
  uint64_t failed = 0;
  bool operator==(const OriginChunkFetches&) const = default;
};
// Origins read from one reply at most (a node knows its configured origins only).
inline constexpr size_t kMaxReportedOrigins = 64;

// Pure: a poll outcome from the HTTP status and body. True with `overloaded`
// set for a 200 JSON object; false with `reason` otherwise. Only the top-level
// "status", "overloaded" and "egress_mbps" are read, in one pass that keeps
// nothing else. With `egress_mbps` non-null, it receives the document's
// "egress_mbps" when that is a finite number >= 0 (else nullopt).
// `cut_at_bound`: `body` is the first kHealthReplyReadBytes of a longer reply, so
// a document that runs out of bytes is read as far as it goes. With `chunk_fetches` non-null,
// it receives the top-level "origin_chunk_fetches" (at most kMaxReportedOrigins; members that
// are not counts are skipped).
bool interpret_health_reply(int status, const std::string& body, bool& overloaded,
                            std::string& reason, std::optional<double>* egress_mbps = nullptr,
                            bool cut_at_bound = false,
                            std::vector<OriginChunkFetches>* chunk_fetches = nullptr);

class HealthPoller {
 public:
  HealthPoller(event_base& base, http::HttpClient& client, core::MetricsRegistry& metrics,
               const core::Clock& clock = core::Clock::real());
  ~HealthPoller();
  HealthPoller(const HealthPoller&) = delete;
  HealthPoller& operator=(const HealthPoller&) = delete;

  // Sets the nodes to poll and starts polling at once. A node whose id and URL
  // are unchanged keeps its state; others start in state unknown.
  void configure(const std::vector<HealthPollTarget>& targets, HealthPollOptions options);
  void stop();

  // Null for an id that is not configured.
  const CacheHealth* health(const std::string& id) const;
  // A copy of every node's health (for publishing to other loops).
  std::map<std::string, CacheHealth> snapshot() const;
  // Whether the connection to node `id` is open (ConnectionWatch).
  bool watching(const std::string& id) const { return watch_.connected(id); }
  // Called on the loop after every poll result and configure().
  void on_update(std::function<void()> fn) { on_update_ = std::move(fn); }
  // Called on the loop for each origin a node's reply counts fetches of that its last reply
  // did not: (origin, answered, failed) since then. A node's first reply, or one whose counts
  // went back (it restarted), only sets where the next one counts from.
  using ChunkFetchesFn =
      std::function<void(const std::string& origin, uint64_t answered, uint64_t failed)>;
  void on_chunk_fetches(ChunkFetchesFn fn) { on_chunk_fetches_ = std::move(fn); }

  // The nodes' measured egress (cache_health.h, measured_egress), as of `now`.
  MeasuredEgress measured_egress(TimePoint now) const;

 private:
  struct Node;
  // What one poll found.
  struct Outcome {
    bool ok = false;
    bool overloaded = false;
    bool down_at_once = false;  // refused, silent, or the dying process: down at once
    std::optional<double> egress_mbps;
    std::vector<OriginChunkFetches> chunk_fetches;
    std::string reason;  // why it failed
  };
  // Tells on_chunk_fetches_ what `node`'s reply counts since its previous one.
  void report_chunk_fetches(Node& node, std::vector<OriginChunkFetches> counts);
  void poll_all();
  // Polls one node now on a new connection, instead of a poll running (its watched connection
  // closed).
  void poll_one(const std::string& id);
  // `fresh`: on a new connection (after the watched one closed, a kept-alive one may be to the
  // dead process and fail as reset instead of refused).
  void poll_node(const std::string& id, Node& node, bool fresh = false);
  void on_result(const std::string& id, uint64_t generation, Outcome outcome);

  event_base& base_;
  http::HttpClient& client_;
  const core::Clock& clock_;
  std::function<void()> on_update_;
  ChunkFetchesFn on_chunk_fetches_;
  core::MetricsRegistry& metrics_;
  HealthPollOptions options_;
  std::map<std::string, std::unique_ptr<Node>> nodes_;
  core::EventPtr timer_;
  ConnectionWatch watch_;
  uint64_t generation_ = 0;
};

}  // namespace balancer

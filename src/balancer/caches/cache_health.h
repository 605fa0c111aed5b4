// Health of one cache node as seen by the balancer's poller: up/down with
// hysteresis (N consecutive results to change state) plus the node's own
// "overloaded" flag. Pure: every call takes `now`, so tests move a fake clock.
// Loop thread only (no locks).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace balancer {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

struct HealthThresholds {
  int up_after = 2;    // consecutive good polls that bring a down node up
  int down_after = 2;  // consecutive failed polls that take an up node down
  // A node with no poll result for this long is not used (the poller is stuck
  // or the node's answers stopped arriving); 0 disables the check.
  std::chrono::milliseconds stale_after{0};
};

class CacheHealth {
 public:
  enum class State { unknown, up, down };

  explicit CacheHealth(HealthThresholds thresholds = {}) : thresholds_(thresholds) {}

  // A poll answered 200 with a health document. `overloaded` is the node's flag
  // and takes effect at once (the node knows best); up/down follows hysteresis.
  // The first result of a node in state unknown decides at once. `egress_mbps`
  // is the node's measured egress, if its document has one.
  void record_success(bool overloaded, TimePoint now,
                      std::optional<double> egress_mbps = std::nullopt);
  // A poll failed (connect error, timeout, non-200, unparsable body). `down_at_once` (a
  // refused connection: nothing listens there, so it cannot serve — a full listen queue drops
  // connections on Linux, it does not refuse them; or a silent node) takes the node down
  // without down_after.
  void record_failure(std::string reason, TimePoint now, bool down_at_once = false);

  // Up, not overloaded, and (with stale_after) heard from recently.
  bool usable(TimePoint now) const;
  // The last moment usable() can hold with no new poll result: it turns false after
  // this by time alone (TimePoint::max() without stale_after).
  TimePoint usable_until() const;
  State state() const { return state_; }
  bool overloaded() const { return overloaded_; }
  const std::string& last_error() const { return last_error_; }
  // The egress the last successful poll reported; nullopt after a failed poll.
  std::optional<double> egress_mbps() const { return egress_mbps_; }
  // That egress while the node is up and (with stale_after) heard from recently: what counts
  // towards the measured traffic (measured_egress below).
  std::optional<double> current_egress_mbps(TimePoint now) const;
  // Successful polls that reported an egress, since the node was first polled.
  uint64_t egress_readings() const { return egress_readings_; }
  TimePoint last_change() const { return last_change_; }
  TimePoint last_result() const { return last_result_; }
  void set_thresholds(HealthThresholds thresholds) { thresholds_ = thresholds; }

 private:
  HealthThresholds thresholds_;
  State state_ = State::unknown;
  bool overloaded_ = false;
  int successes_ = 0;  // consecutive, while down
  int failures_ = 0;   // consecutive, while up
  std::string last_error_;
  std::optional<double> egress_mbps_;
  uint64_t egress_readings_ = 0;
  TimePoint last_change_{};
  TimePoint last_result_{};
};

const char* to_string(CacheHealth::State state);

// Every cache node's health by id: what the health poller publishes (balancer_fetchers.h).
using HealthView = std::map<std::string, CacheHealth>;

// The cache nodes' measured egress: the sum of their current_egress_mbps (nullopt when no node
// has one), and their egress readings in all (a new reading changes it).
struct MeasuredEgress {
  std::optional<double> mbps;
  uint64_t readings = 0;
};
MeasuredEgress measured_egress(const HealthView& view, TimePoint now);

}  // namespace balancer

// The Redis backend of admission (admission.backend: redis; DESIGN.md "Stores" and "Scale";
// docs/admission.md, "Several balancers: admission on Redis"). Inside the admission component:
// callers use make_redis_admission() (admission/admission.h). Not a public header.
//
// RedisAdmissionScripts: the admission decisions as calls of one atomic Lua script on one
// connection (one RedisClient, one loop). Each call's callback runs on that loop. A call Redis
// does not answer in time (or while it is unreachable) ends as "unavailable": a decision of kind
// refused / Refusal::unavailable (503 with Retry-After), never an admit.
//
// RedisAdmission: the balancer process's side. One connection per event loop; a table of local
// leases (viewers this process admitted, with the time Redis last confirmed their slot) so the
// common request, an admitted viewer's playlist refresh, is answered without a round trip; and
// heartbeats: the home loop sends the refreshed slots to Redis in one batch per interval. While
// Redis is unreachable an admitted viewer keeps playing until its lease runs out (idle timeout
// after Redis last confirmed it); new viewers get 503 admission_unavailable.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "admission/admission.h"
#include "stores/redis_client.h"

namespace core {
class EventLoop;
}

namespace admission {

class RedisAdmissionScripts {
 public:
  // `client` must outlive this object; every call runs on its loop.
  RedisAdmissionScripts(stores::RedisClient& client, const std::string& prefix);

  using DecisionCallback = std::function<void(const AdmissionDecision&)>;
  // A playlist request or access check of `viewer` (bandwidth_bps 0 keeps the known one).
  // `now_ms`: the store's time in milliseconds (StoreTime::caller_now); 0 takes Redis's own
  // clock (wall clock, the fleet's one clock).
  void decide(ViewerKey viewer, uint64_t bandwidth_bps, const ViewerSource& from,
              const AdmissionLimits& limits, int64_t now_ms, DecisionCallback done);
  // Refreshes the slots of `beats` (viewer, bandwidth); restores those Redis lost. `done(ok)`.
  void heartbeat(const std::vector<std::pair<std::string, uint64_t>>& beats,
                 const AdmissionLimits& limits, int64_t now_ms, std::function<void(bool ok)> done);
  // Sets (or with nullopt toggles) overload emulation for the fleet; nullopt when unavailable.
  void switch_emulation(std::optional<bool> want, const AdmissionLimits& limits, int64_t now_ms,
                        std::function<void(std::optional<EmulationSwitch>)> done);
  // Frees the slot or drops the ticket of `viewer`: `done(true)` when it held one, false when
  // neither, nullopt when unavailable.
  void release(ViewerKey viewer, const AdmissionLimits& limits, int64_t now_ms,
               std::function<void(std::optional<bool>)> done);
  // The fleet's numbers (per-channel and per-cache lists and the traffic correction are this
  // process's business and are left empty here); expires what is due. nullopt when unavailable.
  void status(const AdmissionLimits& limits, int64_t now_ms,
              std::function<void(std::optional<AdmissionStatus>)> done);

 private:
  std::vector<std::string> args(const char* op, const AdmissionLimits& limits,
                                int64_t now_ms) const;

  stores::RedisClient& client_;
  std::vector<std::string> keys_;
};

// The decision given when Redis cannot be asked: 503 admission_unavailable, Retry-After.
AdmissionDecision unavailable_decision(const AdmissionLimits& limits);

class RedisAdmission final : public Admission {
 public:
  // See make_redis_admission().
  RedisAdmission(const std::vector<core::EventLoop*>& loops, const RedisAdmissionOptions& options,
                 const AdmissionLimits& limits, StoreTime time);
  ~RedisAdmission() override;
  RedisAdmission(const RedisAdmission&) = delete;
  RedisAdmission& operator=(const RedisAdmission&) = delete;

  // Answered inline when a valid local lease answers it, else when Redis answered (or did not
  // in time: unavailable).
  void request(core::EventLoop& loop, ViewerKey viewer, const StreamInfo& stream,
               const ViewerSource& from, TimePoint now, DecisionCallback done) override;
  void check(core::EventLoop& loop, ViewerKey viewer, std::string_view channel,
             const ViewerSource& from, TimePoint now, DecisionCallback done) override;
  // Drops the local lease at once, then asks Redis. (A heartbeat batch already on its way may
  // still restore the slot; it then runs out after the idle timeout like any unrefreshed one.)
  void release(core::EventLoop& loop, ViewerKey viewer, TimePoint now,
               std::function<void(std::optional<bool>)> done) override;
  // The fleet's switch lives in Redis: every balancer sees it.
  void switch_emulation(core::EventLoop& loop, std::optional<bool> want, TimePoint now,
                        std::function<void(std::optional<EmulationSwitch>)> done) override;
  // Used with the next script call.
  void set_limits(const AdmissionLimits& limits, TimePoint now) override;
  // Ignored: the fleet's estimate stays the declared one.
  void set_measured_traffic_mbps(std::optional<double>, TimePoint) override {}
  // Home loop: sends the heartbeat batch when due, drops leases that ran out and refreshes the
  // status snapshot from Redis.
  void tick(TimePoint now, std::function<void()> done) override;
  // The last status read from Redis (the fleet's counts) with this process's own per-channel
  // and per-cache counts of its leased viewers.
  AdmissionStatus status(TimePoint now) override;

 private:
  struct Lease {
    TimePoint confirmed;        // when Redis last confirmed the slot (admission or heartbeat)
    TimePoint last_request;     // the viewer's last request here
    bool beat_pending = false;  // refreshed since the last heartbeat batch
    uint64_t bandwidth_bps = 0;
    std::string channel;
    std::string cache;
  };
  struct PerLoop;

  AdmissionLimits limits() const;
  PerLoop& on(core::EventLoop& loop);
  // The `now_ms` the scripts get: 0 (Redis's clock) or the caller's `now` in milliseconds.
  int64_t store_ms(TimePoint now) const;
  void decide(core::EventLoop& loop, ViewerKey viewer, const StreamInfo& stream, bool stream_known,
              const ViewerSource& from, TimePoint now, DecisionCallback done);
  void confirm(const std::string& key, const StreamInfo& stream, bool stream_known, TimePoint at);
  // The answers to tick()'s heartbeat and status calls, under the mutex.
  void note_heartbeats(const std::vector<std::pair<std::string, uint64_t>>& slice, TimePoint sent,
                       bool ok);
  void note_status(std::optional<AdmissionStatus> s);

  RedisAdmissionOptions options_;
  StoreTime time_;
  std::vector<std::unique_ptr<PerLoop>> loops_;
  mutable std::mutex mutex_;  // guards everything below
  AdmissionLimits limits_;
  std::unordered_map<std::string, Lease> leases_;
  AdmissionStatus last_status_;
  bool reachable_ = false;  // last status call answered (logged when it changes)
  bool heartbeat_in_flight_ = false;
  size_t heartbeats_in_flight_ = 0;  // slices of the batch not answered yet
  bool status_in_flight_ = false;
  TimePoint last_heartbeat_{};
};

}  // namespace admission

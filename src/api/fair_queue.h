// A bounded queue shared fairly between keys (client addresses): each key has
// its own FIFO, keys are served round-robin, a key may use free room beyond its
// share of `per_key` entries (one NAT'd venue is one address) but in a full queue
// holds at most that share, and when the whole queue is full a newcomer takes the place of the
// newest entry of the key with the largest recent demand (entries pushed,
// refused ones included, decaying with `demand_half_life`) if that demand exceeds
// the newcomer's (this push included) by more than half a push. So neither one
// address nor a spray from many that keeps asking can keep a quiet address out:
// its first entry gets in and is served within one round, while keys asking
// alike do not push each other out. An entry may carry
// a time before which it is not served (a slowed-down attempt); it keeps its
// place meanwhile.
//
// Pure logic: time comes in as `now`; not thread-safe (the owner locks). Memory
// is bounded by `capacity` entries plus the demand of keys seen recently
// (forgotten once decayed, and all idle keys dropped past `max_idle_keys`).
#pragma once

#include <chrono>
#include <cmath>
#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/clock.h"

namespace api {

struct FairQueueLimits {
  size_t capacity = 64;  // entries in all
  size_t per_key = 4;    // entries of one key
  std::chrono::milliseconds demand_half_life{10'000};
  size_t max_idle_keys = 100'000;
  bool operator==(const FairQueueLimits&) const = default;
};

template <class Job>
class FairQueue {
 public:
  enum class Admission { queued, key_full, queue_full };
  struct PushResult {
    Admission admission = Admission::queued;
    std::optional<Job>
        displaced;  // queued: an entry pushed out to make room (its owner answers "busy")
  };

  explicit FairQueue(FairQueueLimits limits) : limits_(limits) {}

  void set_limits(FairQueueLimits limits) { limits_ = limits; }
  size_t size() const { return size_; }
  size_t keys() const { return keys_.size(); }

  // Adds `job` for `key`, not to be served before `not_before`. A refused job
  // is dropped (the caller still holds what it needs to answer).
  PushResult push(const std::string& key, Job job, core::SteadyTime not_before,
                  core::SteadyTime now) {
    prune_idle(now);
    PushResult out;
    KeyState& mine = keys_[key];
    decay(mine, now);
    mine.demand += 1;
    const bool full = size_ >= limits_.capacity;
    if (full && mine.entries.size() >= limits_.per_key) {
      out.admission = Admission::key_full;
      return out;
    }
    if (full) {
      auto heaviest = heaviest_key(now);
      if (heaviest == keys_.end() || heaviest->first == key ||
          heaviest->second.demand <= mine.demand + 0.5) {
        out.admission = Admission::queue_full;
        return out;
      }
      out.displaced = std::move(heaviest->second.entries.back().job);
      heaviest->second.entries.pop_back();
      --size_;
      if (heaviest->second.entries.empty()) drop_from_ring(heaviest->first);
    }
    if (mine.entries.empty()) ring_.push_back(key);
    mine.entries.push_back(Entry{std::move(job), not_before});
    ++size_;
    return out;
  }

  // The next job whose time has come, taking keys in turn; nullopt when none is
  // ready (next_ready() says when one will be).
  std::optional<Job> pop(core::SteadyTime now) {
    for (size_t turns = ring_.size(); turns > 0; --turns) {
      std::string key = std::move(ring_.front());
      ring_.pop_front();
      KeyState& state = keys_[key];
      auto ready = state.entries.begin();
      while (ready != state.entries.end() && ready->not_before > now) ++ready;
      if (ready == state.entries.end()) {
        ring_.push_back(std::move(key));
        continue;
      }
      Job job = std::move(ready->job);
      state.entries.erase(ready);
      --size_;
      if (!state.entries.empty()) ring_.push_back(std::move(key));
      return job;
    }
    return std::nullopt;
  }

  // The earliest time an entry may be served; nullopt when the queue is empty.
  std::optional<core::SteadyTime> next_ready() const {
    std::optional<core::SteadyTime> out;
    for (const auto& key : ring_) {
      for (const auto& e : keys_.at(key).entries) {
        if (!out || e.not_before < *out) out = e.not_before;
      }
    }
    return out;
  }

  // Every queued job, oldest key first (shutdown: the owner runs or refuses them).
  std::deque<Job> take_all() {
    std::deque<Job> out;
    for (const auto& key : ring_) {
      for (auto& e : keys_[key].entries) out.push_back(std::move(e.job));
      keys_[key].entries.clear();
    }
    ring_.clear();
    size_ = 0;
    return out;
  }

 private:
  struct Entry {
    Job job;
    core::SteadyTime not_before;
  };
  struct KeyState {
    std::vector<Entry>
        entries;  // beyond per_key only while the queue had room; an idle key allocates nothing
    double demand = 0;  // entries pushed, decayed to `updated`
    core::SteadyTime updated{};
  };
  using Keys = std::unordered_map<std::string, KeyState>;

  void decay(KeyState& s, core::SteadyTime now) const {
    if (s.updated != core::SteadyTime{} && now > s.updated && s.demand > 0) {
      const double halves = std::chrono::duration<double>(now - s.updated).count() /
                            std::chrono::duration<double>(limits_.demand_half_life).count();
      s.demand *= std::exp2(-halves);
    }
    s.updated = now;
  }
  typename Keys::iterator heaviest_key(core::SteadyTime now) {
    auto best = keys_.end();
    for (const auto& key : ring_) {
      auto it = keys_.find(key);
      decay(it->second, now);
      if (best == keys_.end() || it->second.demand > best->second.demand) best = it;
    }
    return best;
  }
  void drop_from_ring(const std::string& key) {
    for (auto it = ring_.begin(); it != ring_.end(); ++it) {
      if (*it == key) {
        ring_.erase(it);
        return;
      }
    }
  }
  // Idle keys only remember recent demand: past `max_idle_keys` the decayed
  // ones are forgotten, and if that is not enough every idle one (amortised: the
  // next sweep is at least max_idle_keys / 2 pushes away).
  void prune_idle(core::SteadyTime now) {
    if (keys_.size() <= limits_.capacity + limits_.max_idle_keys) return;
    for (auto it = keys_.begin(); it != keys_.end();) {
      decay(it->second, now);
      it = it->second.entries.empty() && it->second.demand < 0.01 ? keys_.erase(it) : std::next(it);
    }
    if (keys_.size() <= limits_.capacity + limits_.max_idle_keys / 2) return;
    for (auto it = keys_.begin(); it != keys_.end();)
      it = it->second.entries.empty() ? keys_.erase(it) : std::next(it);
  }

  FairQueueLimits limits_;
  Keys keys_;
  std::deque<std::string> ring_;  // keys with entries, in serving order
  size_t size_ = 0;
};

}  // namespace api

// Coalesced fetches: one upstream fetch per key however many ask at once. The
// first asker starts the fetch, later askers join it as waiters, and finishing
// the fetch hands every waiter to the caller to answer once. Plus the one
// mapping from an upstream failure (connect failure, timeout, origin 404, other
// status, body over the cap) to the HTTP status and JSON error viewers get.
//
// Used by the balancer's source cache, source fronts and key store, and by the
// cache node's table of flights. A CoalescedFetches is not synchronised: it
// belongs to one event loop, or its owner guards it with a lock.
#pragma once

#include <cstddef>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "core/result.h"
#include "http/client/http_client.h"

namespace http {

struct CoalescedFetchLimits {
  size_t max_waiters_per_key = std::numeric_limits<size_t>::max();
  size_t max_keys = std::numeric_limits<size_t>::max();  // fetches running at once
};

enum class JoinOutcome {
  started,           // no fetch was running: the caller starts one now and finishes it later
  joined,            // a fetch is running: the waiter is handed back when it finishes
  too_many_waiters,  // the key's waiter cap is reached: nothing kept, answer the asker now
  too_many_keys,     // the cap on running fetches is reached: nothing kept, answer now
};

// True for the two outcomes where nothing was kept.
inline bool overflowed(JoinOutcome outcome) {
  return outcome == JoinOutcome::too_many_waiters || outcome == JoinOutcome::too_many_keys;
}

// `Waiter` is whatever answers an asker (usually a callback); `Flight` is the
// caller's state of one running fetch (transfer id, body so far ...), created
// value-initialised when the fetch starts and handed back when it finishes.
template <typename Waiter, typename Flight = std::monostate>
class CoalescedFetches {
 public:
  struct Joined {
    JoinOutcome outcome = JoinOutcome::started;
    Flight* flight = nullptr;  // the running fetch's state; null on overflow
  };
  struct Finished {
    Flight flight{};
    std::vector<Waiter> waiters;  // in join order
  };

  explicit CoalescedFetches(CoalescedFetchLimits limits = {}) : limits_(limits) {}
  void set_limits(CoalescedFetchLimits limits) { limits_ = limits; }

  // Adds `waiter` to `key`'s fetch, starting one if none runs. `waiter` is moved
  // from only when kept (started, joined): on overflow the caller still has it.
  Joined join(const std::string& key, Waiter&& waiter) {
    Joined joined = find_or_start(key);
    if (joined.flight == nullptr) return joined;
    auto& waiters = flights_.find(key)->second.waiters;
    if (waiters.size() >= limits_.max_waiters_per_key) {
      if (joined.outcome == JoinOutcome::started) flights_.erase(key);  // only with a zero cap
      return Joined{JoinOutcome::too_many_waiters, nullptr};
    }
    waiters.push_back(std::move(waiter));
    return joined;
  }

  // Starts `key`'s fetch with no waiter (a background refresh), or finds the one
  // running: started, joined or too_many_keys.
  Joined find_or_start(const std::string& key) {
    auto it = flights_.find(key);
    if (it != flights_.end()) return Joined{JoinOutcome::joined, &it->second.flight};
    if (flights_.size() >= limits_.max_keys) return Joined{JoinOutcome::too_many_keys, nullptr};
    it = flights_.emplace(key, Finished{}).first;
    return Joined{JoinOutcome::started, &it->second.flight};
  }

  // Ends `key`'s fetch and hands back its state and waiters; the caller answers
  // each waiter once. The key is free before anything is answered, so an answer
  // that asks again (even for this key) starts a new fetch. Empty if none ran.
  Finished finish(const std::string& key) {
    auto it = flights_.find(key);
    if (it == flights_.end()) return {};
    Finished finished = std::move(it->second);
    flights_.erase(it);
    return finished;
  }

  // finish(), then `answer(waiter)` for each waiter in join order.
  template <typename Answer>
  void finish(const std::string& key, Answer&& answer) {
    Finished finished = finish(key);
    for (Waiter& waiter : finished.waiters) answer(waiter);
  }

  // The waiters of `key`'s running fetch, handed over before it finishes (an answer that
  // came another way serves them); the fetch runs on with none. Empty if none runs.
  std::vector<Waiter> take_waiters(const std::string& key) {
    auto it = flights_.find(key);
    if (it == flights_.end()) return {};
    return std::exchange(it->second.waiters, {});
  }

  Flight* flight(const std::string& key) {
    auto it = flights_.find(key);
    return it == flights_.end() ? nullptr : &it->second.flight;
  }
  bool running(const std::string& key) const { return flights_.count(key) != 0; }
  size_t waiting(const std::string& key) const {
    auto it = flights_.find(key);
    return it == flights_.end() ? 0 : it->second.waiters.size();
  }
  size_t size() const { return flights_.size(); }

  // `visit(key, flight)` for every running fetch (e.g. to cancel transfers on shutdown).
  template <typename Visit>
  void for_each(Visit&& visit) {
    for (auto& [key, entry] : flights_) visit(key, entry.flight);
  }

 private:
  CoalescedFetchLimits limits_;
  std::unordered_map<std::string, Finished> flights_;
};

// An upstream body kept in memory up to a cap: past it, too_large and nothing kept.
struct CappedBody {
  std::string bytes;
  bool too_large = false;
  // Appends `more` unless that would pass `cap` (then lets go of what it had).
  void append(std::string_view more, size_t cap) {
    if (too_large) return;
    if (bytes.size() + more.size() > cap) {
      too_large = true;
      bytes = std::string();
      return;
    }
    bytes.append(more);
  }
};

// ---- upstream failures ----

enum class UpstreamFailure {
  unreachable,  // no response head: refused, DNS, TLS, or the connection dropped before the head
  timeout,      // the fetch ran out of time
  broken,       // the connection failed after the head
  truncated,    // the transfer ended with fewer bytes than announced
  not_found,    // origin 404 or 410
  bad_status,   // any other status the caller cannot serve
  too_large,    // the body is over the caller's size cap
};

// Why a finished transfer gave nothing servable; nullopt for a complete 200 (or
// 304 when `not_modified_ok`) within the cap. `head_status` is the status of the
// response head, 0 if none arrived; `too_large` that the body went over the cap.
std::optional<UpstreamFailure> classify_fetch(const FetchResult& result, int head_status,
                                              bool too_large, bool not_modified_ok = false);

// How a component names what it fetched in its error replies.
struct UpstreamWording {
  std::string_view noun;            // "playlist", "key", "chunk"
  std::string_view too_large_code;  // "source_too_large", "key_too_large", "object_too_large"
  std::string_view accepter;        // "the balancer", "this cache node"
};

struct UpstreamErrorReply {
  int status = 502;
  core::Error error;
};

// The status and JSON error for `failure`: 504 origin_timeout; 404 not_found;
// 502 origin_unreachable, origin_error (broken, truncated, other status; the
// message names `origin_status`) or the wording's too-large code.
UpstreamErrorReply upstream_error(UpstreamFailure failure, const UpstreamWording& wording,
                                  int origin_status = 0);

// The reply for an asker a CoalescedFetches cap turned away: 503 busy.
UpstreamErrorReply overflow_error(const UpstreamWording& wording);

}  // namespace http

// Password checks off the loops, shared fairly between client addresses: a pool of
// worker threads (api.kdf_threads, one per core by default) takes checks from one
// api::FairQueue keyed by address (each
// address its own FIFO, served round-robin, beyond `per_key` waiting only while
// there is room; when full, a quiet address displaces the newest check of the address with the
// largest recent share). A spray from one address or from a hundred cannot
// keep the real user's check out of the queue; it is served within one round.
// A check may be delayed (a login slowed by LoginLimiter); it keeps its place.
// The queue measures how fast checks complete, so a refused client can be told how
// long to wait (RetryAfterEstimator).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/fair_queue.h"
#include "api/retry_after_estimator.h"
#include "core/clock.h"

namespace api {

// How many password-check workers to start: `configured` when above 0 (api.kdf_threads), else
// one per core (`cores` as std::thread::hardware_concurrency() says; at least one).
size_t kdf_pool_size(int configured, unsigned cores);

class PasswordCheckQueue {
 public:
  struct Check {
    std::function<void()> run;     // worker thread: hashes, then posts the answer to its loop
    std::function<void()> refuse;  // any thread, no lock held: posts 503 busy to its loop
  };
  using Admission = api::FairQueue<Check>::Admission;

  // Starts `workers` worker threads (at least one). `clock` must outlive the queue.
  PasswordCheckQueue(const core::Clock& clock, api::FairQueueLimits limits, size_t workers = 1);
  ~PasswordCheckQueue();  // runs the checks still queued (delays ignored), then joins the workers
  PasswordCheckQueue(const PasswordCheckQueue&) = delete;
  PasswordCheckQueue& operator=(const PasswordCheckQueue&) = delete;

  // Any thread. Queues `check` for `address`, to run no sooner than `delay`
  // from now. Anything but `queued` means the check was dropped and the caller
  // answers busy; a check displaced to make room has its refuse() called here.
  // `displaced` (optional) is set when that happened.
  Admission submit(const std::string& address, Check check, std::chrono::milliseconds delay,
                   bool* displaced = nullptr);
  void set_limits(api::FairQueueLimits limits);
  size_t pending() const;  // queued or running
  size_t workers() const { return threads_.size(); }
  // Any thread: how long a client refused now should wait (checks pending / measured rate,
  // clamped to 1..60 s), and the rate itself (checks completed per second, recent window).
  std::chrono::seconds retry_after() const;
  double checks_per_second() const;

 private:
  void run();

  const core::Clock& clock_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  api::FairQueue<Check> queue_;
  mutable RetryAfterEstimator rate_;  // under mutex_
  size_t running_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace api

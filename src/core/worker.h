// Moving work off the event loop and back: a WorkerThread runs jobs in order on
// its own thread (disk writes, fsync, LMDB commits); a LoopPoster lets any thread
// hand a job back to the loop thread (woken through an eventfd).
#pragma once

#include <event2/event.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "core/handles.h"

namespace core {

class WorkerThread {
 public:
  WorkerThread();
  ~WorkerThread();  // runs the jobs already queued, then joins
  WorkerThread(const WorkerThread&) = delete;
  WorkerThread& operator=(const WorkerThread&) = delete;
  // Any thread.
  void post(std::function<void()> job);
  size_t queued() const;

 private:
  void run();
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

class LoopPoster {
 public:
  // Loop thread: creates the wake-up event on `base`.
  explicit LoopPoster(event_base& base);
  ~LoopPoster();
  LoopPoster(const LoopPoster&) = delete;
  LoopPoster& operator=(const LoopPoster&) = delete;
  // Any thread: `job` runs later on the loop thread (never inline).
  void post(std::function<void()> job);
  // Any thread: how many times a post woke the loop (once per batch of jobs it drains).
  uint64_t wakeups() const { return wakeups_.load(std::memory_order_relaxed); }

 private:
  void drain();
  int fd_ = -1;
  std::atomic<uint64_t> wakeups_{0};
  EventPtr event_;
  std::mutex mutex_;
  std::deque<std::function<void()>> jobs_;
};

}  // namespace core

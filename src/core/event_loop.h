// One event loop per thread. An EventLoop owns its event_base and the one way
// into it from other threads, post(). Objects created for a loop are touched by
// that loop's thread only; anything crossing loops is posted.
#pragma once

#include <event2/event.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "core/handles.h"
#include "core/worker.h"

namespace core {

class EventLoop {
 public:
  // Creates the base; the loop runs once run() is called on some thread.
  explicit EventLoop(size_t index);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  event_base& base() { return *base_; }
  size_t index() const { return index_; }

  // Any thread: `job` runs later on this loop's thread (never inline), in post order.
  void post(std::function<void()> job);
  // True on the thread currently running this loop.
  bool in_loop_thread() const { return running_thread_.load() == std::this_thread::get_id(); }
  // Whether the calling thread may touch this loop's objects: the thread running the loop,
  // or, while it does not run, the one thread that builds them before and destroys them after
  // (checked by expect_on(), thread_rule.h).
  bool owned_here() const {
    const std::thread::id running = running_thread_.load();
    return running == std::thread::id{} || running == std::this_thread::get_id();
  }

  // Runs the loop on the calling thread until stop().
  void run();
  // Any thread: makes run() return after the current iteration.
  void stop();

 private:
  size_t index_;
  EventBasePtr base_;
  std::unique_ptr<LoopPoster> poster_;
  std::atomic<std::thread::id> running_thread_{};
};

// A timer on one loop: `fire` runs on that loop's thread `after` from start() (Repeat::once)
// or every `after` from then on (Repeat::every), until cancel() or destruction. Loop thread
// only; start, cancel and armed may be called from inside `fire`.
class LoopTimer {
 public:
  enum class Repeat { once, every };
  LoopTimer(EventLoop& loop, Repeat repeat, std::function<void()> fire);
  // On a bare base (a part given its loop's base only); the same rules.
  LoopTimer(event_base& base, Repeat repeat, std::function<void()> fire);
  LoopTimer(const LoopTimer&) = delete;
  LoopTimer& operator=(const LoopTimer&) = delete;

  // Arms the timer, or re-arms it counting from now.
  void start(std::chrono::microseconds after);
  // Disarms it and frees its event (a stopping owner lets go of the loop's base here).
  void cancel() { event_.reset(); }
  // Started and not yet fired (once), or not cancelled (every).
  bool armed() const;

 private:
  static void on_fire(evutil_socket_t fd, short what, void* self);

  event_base& base_;
  Repeat repeat_;
  std::function<void()> fire_;
  EventPtr event_;  // null until started, and after cancel()
};

// A value published by one thread and read by many: readers keep their own
// copy of the shared_ptr and re-read it only when the generation moved, so the
// common case is one atomic load and no lock.
template <class T>
class Published {
 public:
  explicit Published(std::shared_ptr<const T> initial) : value_(std::move(initial)) {}

  // Any thread.
  void publish(std::shared_ptr<const T> value) {
    {
      std::lock_guard lock(mutex_);
      value_ = std::move(value);
    }
    generation_.fetch_add(1, std::memory_order_release);
  }
  std::shared_ptr<const T> load() const {
    std::lock_guard lock(mutex_);
    return value_;
  }
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  // One per reading thread (not shared between threads).
  class Reader {
   public:
    explicit Reader(const Published& source) : source_(&source) {}
    const T& get() { return *shared(); }
    const std::shared_ptr<const T>& shared() {
      uint64_t g = source_->generation();
      if (g != seen_ || !cached_) {
        cached_ = source_->load();
        seen_ = g;
      }
      return cached_;
    }

   private:
    const Published* source_;
    uint64_t seen_ = ~uint64_t{0};
    std::shared_ptr<const T> cached_;
  };

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const T> value_;
  std::atomic<uint64_t> generation_{0};
};

}  // namespace core

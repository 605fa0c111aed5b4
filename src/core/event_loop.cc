#include "core/event_loop.h"

#include <event2/thread.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "core/thread_rule.h"

namespace core {
namespace {

// libevent's own locking must be on before the first base exists: timers and
// bufferevents may then be freed by a thread other than the one that runs the base
// (e.g. an evbuffer reference released after a cross-loop hand-off).
void enable_libevent_threads() {
  static std::once_flag once;
  std::call_once(once, [] { evthread_use_pthreads(); });
}

}  // namespace

EventLoop::EventLoop(size_t index) : index_(index) {
  enable_libevent_threads();
  event_config* cfg = event_config_new();
  // Connections turn their write interest on and off around replies (bufferevents, the
  // HTTP/1 transport's write watch); the changelist folds those into one epoll_ctl instead
  // of two or more (with evhttp, which did so for reads too: ~30% more playlist requests a
  // second). Changes are applied
  // at the next dispatch, so a deferred DEL may name an fd number that was
  // closed and reopened meanwhile (by this loop, another loop or a disk worker);
  // libevent takes ENOENT/EBADF/EPERM on such a DEL as done and retries a MOD
  // that fails with ENOENT as an ADD. ThreadSanitizer would see that reuse as a
  // race on the fd between the two threads, and its report of it cannot always be
  // suppressed (the stale DEL's stack is often gone by then), so its builds apply
  // each change at once.
#if !defined(__SANITIZE_THREAD__)
  event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
#endif
  base_.reset(event_base_new_with_config(cfg));
  event_config_free(cfg);
  if (!base_) base_.reset(event_base_new());
  poster_ = std::make_unique<LoopPoster>(*base_);
}

EventLoop::~EventLoop() {
  poster_.reset();
  base_.reset();
}

void EventLoop::post(std::function<void()> job) {
  poster_->post(std::move(job));
}

void EventLoop::run() {
  running_thread_.store(std::this_thread::get_id());
  event_base_dispatch(base_.get());
  running_thread_.store(std::thread::id{});
}

void thread_rule_broken(const EventLoop& loop, std::source_location where) {
  std::fprintf(stderr, "thread rule broken: %s (%s:%u) ran on a thread other than loop %zu's\n",
               where.function_name(), where.file_name(), static_cast<unsigned>(where.line()),
               loop.index());
  std::abort();
}

void EventLoop::stop() {
  post([this] { event_base_loopexit(base_.get(), nullptr); });
}

LoopTimer::LoopTimer(EventLoop& loop, Repeat repeat, std::function<void()> fire)
    : LoopTimer(loop.base(), repeat, std::move(fire)) {}

LoopTimer::LoopTimer(event_base& base, Repeat repeat, std::function<void()> fire)
    : base_(base), repeat_(repeat), fire_(std::move(fire)) {}

void LoopTimer::start(std::chrono::microseconds after) {
  if (!event_) {
    event_.reset(event_new(&base_, -1, repeat_ == Repeat::every ? EV_PERSIST : 0,
                           &LoopTimer::on_fire, this));
  }
  const auto micros = std::max<std::chrono::microseconds::rep>(after.count(), 0);
  const timeval tv{static_cast<time_t>(micros / 1'000'000),
                   static_cast<suseconds_t>(micros % 1'000'000)};
  evtimer_add(event_.get(), &tv);
}

bool LoopTimer::armed() const {
  return event_ && evtimer_pending(event_.get(), nullptr) != 0;
}

void LoopTimer::on_fire(evutil_socket_t /*fd*/, short /*what*/, void* self) {
  static_cast<LoopTimer*>(self)->fire_();
}

}  // namespace core

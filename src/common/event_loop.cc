#include "common/event_loop.h"

#include <event2/thread.h>

#include <mutex>

namespace common {
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
  // No EPOLL_USE_CHANGELIST: it defers epoll_ctl to the next dispatch, so a
  // socket closed in this turn is deleted from epoll by number after another
  // thread (a disk worker, another loop) may have reopened that number.
  base_.reset(event_base_new());
  poster_ = std::make_unique<LoopPoster>(*base_);
}

EventLoop::~EventLoop() {
  poster_.reset();
  base_.reset();
}

void EventLoop::post(std::function<void()> job) { poster_->post(std::move(job)); }

void EventLoop::run() {
  running_thread_.store(std::this_thread::get_id());
  event_base_dispatch(base_.get());
  running_thread_.store(std::thread::id{});
}

void EventLoop::stop() {
  post([this] { event_base_loopexit(base_.get(), nullptr); });
}

}  // namespace common

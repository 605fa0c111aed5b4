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
  event_config* cfg = event_config_new();
  // Changes to a connection's read/write interest within one loop turn cost one
  // epoll_ctl instead of a del/add pair per request.
  event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
  base_.reset(event_base_new_with_config(cfg));
  event_config_free(cfg);
  if (!base_) base_.reset(event_base_new());
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

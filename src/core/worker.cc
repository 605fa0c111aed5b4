#include "core/worker.h"

#include <sys/eventfd.h>
#include <unistd.h>

namespace core {

WorkerThread::WorkerThread() : thread_([this] { run(); }) {}

WorkerThread::~WorkerThread() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void WorkerThread::post(std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
}

size_t WorkerThread::queued() const {
  std::lock_guard lock(mutex_);
  return jobs_.size();
}

void WorkerThread::run() {
  while (true) {
    std::function<void()> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping and nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

LoopPoster::LoopPoster(event_base& base) {
  fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  event_.reset(event_new(
      &base, fd_, EV_READ | EV_PERSIST,
      [](evutil_socket_t, short, void* arg) { static_cast<LoopPoster*>(arg)->drain(); }, this));
  event_add(event_.get(), nullptr);
}

LoopPoster::~LoopPoster() {
  event_.reset();
  if (fd_ >= 0) close(fd_);
}

void LoopPoster::post(std::function<void()> job) {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    // Only the first job into an empty queue wakes the loop: the jobs behind it are taken
    // by the same drain. (A serving loop posts each blocking reload, thousands a second, and
    // every wake-up is a write here and a read and an epoll return there.)
    wake = jobs_.empty();
    jobs_.push_back(std::move(job));
  }
  if (!wake) return;
  wakeups_.fetch_add(1, std::memory_order_relaxed);
  uint64_t one = 1;
  ssize_t ignored = write(fd_, &one, sizeof one);
  (void)ignored;
}

void LoopPoster::drain() {
  uint64_t count = 0;
  ssize_t ignored = read(fd_, &count, sizeof count);
  (void)ignored;
  std::deque<std::function<void()>> jobs;
  {
    std::lock_guard lock(mutex_);
    jobs.swap(jobs_);
  }
  for (auto& job : jobs) job();
}

}  // namespace core

#include "api/password_queue.h"

#include <algorithm>
#include <deque>

namespace api {

PasswordCheckQueue::PasswordCheckQueue(const common::Clock& clock, common::FairQueueLimits limits)
    : clock_(clock), queue_(limits), thread_([this] { run(); }) {}

PasswordCheckQueue::~PasswordCheckQueue() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

PasswordCheckQueue::Admission PasswordCheckQueue::submit(const std::string& address, Check check,
                                                         std::chrono::milliseconds delay, bool* displaced) {
  common::FairQueue<Check>::PushResult result;
  {
    std::lock_guard lock(mutex_);
    const auto now = clock_.now();
    result = queue_.push(address, std::move(check), now + delay, now);
  }
  if (result.admission == Admission::queued) wake_.notify_one();
  if (displaced != nullptr) *displaced = result.displaced.has_value();
  if (result.displaced && result.displaced->refuse) result.displaced->refuse();
  return result.admission;
}

void PasswordCheckQueue::set_limits(common::FairQueueLimits limits) {
  std::lock_guard lock(mutex_);
  queue_.set_limits(limits);
}

size_t PasswordCheckQueue::pending() const {
  std::lock_guard lock(mutex_);
  return queue_.size() + running_;
}

void PasswordCheckQueue::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (auto check = queue_.pop(clock_.now())) {
      ++running_;
      lock.unlock();
      check->run();
      check.reset();  // its captures go before the lock is taken again
      lock.lock();
      --running_;
      continue;
    }
    auto next = queue_.next_ready();
    if (!next) {
      wake_.wait(lock);
    } else {
      // Re-read the clock at least every 100 ms (a test's clock moves by hand).
      auto wait = std::clamp<std::chrono::steady_clock::duration>(*next - clock_.now(), std::chrono::milliseconds(1),
                                                                  std::chrono::milliseconds(100));
      wake_.wait_for(lock, wait);
    }
  }
  std::deque<Check> rest = queue_.take_all();
  lock.unlock();
  for (auto& check : rest) check.run();
}

}  // namespace api

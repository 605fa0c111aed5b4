#include "api/password_queue.h"

#include <algorithm>
#include <deque>

namespace api {

size_t kdf_pool_size(int configured, unsigned cores) {
  if (configured > 0) return static_cast<size_t>(configured);
  return std::max(1u, cores);
}

PasswordCheckQueue::PasswordCheckQueue(const core::Clock& clock, api::FairQueueLimits limits,
                                       size_t workers)
    : clock_(clock), queue_(limits) {
  const size_t count = std::max<size_t>(workers, 1);
  threads_.reserve(count);
  for (size_t i = 0; i < count; ++i) threads_.emplace_back([this] { run(); });
}

PasswordCheckQueue::~PasswordCheckQueue() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

PasswordCheckQueue::Admission PasswordCheckQueue::submit(const std::string& address, Check check,
                                                         std::chrono::milliseconds delay,
                                                         bool* displaced) {
  api::FairQueue<Check>::PushResult result;
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

void PasswordCheckQueue::set_limits(api::FairQueueLimits limits) {
  std::lock_guard lock(mutex_);
  queue_.set_limits(limits);
}

size_t PasswordCheckQueue::pending() const {
  std::lock_guard lock(mutex_);
  return queue_.size() + running_;
}

std::chrono::seconds PasswordCheckQueue::retry_after() const {
  std::lock_guard lock(mutex_);
  return rate_.retry_after(queue_.size() + running_, threads_.size(), clock_.now());
}

double PasswordCheckQueue::checks_per_second() const {
  std::lock_guard lock(mutex_);
  return rate_.checks_per_second(clock_.now());
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
      rate_.completed(clock_.now());
      continue;
    }
    auto next = queue_.next_ready();
    if (!next) {
      wake_.wait(lock);
    } else {
      // Re-read the clock at least every 100 ms (a test's clock moves by hand).
      auto wait = std::clamp<std::chrono::steady_clock::duration>(
          *next - clock_.now(), std::chrono::milliseconds(1), std::chrono::milliseconds(100));
      wake_.wait_for(lock, wait);
    }
  }
  // The first worker to stop runs what is left; the others find the queue empty.
  std::deque<Check> rest = queue_.take_all();
  lock.unlock();
  for (auto& check : rest) check.run();
}

}  // namespace api

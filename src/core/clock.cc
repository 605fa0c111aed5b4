#include "core/clock.h"

#include <ctime>

namespace core {
namespace {

class RealClock final : public Clock {
 public:
  SteadyTime now() const override { return std::chrono::steady_clock::now(); }
  // Not time(): glibc reads it from the kernel's coarse clock, which turns a second up to a
  // tick after CLOCK_REALTIME does, and a stamp taken in milliseconds on one thread must never
  // be ahead of the seconds read on another (a chunk's first listing, its link's expiry).
  int64_t unix_now() const override { return realtime().tv_sec; }
  int64_t unix_now_ms() const override {
    const timespec ts = realtime();
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
  }

 private:
  static timespec realtime() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts;
  }
};

}  // namespace

const Clock& Clock::real() {
  static const RealClock clock;
  return clock;
}

}  // namespace core

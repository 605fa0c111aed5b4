#include "core/watchdog.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "core/log.h"

namespace core {
namespace {

using SteadyClock = std::chrono::steady_clock;

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch())
      .count();
}

}  // namespace

std::optional<StuckLoop> find_stuck_loop(const std::vector<SteadyClock::time_point>& last_beats,
                                         SteadyClock::time_point now, SteadyClock::duration bound) {
  std::optional<StuckLoop> worst;
  for (size_t i = 0; i < last_beats.size(); ++i) {
    const auto age = now - last_beats[i];
    if (age > bound && (!worst || age > worst->stuck_for)) worst = StuckLoop{i, age};
  }
  return worst;
}

Watchdog::Watchdog(std::string service, std::chrono::milliseconds bound, SystemdNotifier& notify)
    : service_(std::move(service)), bound_(bound), notify_(notify) {}

Watchdog::~Watchdog() {
  stop();
}

void Watchdog::watch(EventLoop& loop, std::string name) {
  auto beat = std::make_unique<Beat>();
  beat->name = std::move(name);
  beat->last_ns.store(steady_ns());
  Beat* target = beat.get();
  beat->timer = std::make_unique<LoopTimer>(loop, LoopTimer::Repeat::every, [target] {
    target->last_ns.store(steady_ns(), std::memory_order_relaxed);
  });
  beat->timer->start(kWatchdogBeat);
  beats_.push_back(std::move(beat));
}

void Watchdog::start() {
  if (thread_.joinable()) return;
  if (bound_.count() == 0 && !notify_.watchdog_interval()) return;
  for (auto& beat : beats_) beat->last_ns.store(steady_ns());
  thread_ = std::thread([this] { run(); });
}

void Watchdog::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Watchdog::run() {
  // Pings at half systemd's interval, and only while no loop has missed more than that.
  const auto ping_every =
      notify_.watchdog_interval()
          ? std::max<SteadyClock::duration>(*notify_.watchdog_interval() / 2, 2 * kWatchdogBeat)
          : SteadyClock::duration::zero();
  // Checks four times within the shortest of the bound and the ping interval, at least every
  // 0.25 s.
  SteadyClock::duration period = std::chrono::milliseconds(250);
  if (bound_.count() > 0) period = std::min<SteadyClock::duration>(period, bound_ / 4);
  if (ping_every != SteadyClock::duration::zero()) period = std::min(period, ping_every / 4);
  SteadyClock::time_point next_ping{};
  std::vector<SteadyClock::time_point> last(beats_.size());
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, period, [this] { return stopping_; })) {
    const auto now = SteadyClock::now();
    for (size_t i = 0; i < beats_.size(); ++i) {
      last[i] = SteadyClock::time_point(
          std::chrono::nanoseconds(beats_[i]->last_ns.load(std::memory_order_relaxed)));
    }
    if (bound_.count() > 0) {
      if (auto stuck = find_stuck_loop(last, now, bound_)) die(*stuck);
    }
    if (ping_every != SteadyClock::duration::zero() && now >= next_ping &&
        !find_stuck_loop(last, now, ping_every)) {
      notify_.notify("WATCHDOG=1");
      next_ping = now + ping_every;
    }
  }
}

void Watchdog::die(const StuckLoop& stuck) const {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(stuck.stuck_for).count();
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.1f", static_cast<double>(ms) / 1000.0);
  LOG_ERROR(service_, "watchdog: event loop ", beats_[stuck.index]->name, " stuck for ", seconds,
            " s (server.watchdog_s = ", bound_.count() / 1000,
            "): ending the process so that it restarts");
  std::abort();
}

}  // namespace core

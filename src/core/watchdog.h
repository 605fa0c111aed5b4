// A hang becomes a death. Every event loop of a server beats (a cheap timer on the loop stores
// the steady time in an atomic); one watchdog thread per process, on no loop, reads the beats.
// A loop that has not beaten for `bound` ends the process: one log line naming the loop and how
// long it was stuck, then abort(), so the supervisor restarts it and the viewers' connections
// reset and move at once, as on a kill. Under systemd (NOTIFY_SOCKET, core/systemd_notify.h) the
// same thread sends WATCHDOG=1 while every loop beats, so a process stopped as a whole (SIGSTOP,
// its watchdog thread stopped too) is ended by systemd's WatchdogSec.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/event_loop.h"
#include "core/systemd_notify.h"

namespace core {

// How often a loop beats.
inline constexpr std::chrono::milliseconds kWatchdogBeat{200};

// The loop that has gone longest without a beat, when that is more than `bound` (a pure rule:
// `last_beats[i]` is loop i's last beat). Nullopt when every loop beat within `bound`.
struct StuckLoop {
  size_t index = 0;
  std::chrono::steady_clock::duration stuck_for{};
};
std::optional<StuckLoop> find_stuck_loop(
    const std::vector<std::chrono::steady_clock::time_point>& last_beats,
    std::chrono::steady_clock::time_point now, std::chrono::steady_clock::duration bound);

class Watchdog {
 public:
  // `bound`: how long a loop may go without a beat before the process ends (zero: never, the
  // process's own check is off; systemd's pings still stop while a loop is stuck). `notify`
  // outlives the watchdog.
  Watchdog(std::string service, std::chrono::milliseconds bound, SystemdNotifier& notify);
  // Stops the thread (stop()).
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Main thread, before `loop` runs and before start(): the loop beats from now on, under
  // `name` ("loop-0", "fetch") in the log line. The beat timer is the loop's: destroy the
  // watchdog only while the loop does not run, before the loop itself.
  void watch(EventLoop& loop, std::string name);
  // Main thread: starts the watchdog thread (nothing to check and no thread when the bound is
  // zero and systemd asks for no pings).
  void start();
  // Main thread: ends the watchdog thread (a loop that stops running stops beating: call this
  // before the loops stop, or right after the home loop returned). Idempotent.
  void stop();

 private:
  struct Beat {
    std::string name;
    std::atomic<int64_t> last_ns{0};  // steady clock, ns since its epoch
    std::unique_ptr<LoopTimer> timer;
  };
  void run();
  [[noreturn]] void die(const StuckLoop& stuck) const;

  std::string service_;
  std::chrono::milliseconds bound_;
  SystemdNotifier& notify_;
  std::vector<std::unique_ptr<Beat>> beats_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mutex_
  std::thread thread_;
};

}  // namespace core

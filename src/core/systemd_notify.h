// systemd's service notification protocol (sd_notify(3)), spoken directly: one datagram per
// message to the unix socket named by NOTIFY_SOCKET (a path, or "@name" in the abstract
// namespace). Without NOTIFY_SOCKET every call does nothing, so a server started by hand or by
// a test is unaffected. No libsystemd: the protocol is one sendto().
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace core {

class SystemdNotifier {
 public:
  // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID once (main thread, at start).
  static SystemdNotifier from_environment();
  // The same from the three values (null: unset) for process `pid`: a socket that is not an
  // absolute path or "@name" disables it; pings only when `watchdog_pid` is unset or `pid`.
  static SystemdNotifier from_values(const char* notify_socket, const char* watchdog_usec,
                                     const char* watchdog_pid, long long pid);
  // One that never sends (tests, --check-config).
  SystemdNotifier() = default;

  bool enabled() const { return !socket_path_.empty(); }
  // The interval systemd expects WATCHDOG=1 within (WatchdogSec=, WATCHDOG_USEC), when this
  // process is the one it watches; nullopt when systemd asks for no pings.
  std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_; }

  // Any thread: sends `state` ("READY=1", "WATCHDOG=1", "STOPPING=1"). False when not enabled
  // or the datagram could not be sent (nothing else happens: a notification is best effort).
  bool notify(std::string_view state) const;

 private:
  std::string socket_path_;
  std::optional<std::chrono::microseconds> watchdog_;
};

}  // namespace core

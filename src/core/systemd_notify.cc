#include "core/systemd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace core {

SystemdNotifier SystemdNotifier::from_environment() {
  return from_values(std::getenv("NOTIFY_SOCKET"), std::getenv("WATCHDOG_USEC"),
                     std::getenv("WATCHDOG_PID"), static_cast<long long>(getpid()));
}

SystemdNotifier SystemdNotifier::from_values(const char* socket, const char* usec,
                                             const char* watchdog_pid, long long pid) {
  SystemdNotifier notifier;
  if (socket == nullptr || (socket[0] != '/' && socket[0] != '@')) return notifier;
  if (std::strlen(socket) >= sizeof(sockaddr_un::sun_path)) return notifier;
  notifier.socket_path_ = socket;
  // WATCHDOG_PID, when set, names the process systemd watches (a child of it must not ping).
  if (watchdog_pid != nullptr && std::strtoll(watchdog_pid, nullptr, 10) != pid) return notifier;
  if (usec != nullptr) {
    const long long value = std::strtoll(usec, nullptr, 10);
    if (value > 0) notifier.watchdog_ = std::chrono::microseconds(value);
  }
  return notifier;
}

bool SystemdNotifier::notify(std::string_view state) const {
  if (!enabled()) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, socket_path_.data(), socket_path_.size());
  socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path_.size());
  if (address.sun_path[0] == '@') {
    address.sun_path[0] = '\0';  // abstract namespace: no terminating NUL counted
  } else {
    length += 1;
  }
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const ssize_t sent = sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                              reinterpret_cast<const sockaddr*>(&address), length);
  close(fd);
  return sent == static_cast<ssize_t>(state.size());
}

}  // namespace core

// The end of a fixture origin program's main (test_origin, ll_origin): bind, say so the way
// ChildServer waits for, and serve until told to stop. Header-only: the programs do not
// link the test library.
#pragma once

#include <event2/event.h>

#include <csignal>
#include <cstdio>
#include <string>

#include "support/libevent_owners.h"

namespace balancer::test {

// Binds with `origin.listen(error)` (the port, or < 0 with `error` set), prints
// {"event":"listening","port":N} on stdout, and runs `base` until SIGTERM or SIGINT. A client
// that hangs up must not kill the origin, so SIGPIPE is ignored. Returns the exit code; errors
// go to stderr after `program`.
template <class Origin>
int serve_until_stopped(const char* program, event_base& base, Origin& origin) {
  std::signal(SIGPIPE, SIG_IGN);
  auto stop = [](evutil_socket_t, short, void* arg) {
    event_base_loopexit(static_cast<event_base*>(arg), nullptr);
  };
  EventPtr sigterm(evsignal_new(&base, SIGTERM, stop, &base));
  EventPtr sigint(evsignal_new(&base, SIGINT, stop, &base));
  event_add(sigterm.get(), nullptr);
  event_add(sigint.get(), nullptr);
  std::string error;
  const int port = origin.listen(error);
  if (port < 0) {
    std::fprintf(stderr, "%s: %s\n", program, error.c_str());
    return 1;
  }
  std::printf("{\"event\":\"listening\",\"port\":%d}\n", port);
  std::fflush(stdout);
  return event_base_dispatch(&base) < 0 ? 1 : 0;
}

}  // namespace balancer::test

// Process signals as loop events: SIGTERM/SIGINT start a graceful shutdown,
// SIGHUP asks for a config reload. SIGPIPE is ignored (peers may vanish).
#pragma once

#include <event2/event.h>

#include <functional>

#include "core/handles.h"

namespace core {

class SignalHandlers {
 public:
  SignalHandlers(event_base& base, std::function<void()> on_terminate,
                 std::function<void()> on_reload);
  // libevent keeps `this` as the callbacks' argument: the object must not move.
  SignalHandlers(const SignalHandlers&) = delete;
  SignalHandlers& operator=(const SignalHandlers&) = delete;
  SignalHandlers(SignalHandlers&&) = delete;
  SignalHandlers& operator=(SignalHandlers&&) = delete;

 private:
  std::function<void()> on_terminate_;
  std::function<void()> on_reload_;
  EventPtr term_, int_, hup_;
};

}  // namespace core

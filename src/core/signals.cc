#include "core/signals.h"

#include <csignal>

namespace core {

SignalHandlers::SignalHandlers(event_base& base, std::function<void()> on_terminate,
                               std::function<void()> on_reload)
    : on_terminate_(std::move(on_terminate)), on_reload_(std::move(on_reload)) {
  signal(SIGPIPE, SIG_IGN);
  auto terminate = [](evutil_socket_t, short, void* arg) {
    auto* self = static_cast<SignalHandlers*>(arg);
    if (self->on_terminate_) self->on_terminate_();
  };
  auto reload = [](evutil_socket_t, short, void* arg) {
    auto* self = static_cast<SignalHandlers*>(arg);
    if (self->on_reload_) self->on_reload_();
  };
  term_.reset(evsignal_new(&base, SIGTERM, terminate, this));
  int_.reset(evsignal_new(&base, SIGINT, terminate, this));
  hup_.reset(evsignal_new(&base, SIGHUP, reload, this));
  evsignal_add(term_.get(), nullptr);
  evsignal_add(int_.get(), nullptr);
  evsignal_add(hup_.get(), nullptr);
}

}  // namespace core

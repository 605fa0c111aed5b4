// The loop's time as the HTTP/1 transport reads it: once per turn, cached by libevent, so
// marking a connection active costs no clock call.
#pragma once

#include <event2/event.h>
#include <sys/time.h>

#include <cstdint>

namespace http {

// The loop's time of this turn, in milliseconds.
inline int64_t loop_ms(event_base* base) {
  timeval now{};
  event_base_gettimeofday_cached(base, &now);
  return int64_t{now.tv_sec} * 1000 + now.tv_usec / 1000;
}

inline timeval after_ms(int64_t ms) {
  return timeval{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000 * 1000)};
}

}  // namespace http

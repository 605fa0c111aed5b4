// The thread rules that types and comments state, checked: a function that only its loop's
// thread may run (a "home loop only" or "its loop only" entry) starts with expect_on(loop).
// On in Debug and sanitizer builds (BALANCER_THREAD_CHECKS, so the ThreadSanitizer pass runs
// them too); compiled out elsewhere. A broken rule aborts with the place that broke it.
#pragma once

#include <source_location>

#include "core/event_loop.h"

namespace core {

#ifdef BALANCER_THREAD_CHECKS
inline constexpr bool kThreadChecks = true;
#else
inline constexpr bool kThreadChecks = false;
#endif

[[noreturn]] void thread_rule_broken(const EventLoop& loop, std::source_location where);

inline void expect_on(const EventLoop& loop,
                      std::source_location where = std::source_location::current()) {
  if constexpr (kThreadChecks) {
    if (!loop.owned_here()) thread_rule_broken(loop, where);
  }
}

}  // namespace core

// The component name this component's log lines carry (core/log.h), in one place
// (source files of a library may be compiled together: docs/testing.md § Build).
#pragma once

namespace balancer {

inline constexpr const char* kLog = "balancer";

}  // namespace balancer

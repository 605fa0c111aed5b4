// Numbers as the audience's reports print them, in JSON and HTML alike.
#pragma once

#include <cmath>
#include <cstdio>
#include <string>

namespace audience {

// A JSON number with four significant digits; "null" for NaN and infinities.
inline std::string number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// `digits` after the point.
inline std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace audience

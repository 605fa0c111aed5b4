// Names of values that are not an enum's 0..N-1 (status codes, bit flags), kept in tables of
// pairs instead of switch statements (for 0..N-1 enums, core/enum_names.h).
#pragma once

#include <cstddef>
#include <utility>

namespace http {

// The name paired with `key` in `table`; `fallback` when none is.
template <typename K, size_t N>
constexpr const char* name_in(const std::pair<K, const char*> (&table)[N], K key,
                              const char* fallback) {
  for (const auto& [value, name] : table) {
    if (value == key) return name;
  }
  return fallback;
}

}  // namespace http

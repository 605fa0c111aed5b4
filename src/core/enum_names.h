// Names of values kept in tables instead of switch statements: one entry a value, and the
// table's size checked against the enum where it is defined.
#pragma once

#include <cstddef>
#include <iterator>  // std::size, for the check next to a table

namespace core {

// How many values an enum has whose enumerators are 0..N-1 in order, given its last one (which
// must stay last): static_assert(std::size(kNames) == enum_count(E::last)).
template <typename E>
constexpr size_t enum_count(E last) {
  return static_cast<size_t>(last) + 1;
}

// The name of `e` in `names`, a table indexed by the enum's value; "?" for a value past it.
template <typename E, size_t N>
constexpr const char* enum_name(E e, const char* const (&names)[N]) {
  const auto index = static_cast<size_t>(e);
  return index < N ? names[index] : "?";
}

}  // namespace core

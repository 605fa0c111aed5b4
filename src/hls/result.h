// Result<T> and Issue: the error/warning types returned by the HLS library.
// No exceptions are thrown on success or on failure paths.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <variant>

namespace hls {

// A problem found in a playlist. Used both for the error that rejects a playlist
// and for the warnings attached to a playlist that was tolerated.
struct Issue {
  std::string code;      // stable snake_case identifier, e.g. "missing_header"
  std::string message;   // human sentence, names the line when there is one
  std::size_t line = 0;  // 1-based line of the source; 0 when not tied to a line
};

// Either a value or an Issue. Owns what it holds. Accessing value() on an error
// (or error() on a value) is a programming error (std::get throws/terminates).
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}      // NOLINT: implicit
  Result(Issue error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const Issue& error() const { return std::get<1>(v_); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Issue> v_;
};

}  // namespace hls

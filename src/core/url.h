// Percent-decoding, query strings and the rule for origin paths of request
// targets, as pure functions shared by the balancer and the cache node. Any
// thread; failures are return values, nothing throws except std::bad_alloc.
//
// '+' is a space only where a query value is read as form data (a named query
// parameter such as ?viewer=a+b, as browsers' URLSearchParams send it). In paths,
// and where a query is only checked or passed on to an origin, '+' is itself.
#pragma once

#include <cstddef>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"

namespace core {

// Decodes %XX escapes (hex digits of either case); with `plus_as_space`, '+'
// decodes to ' '. nullopt when a '%' is not followed by two hex digits or when
// the text holds a NUL, raw or encoded (it would cut the C strings that libevent
// and the file system see).
std::optional<std::string> percent_decode(std::string_view in, bool plus_as_space = false);

// One `name=value` pair of a raw query, as written (still percent-encoded).
struct QueryParam {
  std::string_view name;   // before the first '='; may be empty ("=v")
  std::string_view value;  // after the first '='; empty when there is no '='
  std::string_view text;   // the whole pair
  // Form-data decoding ('+' is a space); nullopt on a malformed escape or NUL.
  std::optional<std::string> decoded_name() const { return percent_decode(name, true); }
  std::optional<std::string> decoded_value() const { return percent_decode(value, true); }
};

// The pairs of a raw query ("a=1&b=2", without '?' or '#'), in order, as views
// into it: `for (const QueryParam& p : QueryParams(query))`. Empty pairs ("&&",
// a trailing '&') are skipped; a repeated name comes once per occurrence. The
// caller keeps the query alive while iterating.
class QueryParams {
 public:
  explicit QueryParams(std::string_view query) : query_(query) {}

  class Iterator {
   public:
    using value_type = QueryParam;
    using difference_type = std::ptrdiff_t;
    const QueryParam& operator*() const { return current_; }
    const QueryParam* operator->() const { return &current_; }
    Iterator& operator++() {
      advance();
      return *this;
    }
    void operator++(int) { advance(); }
    bool operator==(std::default_sentinel_t) const { return done_; }

   private:
    friend class QueryParams;
    explicit Iterator(std::string_view rest) : rest_(rest) { advance(); }
    void advance();
    std::string_view rest_;
    QueryParam current_;
    bool done_ = false;
  };

  Iterator begin() const { return Iterator(query_); }
  std::default_sentinel_t end() const { return {}; }

 private:
  std::string_view query_;
};

// The first pair of `query` whose raw name is `name`, or nullopt.
std::optional<QueryParam> find_query_param(std::string_view query, std::string_view name);

// A request target without every `name=value` pair of its query (raw names compared), and the
// raw value of the last such pair: for arguments a player adds to any URL it requests (CMCD),
// which must change neither a signature's target nor a cache key. nullopt when the target has no
// such pair (nothing to change). The rest keeps its order; a query left empty loses its '?'.
struct TakenQueryParam {
  std::string target;     // without the pairs
  std::string raw_value;  // still percent-encoded
};
std::optional<TakenQueryParam> take_query_param(std::string_view target, std::string_view name);

// Appends "name=value" (`value` already encoded) to a request target: after '?'
// when it has no query yet, else after '&' (no separator after an empty query
// "x.ts?" or a trailing '&').
void append_query_param(std::string& target, std::string_view name, std::string_view encoded_value);
// Appends an already-encoded query ("a=1&b=2") the same way; nothing when empty.
void append_query(std::string& target, std::string_view encoded_query);

// True if a decoded path ("/a/b") has a "." or ".." segment: such a path could
// escape the base path it is appended to.
bool has_dot_segment(std::string_view decoded_path);

// The one rule for the origin targets a cache node serves (/o/<origin id><path>
// [?query]), so also for the chunk links the balancer may sign. `raw_path` is
// still percent-encoded and starts with '/'; `raw_query` has no '?' and no '#'.
// Refused: an empty path; a scheme-relative ("//host") or absolute ("://") URL in
// the path; "." or ".." segments and empty segments (raw or encoded: they could
// leave the origin's base path or name one file under two keys); a backslash;
// control characters; malformed percent-encoding or NUL in path or query.
// Fails with code "bad_request" and a sentence for the 400 reply.
Status check_servable_origin_target(std::string_view raw_path, std::string_view raw_query = {});

}  // namespace core

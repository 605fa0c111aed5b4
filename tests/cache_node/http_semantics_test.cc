#include <doctest/doctest.h>

#include "cache_node/rules/http_semantics.h"

using namespace cache_node;

namespace {

// `header` on an object of 100 bytes is satisfiable as bytes first..last.
void check_satisfiable(const char* header, uint64_t first, uint64_t last) {
  CAPTURE(header);
  const auto r = evaluate_range(header, 100);
  CHECK(r.outcome == RangeOutcome::satisfiable);
  CHECK(r.range.first == first);
  CHECK(r.range.last == last);
  CHECK(r.range.length() == last - first + 1);
}

}  // namespace

TEST_CASE("range: single ranges in all three forms, clamped to the object") {
  check_satisfiable("bytes=0-9", 0, 9);
  check_satisfiable("bytes=90-", 90, 99);
  check_satisfiable("bytes=-10", 90, 99);
  check_satisfiable("bytes=-1000", 0, 99);
  check_satisfiable("bytes=50-1000", 50, 99);
}

TEST_CASE("range: unsatisfiable vs ignored") {
  CHECK(evaluate_range("bytes=100-", 100).outcome == RangeOutcome::unsatisfiable);
  CHECK(evaluate_range("bytes=-0", 100).outcome == RangeOutcome::unsatisfiable);
  CHECK(evaluate_range(std::nullopt, 100).outcome == RangeOutcome::none);
  CHECK(evaluate_range("bytes=0-1,5-6", 100).outcome == RangeOutcome::none);  // multi: whole
  CHECK(evaluate_range("items=0-1", 100).outcome == RangeOutcome::none);
  CHECK(evaluate_range("bytes=9-3", 100).outcome == RangeOutcome::none);
  CHECK(evaluate_range("bytes=a-b", 100).outcome == RangeOutcome::none);
  // A first position past the end, however many digits it has: unsatisfiable.
  CHECK(evaluate_range("bytes=99999999999999999999-", 100).outcome == RangeOutcome::unsatisfiable);
}

TEST_CASE(
    "range: a last position or suffix past 2^64 - 1 is clamped, not ignored (RFC 9110 14.1.2)") {
  for (const char* header : {"bytes=0-18446744073709551615", "bytes=0-18446744073709551616",
                             "bytes=0-999999999999999999999999999999"}) {
    check_satisfiable(header, 0, 99);
  }
  check_satisfiable("bytes=-184467440737095516150", 0, 99);
  check_satisfiable("bytes=90-18446744073709551615", 90, 99);
}

TEST_CASE("conditional: If-None-Match wins over If-Modified-Since; weak comparison") {
  std::string lm = "Sun, 06 Nov 1994 08:49:37 GMT";
  CHECK(not_modified("\"abc\"", std::nullopt, "\"abc\"", lm));
  CHECK(not_modified("W/\"abc\"", std::nullopt, "\"abc\"", lm));
  CHECK(not_modified("\"x\", \"abc\"", std::nullopt, "\"abc\"", lm));
  CHECK(not_modified("*", std::nullopt, "\"abc\"", lm));
  CHECK_FALSE(not_modified("\"zzz\"", lm, "\"abc\"", lm));  // INM present and no match: IMS ignored
  CHECK(not_modified(std::nullopt, lm, "\"abc\"", lm));
  CHECK(not_modified(std::nullopt, "Mon, 07 Nov 1994 08:49:37 GMT", "\"abc\"", lm));
  CHECK_FALSE(not_modified(std::nullopt, "Sat, 05 Nov 1994 08:49:37 GMT", "\"abc\"", lm));
  CHECK_FALSE(not_modified(std::nullopt, "garbage", "\"abc\"", lm));
}

TEST_CASE("If-Range: strong ETag or exact date, else the whole object") {
  std::string lm = "Sun, 06 Nov 1994 08:49:37 GMT";
  CHECK(if_range_allows(std::nullopt, "\"a\"", lm));
  CHECK(if_range_allows("\"a\"", "\"a\"", lm));
  CHECK_FALSE(if_range_allows("\"b\"", "\"a\"", lm));
  CHECK_FALSE(if_range_allows("W/\"a\"", "\"a\"", lm));
  CHECK(if_range_allows(lm, "\"a\"", lm));
}

TEST_CASE("http dates round-trip") {
  auto t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT");
  REQUIRE(t.has_value());
  CHECK(*t == 784111777);
  CHECK(format_http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT");
}

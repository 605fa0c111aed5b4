// Percent-decoding, query splitting and query appending shared by the servers.
#include "core/url.h"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

namespace {

struct Pair {
  std::string name, value;
  bool operator==(const Pair&) const = default;
};

std::vector<Pair> pairs(std::string_view query) {
  std::vector<Pair> out;
  for (const core::QueryParam& p : core::QueryParams(query)) {
    out.push_back({std::string(p.name), std::string(p.value)});
  }
  return out;
}

std::string appended(std::string target, std::string_view name, std::string_view value) {
  core::append_query_param(target, name, value);
  return target;
}

}  // namespace

TEST_CASE("percent_decode: valid escapes decode; malformed ones and NUL are refused") {
  CHECK(core::percent_decode("a%20b%2Fc") == std::optional<std::string>("a b/c"));
  CHECK(core::percent_decode("a+b", true) == std::optional<std::string>("a b"));
  CHECK(core::percent_decode("a+b") == std::optional<std::string>("a+b"));
  CHECK_FALSE(core::percent_decode("%zz").has_value());
  CHECK_FALSE(core::percent_decode("abc%2").has_value());
  CHECK_FALSE(core::percent_decode("abc%").has_value());
  CHECK_FALSE(core::percent_decode("a%00b").has_value());
}

TEST_CASE("percent_decode: text with nothing to decode comes back whole; NUL anywhere is refused") {
  CHECK(core::percent_decode("/files/static/index.m3u8") ==
        std::optional<std::string>("/files/static/index.m3u8"));
  CHECK(core::percent_decode("venue-a", true) == std::optional<std::string>("venue-a"));
  CHECK(core::percent_decode("plain-then%41", true) == std::optional<std::string>("plain-thenA"));
  CHECK(core::percent_decode("plain-then+", true) == std::optional<std::string>("plain-then "));
  CHECK(core::percent_decode("plain-then+") == std::optional<std::string>("plain-then+"));
  CHECK_FALSE(core::percent_decode(std::string_view("ab\0c", 4)).has_value());
  CHECK_FALSE(core::percent_decode(std::string_view("a%41\0", 5)).has_value());
}

TEST_CASE("percent_decode: edge cases of escapes, case, NUL and '+'") {
  CHECK(core::percent_decode("") == std::optional<std::string>(""));
  CHECK(core::percent_decode("%2F") == std::optional<std::string>("/"));
  CHECK(core::percent_decode("%2f") == std::optional<std::string>("/"));  // lowercase hex
  CHECK(core::percent_decode("%2e%2E") == std::optional<std::string>(".."));
  CHECK(core::percent_decode("%C3%a9") == std::optional<std::string>("\xC3\xA9"));
  CHECK(core::percent_decode("%25") == std::optional<std::string>("%"));  // decoded once only
  CHECK(core::percent_decode("%252e") == std::optional<std::string>("%2e"));
  CHECK(core::percent_decode("%2B", true) ==
        std::optional<std::string>("+"));  // an encoded '+' stays '+'
  CHECK(core::percent_decode("a++b", true) == std::optional<std::string>("a  b"));
  CHECK_FALSE(core::percent_decode("%00").has_value());
  CHECK_FALSE(core::percent_decode(std::string_view("a\0b", 3)).has_value());  // raw NUL
  CHECK_FALSE(core::percent_decode("%").has_value());
  CHECK_FALSE(core::percent_decode("%a").has_value());
  CHECK_FALSE(core::percent_decode("%%20").has_value());
  CHECK_FALSE(core::percent_decode("%g0").has_value());
  CHECK_FALSE(core::percent_decode("%0g").has_value());
  CHECK_FALSE(core::percent_decode("%+1", true).has_value());
}

TEST_CASE(
    "QueryParams: pairs in order, raw, with empty names and values kept and empty pairs skipped") {
  CHECK(pairs("").empty());
  CHECK(pairs("&").empty());
  CHECK(pairs("&&&").empty());
  CHECK(pairs("a=1&b=2") == std::vector<Pair>{{"a", "1"}, {"b", "2"}});
  CHECK(pairs("a=1&b=2&") == std::vector<Pair>{{"a", "1"}, {"b", "2"}});  // trailing '&'
  CHECK(pairs("&&a=1&&b=2") == std::vector<Pair>{{"a", "1"}, {"b", "2"}});
  CHECK(pairs("=v") == std::vector<Pair>{{"", "v"}});               // empty name
  CHECK(pairs("a=&b") == std::vector<Pair>{{"a", ""}, {"b", ""}});  // empty value, no '='
  CHECK(pairs("a=1&a=2&a") == std::vector<Pair>{{"a", "1"}, {"a", "2"}, {"a", ""}});  // repeated
  CHECK(pairs("a=b=c") == std::vector<Pair>{{"a", "b=c"}});  // only the first '=' splits
  CHECK(pairs("u=a?b&x=%2F") == std::vector<Pair>{{"u", "a?b"}, {"x", "%2F"}});  // raw, not decoded
}

TEST_CASE("QueryParam: text is the pair as written; decoding is form data") {
  std::vector<std::string> texts;
  for (const auto& p : core::QueryParams("a&b=&c=d+e%2B")) texts.emplace_back(p.text);
  CHECK(texts == std::vector<std::string>{"a", "b=", "c=d+e%2B"});
  auto c = core::find_query_param("a&b=&c=d+e%2B", "c");
  REQUIRE(c.has_value());
  CHECK(c->decoded_value() == std::optional<std::string>("d e+"));
  CHECK(c->decoded_name() == std::optional<std::string>("c"));
  auto bad = core::find_query_param("x=%zz", "x");
  REQUIRE(bad.has_value());
  CHECK_FALSE(bad->decoded_value().has_value());
}

TEST_CASE("find_query_param: the first pair with the raw name, or nothing") {
  auto first = core::find_query_param("a=1&b=2&a=3", "a");
  REQUIRE(first.has_value());
  CHECK(first->value == "1");
  auto no_value = core::find_query_param("x&a", "a");
  REQUIRE(no_value.has_value());
  CHECK(no_value->value.empty());
  CHECK_FALSE(core::find_query_param("a=1", "b").has_value());
  CHECK_FALSE(core::find_query_param("%61=1", "a").has_value());  // names compare raw
  CHECK_FALSE(core::find_query_param("", "a").has_value());
}

TEST_CASE("append_query_param / append_query: one separator, never a dangling or doubled one") {
  CHECK(appended("/x.ts", "a", "1") == "/x.ts?a=1");
  CHECK(appended("/x.ts?", "a", "1") == "/x.ts?a=1");
  CHECK(appended("/x.ts?b=2", "a", "1") == "/x.ts?b=2&a=1");
  CHECK(appended("/x.ts?b=2&", "a", "1") == "/x.ts?b=2&a=1");
  CHECK(appended("/x.ts?u=a?", "a", "1") == "/x.ts?u=a?&a=1");  // a '?' inside a value
  CHECK(appended("/x.ts?b", "a", "") == "/x.ts?b&a=");
  std::string target = "/x.ts";
  core::append_query(target, "");
  CHECK(target == "/x.ts");
  core::append_query(target, "a=1&b=2");
  CHECK(target == "/x.ts?a=1&b=2");
  core::append_query(target, "c=3");
  CHECK(target == "/x.ts?a=1&b=2&c=3");
}

TEST_CASE("has_dot_segment: finds . and .. segments, not dots inside names") {
  CHECK(core::has_dot_segment("/a/../b"));
  CHECK(core::has_dot_segment("/a/./b"));
  CHECK(core::has_dot_segment("/.."));
  CHECK(core::has_dot_segment("/a/.."));
  CHECK_FALSE(core::has_dot_segment("/a/..b/c.ts"));
  CHECK_FALSE(core::has_dot_segment("/a/.hidden/seg.ts"));
  CHECK_FALSE(core::has_dot_segment("/"));
}

TEST_CASE(
    "check_servable_origin_target: the origin paths a cache node serves and the ones it refuses") {
  const char* servable[] = {"/a.ts",        "/live/v1/seg_00001.ts", "/a%20b.ts", "/a+b.ts",
                            "/a/..b/.c.ts", "/%7Euser/x.ts",         "/a/"};
  for (const char* path : servable) {
    CAPTURE(path);
    CHECK(core::check_servable_origin_target(path).ok());
  }
  CHECK(core::check_servable_origin_target("/a.ts", "token=abc&x=%2F&=&y").ok());

  const char* refused[] = {
      "",
      "/",
      "a.ts",                 // no path
      "//evil.example/x.ts",  // scheme-relative
      "/live//x.ts",
      "/a%2F%2Fb.ts",
      "/a%2f/b.ts",  // empty segments, raw or encoded
      "/./x.ts",
      "/a/../b.ts",
      "/a/..",
      "/%2e%2e/x.ts",
      "/%2E/x.ts",
      "/a/.%2e/b.ts",  // dot segments
      "/a%zz.ts",
      "/a%2",
      "/a%00.ts",  // malformed escapes, NUL
      "/a%5cb.ts",
      "/a\\b.ts",                     // backslash
      "/x/http://evil.example/a.ts",  // absolute URL in the path
      "/a\x01.ts",
      "/a\x7f.ts",  // control characters
  };
  for (const char* path : refused) {
    CAPTURE(path);
    auto status = core::check_servable_origin_target(path);
    REQUIRE_FALSE(status.ok());
    CHECK(status.error().code == "bad_request");
  }
  CHECK_FALSE(core::check_servable_origin_target("/a.ts", "x=%zz").ok());
  CHECK_FALSE(core::check_servable_origin_target("/a.ts", "x=%00").ok());
  CHECK_FALSE(core::check_servable_origin_target("/a.ts", "x=\n").ok());
}

TEST_CASE("take_query_param: the pairs named are taken out, the rest keeps its order and form") {
  auto taken =
      core::take_query_param("/o/demo/seg1.ts?exp=1&CMCD=bl%3D300%2Cbr%3D800&sig=ab", "CMCD");
  REQUIRE(taken);
  CHECK(taken->target == "/o/demo/seg1.ts?exp=1&sig=ab");
  CHECK(taken->raw_value == "bl%3D300%2Cbr%3D800");
  taken = core::take_query_param("/a.m3u8?CMCD=x", "CMCD");
  REQUIRE(taken);
  CHECK(taken->target == "/a.m3u8");  // a query left empty loses its '?'
  taken = core::take_query_param("/a.m3u8?CMCD=1&a&&CMCD=2&b=#frag", "CMCD");
  REQUIRE(taken);
  CHECK(taken->target == "/a.m3u8?a&b=#frag");
  CHECK(taken->raw_value == "2");                                         // the last one
  CHECK_FALSE(core::take_query_param("/a.m3u8?cmcd=1&CMCDx=2", "CMCD"));  // raw names, exactly
  CHECK_FALSE(core::take_query_param("/a.m3u8", "CMCD"));
}

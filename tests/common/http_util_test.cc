#include <doctest/doctest.h>

#include "common/http_server.h"
#include "common/json.h"

TEST_CASE("percent_decode: valid escapes decode; malformed ones and NUL are refused") {
  CHECK(common::percent_decode("a%20b%2Fc") == std::optional<std::string>("a b/c"));
  CHECK(common::percent_decode("a+b", true) == std::optional<std::string>("a b"));
  CHECK(common::percent_decode("a+b") == std::optional<std::string>("a+b"));
  CHECK_FALSE(common::percent_decode("%zz").has_value());
  CHECK_FALSE(common::percent_decode("abc%2").has_value());
  CHECK_FALSE(common::percent_decode("abc%").has_value());
  CHECK_FALSE(common::percent_decode("a%00b").has_value());
}

TEST_CASE("redact_target: secret-bearing query values never reach the log") {
  CHECK(common::redact_target("/x?key=abc&y=1") == "/x?key=***&y=1");
  CHECK(common::redact_target("/x?a=1&token=t&password=p") == "/x?a=1&token=***&password=***");
  CHECK(common::redact_target("/plain") == "/plain");
  CHECK(common::redact_target("/x?operator_key=zz") == "/x?operator_key=***");
  CHECK(common::redact_target("/hls/c/m.m3u8?cache=a&ticket=t0k") == "/hls/c/m.m3u8?cache=a&ticket=***");
}

TEST_CASE("json: error bodies follow the contract and escape their text") {
  CHECK(common::json_error_body("bad_request", "say \"no\"\n") ==
        "{\"error\":{\"code\":\"bad_request\",\"message\":\"say \\\"no\\\"\\n\"}}\n");
  CHECK(common::json_string(std::string("a\x01", 2)) == "\"a\\u0001\"");
}

TEST_CASE("has_dot_segment: finds . and .. segments, not dots inside names") {
  CHECK(common::has_dot_segment("/a/../b"));
  CHECK(common::has_dot_segment("/a/./b"));
  CHECK(common::has_dot_segment("/.."));
  CHECK(common::has_dot_segment("/a/.."));
  CHECK_FALSE(common::has_dot_segment("/a/..b/c.ts"));
  CHECK_FALSE(common::has_dot_segment("/a/.hidden/seg.ts"));
  CHECK_FALSE(common::has_dot_segment("/"));
}

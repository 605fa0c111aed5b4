#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "core/ascii.h"
#include "core/json.h"
#include "http/server/http_server.h"

TEST_CASE("redact_target: secret-bearing query values never reach the log") {
  CHECK(http::redact_target("/x?key=abc&y=1") == "/x?key=***&y=1");
  CHECK(http::redact_target("/x?a=1&token=t&password=p") == "/x?a=1&token=***&password=***");
  CHECK(http::redact_target("/plain") == "/plain");
  CHECK(http::redact_target("/x?operator_key=zz") == "/x?operator_key=***");
  CHECK(http::redact_target("/hls/c/m.m3u8?cache=a&ticket=t0k") ==
        "/hls/c/m.m3u8?cache=a&ticket=***");
  // An anonymous viewer id is a bearer credential on free channels.
  CHECK(http::redact_target("/hls/c/m.m3u8?viewer=me&cache=a") ==
        "/hls/c/m.m3u8?viewer=***&cache=a");
}

TEST_CASE("redact_target: everything but a secret value is logged as received") {
  CHECK(http::redact_target("/x?") == "/x?");
  CHECK(http::redact_target("/x?a&&key=s&") == "/x?a&&key=***&");
  CHECK(http::redact_target("/x?key") == "/x?key");  // no value to hide
  CHECK(http::redact_target("/x?key=") == "/x?key=***");
  CHECK(http::redact_target("/x?key=a=b&key=c#f") == "/x?key=***&key=***");
  CHECK(http::redact_target("/x?keys=1&=key") == "/x?keys=1&=key");
}

TEST_CASE("json: error bodies follow the contract and escape their text") {
  CHECK(core::json_error_body("bad_request", "say \"no\"\n") ==
        "{\"error\":{\"code\":\"bad_request\",\"message\":\"say \\\"no\\\"\\n\"}}\n");
  CHECK(core::json_string(std::string("a\x01", 2)) == "\"a\\u0001\"");
}

TEST_CASE("json: numbers are appended after their member's name, at both ends of their range") {
  std::string out = "{";
  core::append_json_number(out, R"("max":)", UINT64_MAX);
  core::append_json_number(out, R"(,"min":)", INT64_MIN);
  core::append_json_number(out, R"(,"zero":)", uint64_t{0});
  out += "}";
  CHECK(out == R"({"max":18446744073709551615,"min":-9223372036854775808,"zero":0})");
}

TEST_CASE("iequals: ASCII letters compare without case, nothing else does") {
  static_assert(core::iequals("Content-Length", "content-LENGTH"));
  CHECK(core::iequals("", ""));
  CHECK_FALSE(core::iequals("chunked", "chunke"));
  CHECK_FALSE(core::iequals("a-b", "a_b"));
  CHECK_FALSE(core::iequals("\xc4", "\xe4"));  // Latin-1 Ä/ä are not ASCII: unequal
  CHECK(core::ascii_lower('Z') == 'z');
  CHECK(core::ascii_lower('@') == '@');
  CHECK(core::ascii_lower('[') == '[');
}

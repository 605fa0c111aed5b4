#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "core/ascii.h"
#include "core/json.h"
#include "http/server/http_server.h"
#include "http/server/request_state.h"

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

TEST_CASE("request states: a finished exchange's state is the next one's, every field reset") {
  std::shared_ptr<http::RequestState> state = http::take_request_state();
  const std::string target = "/hls/demo/live/index.m3u8?viewer=someone-with-a-long-name&cache=a";
  state->set_target(target);
  state->method = "GET";
  state->remote_ip = "2001:db8:1:2:3:4:5:6";
  state->note = "HIT";
  state->start = std::chrono::steady_clock::now();
  state->status = 200;
  state->framing = http::FramingProblem::bad_content_length;
  state->body_bytes = 1425;
  state->tls = state->http2 = state->operator_only = state->streaming = state->closed = true;
  state->has_content_type = state->has_content_length = true;
  bool called = false;
  state->on_close = [&called] { called = true; };
  state->finished = true;

  // While another holder has it, or before its exchange is finished, it is never reused.
  std::shared_ptr<http::RequestState> other = state;
  http::release_request_state(other);
  CHECK(other == nullptr);
  CHECK(state.use_count() == 1);
  state->finished = false;
  const std::weak_ptr<http::RequestState> unfinished = state;
  http::release_request_state(state);
  CHECK(state == nullptr);
  CHECK(unfinished.expired());
  std::shared_ptr<http::RequestState> fresh = http::take_request_state();

  // The last holder of a finished one: the next request's state, as new, its storage kept.
  fresh->set_target(target);
  fresh->remote_ip = "2001:db8:1:2:3:4:5:6";
  fresh->status = 404;
  fresh->framing = http::FramingProblem::bad_content_length;
  fresh->body_bytes = 7;
  fresh->tls = fresh->http2 = fresh->operator_only = fresh->streaming = fresh->closed = true;
  fresh->has_content_type = fresh->has_content_length = true;
  fresh->start = std::chrono::steady_clock::now();
  fresh->on_close = [&called] { called = true; };
  fresh->finished = true;
  http::RequestState* const reused = fresh.get();
  const std::weak_ptr<http::RequestState> spare = fresh;
  http::release_request_state(fresh);
  CHECK_FALSE(spare.expired());
  std::shared_ptr<http::RequestState> next = http::take_request_state();
  REQUIRE(next.get() == reused);
  CHECK(next->server == nullptr);
  CHECK(next->front == nullptr);
  CHECK(next->start == std::chrono::steady_clock::time_point{});
  for (const std::string* text :
       {&next->method, &next->target, &next->path, &next->query, &next->remote_ip, &next->note})
    CHECK(text->empty());
  CHECK(next->target.capacity() >= target.size());
  CHECK(next->status == 0);
  CHECK(next->framing == http::FramingProblem::none);
  CHECK(next->body_bytes == 0);
  CHECK_FALSE((next->tls || next->http2 || next->operator_only || next->streaming ||
               next->finished || next->has_content_type || next->has_content_length ||
               next->closed));
  CHECK(next->on_close == nullptr);
  CHECK_FALSE(called);
}

// The REST API's accounts against the real balancer binary and real LMDB files
// (DESIGN.md flow 5, docs/api.md): a user added by `balancer user add` while the
// server runs logs in; token → session valid → logout → 401; expired token;
// wrong password and unknown login get the same 401; login rate limit 429 with
// Retry-After; bad input (malformed JSON, wrong types, missing fields, 413,
// 405 with Allow, unknown route 404) answered with its JSON error and nothing
// stored; a session reported ok survives kill -9; a disabled user is signed out.
#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "integration/api_fixture.h"

using namespace balancer::test;
using namespace std::chrono_literals;


TEST_CASE("a user added while the server runs logs in; the token works until logout, then 401") {
  ApiStack api;
  api.add_user("fdpd6", "123456");
  auto r = api.login("fdpd6", "123456");
  REQUIRE_MESSAGE(r.status == 200, r.body);
  CHECK(r.header("Content-Type").value_or("").find("application/json") == 0);
  CHECK(r.header("Cache-Control").value_or("") == "no-store");
  auto doc = parse_json(r.body);
  std::string token = doc["token"].GetString();
  CHECK(token.size() == 43);
  CHECK(doc["user"]["login"].GetString() == std::string("fdpd6"));
  CHECK(doc["user"]["id"].GetUint64() == 1);
  const int64_t expires_at = doc["expires_at"].GetInt64();
  CHECK(expires_at > time(nullptr));

  auto s = api.session(token);
  REQUIRE_MESSAGE(s.status == 200, s.body);
  auto sdoc = parse_json(s.body);
  CHECK(sdoc["valid"].GetBool());
  CHECK(sdoc["expires_at"].GetInt64() == expires_at);
  CHECK(sdoc["user"]["login"].GetString() == std::string("fdpd6"));

  auto out = api.logout(token);
  REQUIRE_MESSAGE(out.status == 200, out.body);
  auto after = api.session(token);
  CHECK(after.status == 401);
  CHECK(error_code(after) == "invalid_token");
  CHECK(after.header("WWW-Authenticate").has_value());
  CHECK(api.logout(token).status == 401);

  auto none = api.get("/api/v1/auth/session");
  CHECK(none.status == 401);
  CHECK(error_code(none) == "missing_token");
  CHECK(error_code(api.session("not-a-token")) == "invalid_token");
  CHECK(error_code(api.session(std::string(43, 'A'))) == "invalid_token");
}

TEST_CASE("a wrong password and an unknown login get the same 401") {
  ApiStack api;
  api.add_user("alice", "correct horse");
  auto wrong = api.login("alice", "battery staple");
  auto unknown = api.login("nobody", "battery staple");
  CHECK(wrong.status == 401);
  CHECK(unknown.status == 401);
  CHECK(error_code(wrong) == "invalid_credentials");
  CHECK(wrong.body == unknown.body);
  CHECK(api.login("alice", "correct horse").status == 200);
}

TEST_CASE("a token expires after api.token_lifetime_s") {
  ApiStack api({"api.token_lifetime_s=1"});
  api.add_user("alice", "pw");
  std::string token = api.token_of(api.login("alice", "pw"));
  CHECK(wait_until([&] { return api.session(token).status == 401; }, 5s, 100ms));
  CHECK(error_code(api.session(token)) == "invalid_token");
}

TEST_CASE("failed logins for one login from one address are limited with 429, Retry-After and the JSON error") {
  ApiStack api({"api.login_limits.per_address_login=3", "api.login_limits.window_s=60"});
  api.add_user("alice", "pw");
  for (int i = 0; i < 3; ++i) CHECK(api.login("alice", "wrong").status == 401);
  auto limited = api.login("alice", "pw");  // even the right password waits
  CHECK(limited.status == 429);
  CHECK(error_code(limited) == "too_many_attempts");
  REQUIRE(limited.header("Retry-After").has_value());
  CHECK(std::stoi(*limited.header("Retry-After")) >= 1);
  CHECK(api.balancer->metric("balancer_api_logins_total{result=\"limited\"}") == 1);
}

TEST_CASE("login attempts are limited per address across logins") {
  ApiStack api({"api.login_limits.per_address=2"});
  CHECK(api.login("a", "x").status == 401);
  CHECK(api.login("b", "x").status == 401);
  auto limited = api.login("c", "x");
  CHECK(limited.status == 429);
  CHECK(limited.header("Retry-After").has_value());
}

TEST_CASE("bad input gets its status and JSON error, and stores nothing") {
  ApiStack api;
  api.add_user("alice", "pw");
  struct Case {
    std::string body;
    long status;
    std::string code;
  };
  std::vector<Case> cases = {
      {"{not json", 400, "malformed_json"},
      {"[1,2]", 400, "malformed_json"},
      {"", 400, "malformed_json"},
      {"{\"login\":\"alice\"}", 400, "missing_field"},
      {"{\"password\":\"pw\"}", 400, "missing_field"},
      {"{\"login\":42,\"password\":\"pw\"}", 400, "invalid_field"},
      {"{\"login\":\"alice\",\"password\":[\"pw\"]}", 400, "invalid_field"},
      {"{\"login\":\"al ice\",\"password\":\"pw\"}", 400, "invalid_field"},
      {"{\"login\":\"alice\",\"password\":\"\"}", 400, "invalid_field"},
      {"{\"login\":\"alice\",\"password\":\"" + std::string(20000, 'x') + "\"}", 413, "body_too_large"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.body.substr(0, 60));
    auto r = api.login(c.body);
    CHECK(r.status == c.status);
    CHECK(is_json_error_reply(r, c.code));
  }
  auto get = api.get("/api/v1/auth/login");
  CHECK(get.status == 405);
  CHECK(get.header("Allow").value_or("") == "POST");
  CHECK(is_json_error_reply(get, "method_not_allowed"));
  // Paths the API does not have are outside the OpenAPI document: not recorded.
  auto unknown = http_request("POST", api.balancer->url("/api/v1/auth/nope"), {}, "{}");
  CHECK(unknown.status == 404);
  CHECK(is_json_error_reply(unknown, "not_found"));
  CHECK(is_json_error_reply(http_get(api.balancer->url("/api/v1/nothing")), "not_found"));
  // Nothing was stored and no attempt counted as a login.
  std::string out;
  REQUIRE(api.user_command("list", "", &out) == 0);
  CHECK(out == "1\talice\tactive\n");
  CHECK(api.balancer->metric("balancer_api_logins_total{result=\"ok\"}") == 0);
  CHECK(api.balancer->metric("balancer_api_logins_total{result=\"rejected\"}") == 0);
}

TEST_CASE("a body nested a million levels deep gets 400 malformed_json and the balancer keeps serving") {
  // The body limits raised as an operator may: without the depth bound the parser's
  // recursion overflows the loop's stack and the balancer dies.
  ApiStack api({"server.max_body_bytes=4194304", "api.max_body_bytes=1048576"});
  api.add_user("alice", "pw");
  const std::string deep_arrays(1'000'000, '[');
  auto r = api.login(deep_arrays);
  CHECK(r.status == 400);
  CHECK(is_json_error_reply(r, "malformed_json"));
  std::string deep_object;
  for (int i = 0; i < 100'000; ++i) deep_object += "{\"a\":";
  auto o = api.login(deep_object);
  CHECK(o.status == 400);
  CHECK(is_json_error_reply(o, "malformed_json"));
  // Within the limit, brackets in strings and all: an ordinary answer.
  CHECK(api.login("{\"login\":\"alice\",\"password\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[\",\"x\":[[[1]]]}").status == 401);
  CHECK(api.balancer->metric("balancer_api_json_too_deep_total") == 2);
  CHECK(api.login("alice", "pw").status == 200);
  CHECK(api.balancer->process().running());
}

TEST_CASE("a session reported ok survives kill -9 and a restart") {
  ApiStack api;
  api.add_user("alice", "pw");
  std::string token = api.token_of(api.login("alice", "pw"));
  api.balancer->process().kill();
  REQUIRE(api.balancer->process().wait_exit(deadline_in(5s)).has_value());
  api.balancer->start();
  auto s = api.session(token);
  CHECK_MESSAGE(s.status == 200, s.body);
  CHECK(api.login("alice", "pw").status == 200);
}

TEST_CASE("the admin command refuses duplicates and bad input; disable signs the user out") {
  ApiStack api;
  api.add_user("alice", "pw");
  std::string out;
  CHECK(api.user_command("add alice", "other\n", &out) == 1);
  CHECK(out.find("already exists") != std::string::npos);
  CHECK(api.user_command("add bob", "", &out) == 2);  // no password on stdin
  CHECK(api.user_command("frobnicate", "", &out) == 2);
  std::string token = api.token_of(api.login("alice", "pw"));
  REQUIRE(api.user_command("disable alice", "", &out) == 0);
  CHECK(api.session(token).status == 401);
  CHECK(api.login("alice", "pw").status == 401);
  REQUIRE(api.user_command("list", "", &out) == 0);
  CHECK(out == "1\talice\tdisabled\n");
}

TEST_CASE("passwd changes the password and signs out the old sessions") {
  ApiStack api;
  api.add_user("alice", "old");
  std::string token = api.token_of(api.login("alice", "old"));
  std::string out;
  REQUIRE_MESSAGE(api.user_command("passwd alice", "new\n", &out) == 0, out);
  CHECK(api.session(token).status == 401);
  CHECK(api.login("alice", "old").status == 401);
  CHECK(api.login("alice", "new").status == 200);
}

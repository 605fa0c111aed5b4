// The REST API's accounts against the real balancer binary and real LMDB files
// (DESIGN.md flow 5, docs/api.md): a user added by `balancer user add` while the
// server runs logs in; token → session valid → logout → 401; expired token;
// wrong password and unknown login get the same 401; login rate limit 429 with
// Retry-After; bad input (malformed JSON, wrong types, missing fields, 413,
// 405 with Allow, unknown route 404) answered with its JSON error and nothing
// stored; a session reported ok survives kill -9; a disabled user is signed out;
// a user whose stored hash is PBKDF2 signs in and the stored hash becomes Argon2id;
// a session is refreshed (sliding, capped by api.session_max_lifetime_s) and an
// expired or revoked one cannot be.
#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "api/lmdb_accounts.h"
#include "api/password.h"
#include "support/api_fixture.h"

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

TEST_CASE(
    "failed logins for one login from one address are limited with 429, Retry-After and the JSON "
    "error") {
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
      {"{\"login\":\"alice\",\"password\":\"" + std::string(20000, 'x') + "\"}", 413,
       "body_too_large"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.body.substr(0, 60));
    auto r = api.login(c.body);
    CHECK(r.status == c.status);
    CHECK(is_json_error(r, c.code));
  }
  auto get = api.get("/api/v1/auth/login");
  CHECK(get.status == 405);
  CHECK(get.header("Allow").value_or("") == "POST");
  CHECK(is_json_error(get, "method_not_allowed"));
  // Paths the API does not have are outside the OpenAPI document: not recorded.
  auto unknown = http_request("POST", api.balancer->url("/api/v1/auth/nope"), {}, "{}");
  CHECK(unknown.status == 404);
  CHECK(is_json_error(unknown, "not_found"));
  CHECK(is_json_error(http_get(api.balancer->url("/api/v1/nothing")), "not_found"));
  // Nothing was stored and no attempt counted as a login.
  std::string out;
  REQUIRE(api.user_command("list", "", &out) == 0);
  CHECK(out == "1\talice\tactive\n");
  CHECK(api.balancer->metric("balancer_api_logins_total{result=\"ok\"}") == 0);
  CHECK(api.balancer->metric("balancer_api_logins_total{result=\"rejected\"}") == 0);
}

TEST_CASE(
    "a body nested a million levels deep gets 400 malformed_json and the balancer keeps serving") {
  // The body limits raised as an operator may: without the depth bound the parser's
  // recursion overflows the loop's stack and the balancer dies.
  ApiStack api({"server.max_body_bytes=4194304", "api.max_body_bytes=1048576"});
  api.add_user("alice", "pw");
  const std::string deep_arrays(1'000'000, '[');
  auto r = api.login(deep_arrays);
  CHECK(r.status == 400);
  CHECK(is_json_error(r, "malformed_json"));
  std::string deep_object;
  for (int i = 0; i < 100'000; ++i) deep_object += "{\"a\":";
  auto o = api.login(deep_object);
  CHECK(o.status == 400);
  CHECK(is_json_error(o, "malformed_json"));
  // Within the limit, brackets in strings and all: an ordinary answer.
  CHECK(api.login("{\"login\":\"alice\",\"password\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[\",\"x\":[[[1]]]}")
            .status == 401);
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

TEST_CASE(
    "a user whose stored hash is PBKDF2 signs in, and the stored hash becomes Argon2id at the "
    "configured cost") {
  ApiStack api;
  // A user from before Argon2id, written straight into the store the server has open (LMDB
  // allows several processes).
  auto accounts = api::LmdbAccounts::open(api.dir.file("balancer/api"));
  REQUIRE_MESSAGE(accounts.ok(), (accounts.ok() ? "" : accounts.error().message));
  auto legacy = api::hash_password_pbkdf2("old-password", 1000);
  REQUIRE(legacy.ok());
  REQUIRE((*accounts)->add_user("veteran", *legacy, time(nullptr)).ok());
  auto stored = [&] {
    auto u = (*accounts)->find_user("veteran");
    REQUIRE((u.ok() && u->has_value()));
    return (*u)->password_hash;
  };

  CHECK(api.login("veteran", "wrong").status == 401);
  CHECK(stored() == *legacy);  // a failed sign-in changes nothing
  const std::string token = api.token_of(api.login("veteran", "old-password"));
  CHECK(
      wait_until([&] { return stored().rfind("$argon2id$v=19$m=64,t=1,p=1$", 0) == 0; }, 5s, 20ms));
  CHECK(api::verify_password("old-password", stored()));
  CHECK(api.balancer->metric("balancer_api_password_rehashed_total") == 1);

  // The new hash verifies, the session of the sign-in that upgraded it stays valid, and an
  // Argon2id hash at the configured cost is not re-hashed again.
  const std::string upgraded = stored();
  CHECK(api.login("veteran", "old-password").status == 200);
  CHECK(api.login("veteran", "0ld-password").status == 401);
  CHECK(api.session(token).status == 200);
  CHECK(stored() == upgraded);
  CHECK(api.balancer->metric("balancer_api_password_rehashed_total") == 1);
}

TEST_CASE(
    "a refresh moves the session's expiry on, up to api.session_max_lifetime_s from the sign-in") {
  ApiStack api({"api.token_lifetime_s=30"});
  api.add_user("alice", "pw");
  auto login = api.login("alice", "pw");
  const std::string token = api.token_of(login);
  const int64_t signed_in_until = parse_json(login.body)["expires_at"].GetInt64();

  // Sliding: once a second has passed, a refresh gives a later expiry, which the session check
  // reports.
  int64_t refreshed_until = 0;
  CHECK(wait_until(
      [&] {
        auto r = api.refresh(token);
        REQUIRE_MESSAGE(r.status == 200, r.body);
        refreshed_until = parse_json(r.body)["expires_at"].GetInt64();
        return refreshed_until > signed_in_until;
      },
      5s, 250ms));
  auto r = api.refresh(token);
  REQUIRE_MESSAGE(r.status == 200, r.body);
  CHECK(r.header("Cache-Control").value_or("") == "no-store");
  auto doc = parse_json(r.body);
  CHECK(doc["token_type"].GetString() == std::string("Bearer"));
  CHECK(doc["expires_in"].GetInt64() <= 30);
  CHECK(doc["expires_in"].GetInt64() >= 28);
  CHECK(doc["renewable_until"].GetInt64() >=
        signed_in_until - 30 + 90 * 86400);  // the default cap: 90 days
  CHECK(doc["user"]["login"].GetString() == std::string("alice"));
  CHECK(parse_json(api.session(token).body)["expires_at"].GetInt64() ==
        doc["expires_at"].GetInt64());
  CHECK(api.balancer->metric("balancer_api_sessions_refreshed_total") >= 2);

  // Capped: with an absolute lifetime shorter than the sliding one, neither sign-in nor refresh
  // passes it.
  ApiStack capped({"api.token_lifetime_s=3600", "api.session_max_lifetime_s=60"});
  capped.add_user("bob", "pw");
  auto capped_login = capped.login("bob", "pw");
  CHECK(parse_json(capped_login.body)["expires_in"].GetInt64() == 60);
  auto capped_refresh = capped.refresh(capped.token_of(capped_login));
  REQUIRE_MESSAGE(capped_refresh.status == 200, capped_refresh.body);
  auto cdoc = parse_json(capped_refresh.body);
  CHECK(cdoc["expires_at"].GetInt64() == cdoc["renewable_until"].GetInt64());
  CHECK(cdoc["expires_at"].GetInt64() == parse_json(capped_login.body)["expires_at"].GetInt64());
}

TEST_CASE("an expired, revoked or missing session cannot be refreshed") {
  ApiStack api({"api.token_lifetime_s=1"});
  api.add_user("alice", "pw");
  const std::string expiring = api.token_of(api.login("alice", "pw"));
  CHECK(wait_until([&] { return api.session(expiring).status == 401; }, 5s, 100ms));
  auto expired = api.refresh(expiring);
  CHECK(expired.status == 401);
  CHECK(error_code(expired) == "invalid_token");
  CHECK(expired.header("WWW-Authenticate").has_value());
  CHECK(api.session(expiring).status == 401);  // the failed refresh did not revive it

  const std::string revoked = api.token_of(api.login("alice", "pw"));
  REQUIRE(api.logout(revoked).status == 200);
  CHECK(error_code(api.refresh(revoked)) == "invalid_token");
  auto none = api.request("POST", "/api/v1/auth/refresh");
  CHECK(none.status == 401);
  CHECK(error_code(none) == "missing_token");
  CHECK(api.get("/api/v1/auth/refresh").status == 405);
  CHECK(api.balancer->metric("balancer_api_sessions_refreshed_total") == 0);
}

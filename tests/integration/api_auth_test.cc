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

#include "balancer/balancer_fixture.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

rapidjson::Document parse_json(const std::string& body) {
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  REQUIRE_MESSAGE((!doc.HasParseError() && doc.IsObject()), body);
  return doc;
}

std::string error_code(const HttpResponse& r) {
  auto doc = parse_json(r.body);
  REQUIRE_MESSAGE(doc.HasMember("error"), r.body);
  return doc["error"]["code"].GetString();
}

struct Api {
  explicit Api(std::vector<std::string> extra = {}) {
    write_file(dir.file("root/live/master.m3u8"), live_playlist(1, 3));
    TestOriginOptions options;
    options.root = dir.file("root");
    origin = std::make_unique<TestOrigin>(options);
    overrides = {"api.kdf_iterations=1000", "api.kdf_allow_weak_for_tests=true"};
    for (auto& e : extra) overrides.push_back(e);
    balancer = std::make_unique<BalancerProcess>(dir, origin->url("/files"),
                                                 channels_json({channel_json("demo", "/live/master.m3u8")}),
                                                 caches_json({}), overrides);
  }

  // `balancer user <args>` on the same config as the server, `input` on stdin.
  int user_command(const std::string& args, const std::string& input = "", std::string* out = nullptr) const {
    std::string cmd = binary_path("balancer") + " user " + args + " --config " + BALANCER_SOURCE_DIR +
                      "/conf/balancer.json --set channels_file=" + dir.file("balancer/channels.json") +
                      " --set caches_file=" + dir.file("balancer/caches.json") +
                      " --set api.data_dir=" + dir.file("balancer/api");
    for (const auto& o : overrides) cmd += " --set " + o;
    std::string output_file = dir.file("user-command.out");
    cmd += " > " + output_file + " 2>&1";
    FILE* p = popen(cmd.c_str(), "w");
    REQUIRE(p != nullptr);
    fputs(input.c_str(), p);
    int status = pclose(p);
    if (out != nullptr) {
      std::ifstream in(output_file);
      *out = std::string(std::istreambuf_iterator<char>(in), {});
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  void add_user(const std::string& login, const std::string& password) const {
    std::string out;
    REQUIRE_MESSAGE(user_command("add " + login, password + "\n", &out) == 0, out);
  }

  HttpResponse login(const std::string& body) const {
    return http_request("POST", balancer->url("/api/v1/auth/login"), {{"Content-Type", "application/json"}}, body);
  }
  HttpResponse login(const std::string& user, const std::string& password) const {
    return login("{\"login\":\"" + user + "\",\"password\":\"" + password + "\"}");
  }
  HttpResponse session(const std::string& token) const {
    return http_get(balancer->url("/api/v1/auth/session"), {{"Authorization", "Bearer " + token}});
  }
  HttpResponse logout(const std::string& token) const {
    return http_request("POST", balancer->url("/api/v1/auth/logout"), {{"Authorization", "Bearer " + token}}, "");
  }
  std::string token_of(const HttpResponse& r) const {
    REQUIRE_MESSAGE(r.status == 200, r.body);
    auto doc = parse_json(r.body);
    return doc["token"].GetString();
  }

  TempDir dir{"api-auth"};
  std::unique_ptr<TestOrigin> origin;
  std::vector<std::string> overrides;
  std::unique_ptr<BalancerProcess> balancer;
};

}  // namespace

TEST_CASE("a user added while the server runs logs in; the token works until logout, then 401") {
  Api api;
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

  auto none = http_get(api.balancer->url("/api/v1/auth/session"));
  CHECK(none.status == 401);
  CHECK(error_code(none) == "missing_token");
  CHECK(error_code(api.session("not-a-token")) == "invalid_token");
  CHECK(error_code(api.session(std::string(43, 'A'))) == "invalid_token");
}

TEST_CASE("a wrong password and an unknown login get the same 401") {
  Api api;
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
  Api api({"api.token_lifetime_s=1"});
  api.add_user("alice", "pw");
  std::string token = api.token_of(api.login("alice", "pw"));
  CHECK(wait_until([&] { return api.session(token).status == 401; }, 5s, 100ms));
  CHECK(error_code(api.session(token)) == "invalid_token");
}

TEST_CASE("login attempts are limited per login with 429, Retry-After and the JSON error") {
  Api api({"api.login_limits.per_login=3", "api.login_limits.window_s=60"});
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
  Api api({"api.login_limits.per_address=2"});
  CHECK(api.login("a", "x").status == 401);
  CHECK(api.login("b", "x").status == 401);
  auto limited = api.login("c", "x");
  CHECK(limited.status == 429);
  CHECK(limited.header("Retry-After").has_value());
}

TEST_CASE("bad input gets its status and JSON error, and stores nothing") {
  Api api;
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
  auto get = http_get(api.balancer->url("/api/v1/auth/login"));
  CHECK(get.status == 405);
  CHECK(get.header("Allow").value_or("") == "POST");
  CHECK(is_json_error_reply(get, "method_not_allowed"));
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

TEST_CASE("a session reported ok survives kill -9 and a restart") {
  Api api;
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
  Api api;
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
  Api api;
  api.add_user("alice", "old");
  std::string token = api.token_of(api.login("alice", "old"));
  std::string out;
  REQUIRE_MESSAGE(api.user_command("passwd alice", "new\n", &out) == 0, out);
  CHECK(api.session(token).status == 401);
  CHECK(api.login("alice", "old").status == 401);
  CHECK(api.login("alice", "new").status == 200);
}

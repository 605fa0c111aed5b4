// The REST API as its tests see it: a test origin, the real balancer binary with
// its LMDB account store in a temp dir, the `balancer user` command on the same
// config, and every API response recorded. At the end of the test the recorded
// responses are validated against docs/openapi.json by the kept validator
// (tests/api/openapi/, ajv), so every response a test provokes is checked
// against the document mobile teams generate their clients from.
#pragma once

#include <doctest/doctest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sys/wait.h>

#include <cstdio>
#include <exception>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "support/balancer_fixture.h"

namespace balancer::test {

inline rapidjson::Document parse_json(const std::string& body) {
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  REQUIRE_MESSAGE((!doc.HasParseError() && doc.IsObject()), body);
  return doc;
}

inline std::string error_code(const HttpResponse& r) {
  auto doc = parse_json(r.body);
  REQUIRE_MESSAGE(doc.HasMember("error"), r.body);
  return doc["error"]["code"].GetString();
}

struct ApiStackOptions {
  std::vector<std::string> overrides;  // --set key=value for the balancer
  std::string channels;                // channels.json text; default: one free channel "demo"
  std::string caches;                  // caches.json text; default: none
  std::string products;  // products.json text; default: none (api.products_file unset)
};

class ApiStack {
 public:
  explicit ApiStack(std::vector<std::string> extra = {})
      : ApiStack(options_with(std::move(extra))) {}
  explicit ApiStack(const ApiStackOptions& options) {
    write_file(dir.file("root/live/master.m3u8"), live_playlist(1, 3));
    origin = std::make_unique<TestOrigin>(serving_files(dir.file("root")));
    // Argon2id at the lowest cost the test override allows: a check takes well under a millisecond.
    overrides = {"api.kdf_memory_kib=64", "api.kdf_passes=1", "api.kdf_allow_weak_for_tests=true"};
    if (!options.products.empty()) {
      write_file(dir.file("balancer/products.json"), options.products);
      overrides.push_back("api.products_file=" + dir.file("balancer/products.json"));
    }
    for (const auto& e : options.overrides) overrides.push_back(e);
    balancer = std::make_unique<BalancerProcess>(
        dir, origin->url("/files"),
        options.channels.empty() ? channels_json({channel_json("demo", "/live/master.m3u8")})
                                 : options.channels,
        options.caches.empty() ? caches_json({}) : options.caches, overrides);
  }

  ~ApiStack() {
    if (std::uncaught_exceptions() == 0) check_recorded_against_openapi();
  }
  ApiStack(const ApiStack&) = delete;
  ApiStack& operator=(const ApiStack&) = delete;

  // One request to the balancer (`path` with its query), recorded for validation.
  HttpResponse request(const std::string& method, const std::string& path,
                       const std::string& token = "", const std::string& body = "",
                       HttpHeaders headers = {}) {
    if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
    if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
    HttpResponse r = http_request(method, balancer->url(path), headers, body);
    record(method, path, r);
    return r;
  }
  HttpResponse get(const std::string& path, const std::string& token = "") {
    return request("GET", path, token);
  }
  HttpResponse post(const std::string& path, const std::string& body,
                    const std::string& token = "") {
    return request("POST", path, token, body);
  }

  HttpResponse login(const std::string& body) { return post("/api/v1/auth/login", body); }
  // A login from the client address `source` (any 127/8 address reaches the balancer),
  // so one test can be many clients. Any thread.
  HttpResponse login_from(const std::string& source, const std::string& user,
                          const std::string& password,
                          std::chrono::milliseconds timeout = kDefaultHttpTimeout) {
    HttpRequest req;
    req.method = "POST";
    req.url = balancer->url("/api/v1/auth/login");
    req.headers = {{"Content-Type", "application/json"}};
    req.body = "{\"login\":\"" + user + "\",\"password\":\"" + password + "\"}";
    req.source_address = source;
    req.timeout = timeout;
    HttpResponse r = http_request(req);
    record("POST", "/api/v1/auth/login", r);
    return r;
  }
  HttpResponse login(const std::string& user, const std::string& password) {
    return login("{\"login\":\"" + user + "\",\"password\":\"" + password + "\"}");
  }
  HttpResponse session(const std::string& token) { return get("/api/v1/auth/session", token); }
  HttpResponse logout(const std::string& token) {
    return request("POST", "/api/v1/auth/logout", token);
  }
  HttpResponse refresh(const std::string& token) {
    return request("POST", "/api/v1/auth/refresh", token);
  }
  std::string token_of(const HttpResponse& r) const {
    REQUIRE_MESSAGE(r.status == 200, r.body);
    auto doc = parse_json(r.body);
    return doc["token"].GetString();
  }
  // Adds the user and returns a fresh session token.
  std::string user_token(const std::string& user, const std::string& password) {
    add_user(user, password);
    return token_of(login(user, password));
  }

  // `balancer user <args>` on the same config as the server, `input` on stdin.
  int user_command(const std::string& args, const std::string& input = "",
                   std::string* out = nullptr) const {
    std::string cmd =
        binary_path("balancer") + " user " + args + " --config " + BALANCER_SOURCE_DIR +
        "/conf/balancer.json --set channels_file=" + dir.file("balancer/channels.json") +
        " --set caches_file=" + dir.file("balancer/caches.json") +
        " --set api.data_dir=" + dir.file("balancer/api") + " --set api.products_file=";
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

  // Validates what was recorded so far (the destructor does it at the end).
  void check_recorded_against_openapi() {
    if (recorded_ == 0) return;
    const std::string file = dir.file("api-responses.jsonl");
    std::string cmd = "bash " + std::string(BALANCER_SOURCE_DIR) +
                      "/scripts/openapi_check.sh --responses " + file + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::string output;
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) output.append(buf, n);
    int status = pclose(p);
    if (output.find("skipped: node/npm not installed") != std::string::npos) {
      MESSAGE("OpenAPI validation skipped: node/npm not installed");
      return;
    }
    CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), output);
    MESSAGE(recorded_ << " API responses checked against docs/openapi.json");
    recorded_ = 0;
    std::remove(file.c_str());
  }

  TempDir dir{"api"};
  std::unique_ptr<TestOrigin> origin;
  std::vector<std::string> overrides;
  std::unique_ptr<BalancerProcess> balancer;

 private:
  static ApiStackOptions options_with(std::vector<std::string> overrides) {
    ApiStackOptions o;
    o.overrides = std::move(overrides);
    return o;
  }
  // Only API paths are described by the OpenAPI document.
  void record(const std::string& method, const std::string& path, const HttpResponse& r) {
    if (path.rfind("/api/v1/", 0) != 0 || r.status == 0) return;
    std::lock_guard lock(record_mutex_);
    rapidjson::Document body;
    body.Parse(r.body.data(), r.body.size());
    std::string line = "{\"method\":" + common_json(method) + ",\"path\":" + common_json(path) +
                       ",\"status\":" + std::to_string(r.status) + ",\"headers\":{";
    bool first = true;
    for (const auto& [name, value] : r.headers) {
      line += (first ? "" : ",") + common_json(name) + ":" + common_json(value);
      first = false;
    }
    line += "},\"body\":";
    if (body.HasParseError()) {
      line += "null";
    } else {
      rapidjson::StringBuffer compact;  // one line, whatever the server's spacing
      rapidjson::Writer<rapidjson::StringBuffer> writer(compact);
      body.Accept(writer);
      line.append(compact.GetString(), compact.GetSize());
    }
    line += "}\n";
    std::ofstream(dir.file("api-responses.jsonl"), std::ios::app) << line;
    ++recorded_;
  }
  static std::string common_json(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        char esc[8];
        snprintf(esc, sizeof esc, "\\u%04x", c);
        out += esc;
      } else {
        out += c;
      }
    }
    return out + "\"";
  }
  std::mutex record_mutex_;  // tests may send from several threads
  size_t recorded_ = 0;
};

}  // namespace balancer::test

#include <doctest/doctest.h>

#include <functional>
#include <string>

#include "core/config.h"
#include "http/server/http_server.h"
#include "http/server/server_config.h"

using core::ConfigDocument;
using core::ConfigReader;

TEST_CASE("config: typed values, defaults and overrides are read") {
  auto doc = ConfigDocument::parse("x.json", R"({"a": 5, "s": "hi", "o": {"b": true}})",
                                   {"o.c=2.5", "n.deep.k=\"v\"", "s=plain words"});
  REQUIRE(doc.ok());
  ConfigReader r(*doc);
  CHECK(r.integer("a", 0, 0, 10) == 5);
  CHECK(r.string("s", "") == "plain words");
  auto o = r.object("o");
  CHECK(o.boolean("b", false));
  CHECK(o.number("c", 0, 0, 10) == doctest::Approx(2.5));
  o.finish();
  auto n = r.object("n");
  auto deep = n.object("deep");
  CHECK(deep.string("k", "") == "v");
  deep.finish();
  n.finish();
  CHECK(r.integer("missing", 42, 0, 100) == 42);
  r.finish();
  CHECK(r.ok());
}

TEST_CASE("config: wrong types, ranges and unknown keys name the file and the key") {
  auto doc = ConfigDocument::parse(
      "conf/x.json", R"({"port": "eighty", "n": 500, "extra": 1, "o": {"zz": 1}})", {});
  REQUIRE(doc.ok());
  ConfigReader r(*doc);
  r.integer("port", 80, 0, 65535);
  r.integer("n", 1, 0, 100);
  r.object("o").finish();
  r.finish();
  REQUIRE_FALSE(r.ok());
  std::string text = r.error_text();
  CHECK(text.find("conf/x.json: key 'port': expected an integer") != std::string::npos);
  CHECK(text.find("key 'n': expected an integer from 0 to 100, got 500") != std::string::npos);
  CHECK(text.find("key 'extra': unknown key") != std::string::npos);
  CHECK(text.find("key 'o.zz': unknown key") != std::string::npos);
  CHECK(r.status().error().code == "bad_config");
}

TEST_CASE("config: invalid JSON reports the line; a non-object top level is refused") {
  auto bad = ConfigDocument::parse("f.json", "{\n\"a\": 1,\n\"b\": }", {});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("f.json: line 3") != std::string::npos);
  CHECK_FALSE(ConfigDocument::parse("f.json", "[1,2]", {}).ok());
  CHECK_FALSE(ConfigDocument::load("/nonexistent/dir/file.json", {}).ok());
}

TEST_CASE("config: malformed overrides are refused with the override named") {
  auto doc = ConfigDocument::parse("f.json", R"({"a": 1})", {"noequals"});
  REQUIRE_FALSE(doc.ok());
  CHECK(doc.error().message.find("noequals") != std::string::npos);
  auto into_scalar = ConfigDocument::parse("f.json", R"({"a": 1})", {"a.b=2"});
  CHECK_FALSE(into_scalar.ok());
}

TEST_CASE("config: maps and lists of objects are walked with per-element paths") {
  auto doc = ConfigDocument::parse(
      "f.json", R"({"m": {"x": {"u": "1"}, "y": 3}, "l": [{"k": 1}, {"k": "no"}]})", {});
  REQUIRE(doc.ok());
  ConfigReader r(*doc);
  int members = 0;
  r.each_member("m", [&](const std::string&, ConfigReader& item) {
    item.string("u", "");
    ++members;
  });
  r.each_element("l", [&](size_t, ConfigReader& item) { item.integer("k", 0, 0, 9); });
  r.finish();
  CHECK(members == 1);
  std::string text = r.error_text();
  CHECK(text.find("key 'm.y': expected an object") != std::string::npos);
  CHECK(text.find("key 'l[1].k'") != std::string::npos);
}

TEST_CASE("command line: --config, --set, --check-config; unknown flags are errors") {
  const char* argv[] = {"bin", "--config", "a.json", "--set", "x=1", "--set=y=2", "--check-config"};
  auto cli = core::parse_command_line(7, const_cast<char**>(argv), "default.json");
  REQUIRE(cli.ok());
  CHECK(cli->config_path == "a.json");
  CHECK(cli->check_config);
  CHECK(cli->overrides == std::vector<std::string>{"x=1", "y=2"});
  const char* bad[] = {"bin", "--frobnicate"};
  CHECK_FALSE(core::parse_command_line(2, const_cast<char**>(bad), "d").ok());
}

namespace {

// Reads section `name` of `json` (a cache_node.json) into server options with `read`; the
// errors, or "". The options read go to `out` when given.
using SectionReader =
    std::function<void(ConfigReader& section, const std::string& file, http::HttpServerOptions&)>;
std::string section_errors(const std::string& json, const char* name, const SectionReader& read,
                           http::HttpServerOptions* out) {
  auto doc = ConfigDocument::parse("/etc/balancer/cache_node.json", json, {});
  REQUIRE(doc.ok());
  ConfigReader root(*doc);
  ConfigReader section = root.object(name);
  http::HttpServerOptions options;
  read(section, doc->file(), options);
  root.finish();
  if (out != nullptr) *out = options;
  return root.ok() ? std::string() : root.error_text();
}

// Reads `listen` of `json` as a server with an HTTP/2 front end (or not); the errors, or "".
std::string listen_errors(const std::string& json, bool http2_capable,
                          http::HttpServerOptions* out = nullptr) {
  return section_errors(
      json, "listen",
      [&](ConfigReader& listen, const std::string& file, http::HttpServerOptions& options) {
        http::read_listen_section(listen, file, 8081, http2_capable, options);
      },
      out);
}

// Reads `server` of `json`; the errors, or "".
std::string server_errors(const std::string& json, http::HttpServerOptions* out = nullptr) {
  return section_errors(
      json, "server",
      [](ConfigReader& server, const std::string&, http::HttpServerOptions& options) {
        http::read_server_section(server, options);
      },
      out);
}

}  // namespace

TEST_CASE(
    "listen: plain by default; TLS needs a port, a certificate and a key that load; h2c only where "
    "HTTP/2 is") {
  http::HttpServerOptions o;
  CHECK(listen_errors(R"({})", true, &o).empty());
  CHECK(o.plain);
  CHECK(o.port == 8081);
  CHECK_FALSE(o.tls.enabled);
  CHECK(o.tls.http2);  // offered once TLS is on
  CHECK_FALSE(o.h2c);

  std::string missing = listen_errors(R"({"listen": {"tls": {"enabled": true}}})", true);
  CHECK(missing.find("listen.tls.port") != std::string::npos);
  CHECK(missing.find("listen.tls.certificate") != std::string::npos);
  CHECK(missing.find("listen.tls.key") != std::string::npos);

  std::string unreadable = listen_errors(
      R"({"listen": {"tls": {"enabled": true, "port": 8443, "certificate": "nope.pem", "key": "nope.key"}}})",
      true);
  CHECK(unreadable.find("listen.tls.certificate") != std::string::npos);
  // Relative to the main file's directory.
  CHECK(unreadable.find("/etc/balancer/nope.pem") != std::string::npos);

  CHECK(listen_errors(R"({"listen": {"plain": false}})", true).find("listen.plain") !=
        std::string::npos);
  CHECK(listen_errors(R"({"listen": {"h2c": true}})", true, &o).empty());
  CHECK(o.h2c);
  // The balancer has no HTTP/2 front end: the keys are unknown there.
  CHECK(listen_errors(R"({"listen": {"h2c": true}})", false).find("listen.h2c") !=
        std::string::npos);
  CHECK(listen_errors(R"({"listen": {"port": 70000}})", true).find("listen.port") !=
        std::string::npos);

  // Session tickets: a secret file that does not load is named, relative to the main file;
  // the rotation is bounded (a minute to a week).
  std::string no_secret = listen_errors(
      R"({"listen": {"tls": {"enabled": true, "port": 8443, "certificate": "c.pem", "key": "k.pem", "ticket_key_file": "fleet.key"}}})",
      true);
  CHECK(no_secret.find("listen.tls.ticket_key_file") != std::string::npos);
  CHECK(no_secret.find("/etc/balancer/fleet.key") != std::string::npos);
  CHECK(listen_errors(R"({"listen": {"tls": {"ticket_rotation_s": 10}}})", true)
            .find("listen.tls.ticket_rotation_s") != std::string::npos);
  CHECK(listen_errors(R"({"listen": {"tls": {"ticket_rotation_s": 600}}})", true, &o).empty());
  CHECK(o.tls.ticket_rotation_s == 600);
}

TEST_CASE("server: http1_transport, removed with evhttp, is refused naming the key and why") {
  CHECK(server_errors(R"({})").empty());
  for (const char* value : {"evhttp", "builtin"}) {
    const std::string refused =
        server_errors(std::string(R"({"server": {"http1_transport": ")") + value + R"("}})");
    INFO(refused);
    CHECK(refused.find("/etc/balancer/cache_node.json") != std::string::npos);
    CHECK(refused.find("server.http1_transport") != std::string::npos);
    CHECK(refused.find("was removed") != std::string::npos);
    CHECK(refused.find("unknown key") == std::string::npos);  // one error, with the reason
  }
}

TEST_CASE("server: ipv6_prefix_length is 64 by default, 1 to 128, and a bad one names the key") {
  http::HttpServerOptions o;
  CHECK(server_errors(R"({})", &o).empty());
  CHECK(o.ipv6_prefix_length == 64);
  CHECK(o.connection_limits().ipv6_prefix_length == 64);
  CHECK(server_errors(R"({"server": {"ipv6_prefix_length": 56}})", &o).empty());
  CHECK(o.connection_limits().ipv6_prefix_length == 56);
  CHECK(server_errors(R"({"server": {"ipv6_prefix_length": 128}})", &o).empty());
  CHECK(o.ipv6_prefix_length == 128);
  for (const char* bad : {"0", "129", "-64", "64.5", "\"64\""}) {
    const std::string refused =
        server_errors(std::string(R"({"server": {"ipv6_prefix_length": )") + bad + "}}");
    INFO(refused);
    CHECK(refused.find("/etc/balancer/cache_node.json") != std::string::npos);
    CHECK(refused.find("server.ipv6_prefix_length") != std::string::npos);
    CHECK(refused.find("from 1 to 128") != std::string::npos);
  }
}

// Reload is parse → validate everything (TLS included) → swap, on the real balancer
// and cache node: a SIGHUP whose files change the certificate and more but carry a
// bad key further on is rejected with one log line and leaves the certificate
// served, the channels, caches and limits (the node's identity and origins) as they
// were; the same files made valid then change all of them together.
#include <doctest/doctest.h>

#include <filesystem>
#include <sstream>

#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"
#include "support/test_certificate.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

// The "listen" section with TLS on `cert` and `key`; `more`: further listen keys.
std::string listen_section(const std::string& cert, const std::string& key,
                           const std::string& more = "") {
  return "\"listen\":{\"host\":\"127.0.0.1\",\"port\":0" + more +
         ",\"tls\":{\"enabled\":true,\"port\":0,\"certificate\":\"" + cert + "\",\"key\":\"" + key +
         "\"}}";
}

// The fingerprint of the certificate the server on `port` presents now.
std::string served_fingerprint(int port) {
  TlsHandshake handshake = tls_handshake(port);
  INFO(handshake.error);
  return handshake.fingerprint;
}

// The stderr lines containing `needle`.
std::vector<std::string> lines_with(const std::string& text, const std::string& needle) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.find(needle) != std::string::npos) out.push_back(line);
  }
  return out;
}

// Waits (bounded) until the rejection has been logged, then checks it is one line that
// names every problem (`problems`) and shows none of the secrets.
void check_one_rejection_line(ChildProcess& process, size_t rejections,
                              const std::vector<std::string>& problems,
                              const std::vector<std::string>& secrets) {
  const std::string needle = "reload rejected";
  REQUIRE(wait_until([&] { return lines_with(process.stderr_text(), needle).size() >= rejections; },
                     5s));
  const std::string text = process.stderr_text();
  auto lines = lines_with(text, needle);
  REQUIRE(lines.size() == rejections);
  const std::string& line = lines.back();
  CHECK(line.find(" error ") != std::string::npos);
  for (const auto& problem : problems) CHECK_MESSAGE(line.find(problem) != std::string::npos, line);
  for (const auto& secret : secrets) CHECK(text.find(secret) == std::string::npos);
}

}  // namespace

TEST_CASE(
    "balancer: a reload rejected by a later key keeps the certificate, channels, caches and "
    "limits") {
  TempDir dir;
  TestTlsFilePair certs(dir.file("tls"));
  TestOrigin origin(live_files(dir));
  const std::string main_path = dir.file("balancer/main.json");
  const std::string operator_key = "reload-test-operator-key-0001";
  // The fixture's --set overrides (keys, files, origin) apply on top of this file at every reload.
  auto main_file = [&](const std::string& cert, const std::string& key, const std::string& limits) {
    return "{" + listen_section(cert, key) +
           ",\"channels_file\":\"channels.json\",\"caches_file\":\"caches.json\","
           "\"origins\":{\"demo\":{\"url\":\"http://127.0.0.1:1\"}},"
           "\"signing\":{\"keys\":[\"placeholder-signing-key-0001\"]},"
           "\"playback\":{\"ticket_keys\":[\"placeholder-ticket-key-0001\"]},"
           "\"operator\":{\"key\":\"" +
           operator_key + "\"},\"limits\":" + limits + ",\"web\":{\"dir\":\"\"}}";
  };
  write_file(main_path, main_file(certs.first.cert, certs.first.key, "{\"max_streams\":50}"));
  BalancerProcess balancer(dir, origin.url("/files"),
                           channels_json({channel_json("demo", "/live/index.m3u8")}),
                           caches_json({}), {}, main_path);
  REQUIRE(balancer.tls_port() > 0);
  auto playlist_status = [&](const std::string& channel) {
    return balancer.get("/hls/" + channel + "/live/index.m3u8?viewer=reload-viewer").status;
  };
  auto running_as_started = [&] {
    CHECK(served_fingerprint(balancer.tls_port()) == certs.first_fingerprint);
    CHECK(playlist_status("demo") == 200);
    CHECK(playlist_status("extra") == 404);
    CHECK(balancer.health().find("\"channels\":1,") != std::string::npos);
    CHECK(balancer.health().find("\"id\":\"late-cache\"") == std::string::npos);
    CHECK(balancer.metric("balancer_limit_max_streams") == 50);
  };
  running_as_started();

  // Everything changes (certificate path, limits, a new channel, a new cache), but the
  // main file has a bad limit and a bad health key after the certificate.
  write_file(
      main_path,
      main_file(
          certs.second.cert, certs.second.key,
          "{\"max_streams\":7,\"idle_timeout_s\":-1},\"upstream\":{\"connect_timeout_ms\":0}"));
  balancer.write_channels(channels_json(
      {channel_json("demo", "/live/index.m3u8"), channel_json("extra", "/live/index.m3u8")}));
  balancer.write_caches(caches_json({cache_json("late-cache", "venue", 1)}));
  REQUIRE(balancer.reload("rejected"));
  check_one_rejection_line(balancer.process(), 1,
                           {"limits.idle_timeout_s", "upstream.connect_timeout_ms"},
                           {kBalancerSigningKey, kTicketKey, operator_key});
  running_as_started();

  // The main file is good now, but the channels file has a channel on an unknown origin.
  write_file(main_path, main_file(certs.second.cert, certs.second.key, "{\"max_streams\":7}"));
  balancer.write_channels(channels_json(
      {channel_json("demo", "/live/index.m3u8"), channel_json("extra", "/live/index.m3u8"),
       "{\"id\":\"broken\",\"origin\":\"nowhere\",\"source\":\"/x.m3u8\",\"free\":true}"}));
  REQUIRE(balancer.reload("rejected"));
  check_one_rejection_line(balancer.process(), 2, {"channels.json", "nowhere"},
                           {kBalancerSigningKey, kTicketKey, operator_key});
  running_as_started();

  // The same change made valid: all of it applies.
  balancer.write_channels(channels_json(
      {channel_json("demo", "/live/index.m3u8"), channel_json("extra", "/live/index.m3u8")}));
  REQUIRE(balancer.reload("ok"));
  CHECK(served_fingerprint(balancer.tls_port()) == certs.second_fingerprint);
  CHECK(playlist_status("extra") == 200);
  CHECK(balancer.health().find("\"channels\":2,") != std::string::npos);
  CHECK(balancer.health().find("\"id\":\"late-cache\"") != std::string::npos);
  CHECK(balancer.metric("balancer_limit_max_streams") == 7);
  CHECK(balancer.metric("balancer_config_reloads_total{result=\"rejected\"}") == 2);
}

TEST_CASE(
    "cache node: a reload rejected by a later key keeps the certificate, identity and origins") {
  TempDir dir;
  TestTlsFilePair certs(dir.file("tls"));
  TestOrigin origin;
  const std::string main_path = dir.file("node/main.json");
  // The fixture's --set overrides (ports, data_dir, origin demo, keys) apply on top at every
  // reload.
  auto main_file = [&](const std::string& cert, const std::string& key, const std::string& site,
                       const std::string& more, bool http2) {
    return "{\"node_id\":\"reload-node\",\"site\":\"" + site + "\"," +
           listen_section(cert, key, http2 ? ",\"http2\":true" : ",\"http2\":false") +
           ",\"data_dir\":\"unused\",\"origins\":{\"demo\":{\"url\":\"http://127.0.0.1:1\"}" +
           more + "}";
  };
  const std::string extra_origin =
      ",\"extra\":{\"url\":\"" + origin.base_url() + "\",\"query\":\"keep\"}}";
  write_file(main_path, main_file(certs.first.cert, certs.first.key, "first-site", "}", true));
  CacheNodeProcess node(dir.file("data"), origin.base_url(), {}, main_path);
  REQUIRE(node.tls_port() > 0);
  auto extra_status = [&] { return http_get(node.signed_url("/o/extra/gen/1K/reload.ts")).status; };
  auto running_as_started = [&] {
    CHECK(served_fingerprint(node.tls_port()) == certs.first_fingerprint);
    CHECK(http_get(node.url("/ping")).body.find("\"site\":\"first-site\"") != std::string::npos);
    CHECK(extra_status() == 404);
  };
  running_as_started();
  CHECK(tls_handshake(node.tls_port()).alpn == "h2");

  // New certificate, site and origin, then two bad keys further on.
  write_file(
      main_path,
      main_file(certs.second.cert, certs.second.key, "second-site",
                extra_origin + ",\"negative_ttl_ms\":-1,\"overload\":{\"max_connections\":0}",
                true));
  REQUIRE(node.reload("rejected"));
  check_one_rejection_line(node.process(), 1, {"negative_ttl_ms", "max_connections"},
                           {kSigningKey, kPreviousKey});
  running_as_started();

  // Made valid (and listen.http2 switched off, which needs a restart): the rest applies,
  // and the TLS port keeps offering what its listeners speak.
  write_file(main_path,
             main_file(certs.second.cert, certs.second.key, "second-site", extra_origin, false));
  REQUIRE(node.reload("ok"));
  CHECK(served_fingerprint(node.tls_port()) == certs.second_fingerprint);
  CHECK(http_get(node.url("/ping")).body.find("\"site\":\"second-site\"") != std::string::npos);
  CHECK(extra_status() == 200);
  CHECK(tls_handshake(node.tls_port()).alpn == "h2");
}

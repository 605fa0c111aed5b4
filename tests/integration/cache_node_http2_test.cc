// The cache node's upstream client speaks HTTP/2 over TLS to an origin that does
// (a real nghttpd with a test certificate), multiplexing concurrent chunk fetches
// over one connection.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <thread>

#include "support/cache_node_fixture.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

bool accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

std::string chunk_bytes(int i) {
  std::string s(64 * 1024, '\0');
  for (size_t k = 0; k < s.size(); ++k)
    s[k] = static_cast<char>((k * 31 + static_cast<size_t>(i) * 7) & 0xff);
  return s;
}

}  // namespace

TEST_CASE("upstream HTTP/2: concurrent chunk fetches share one multiplexed connection") {
  if (access("/usr/sbin/nghttpd", X_OK) != 0) {
    MESSAGE("skipped: nghttpd (Debian package nghttp2-server) is not installed");
    return;
  }
  TempDir dir;
  std::string www = dir.file("www");
  REQUIRE(system(("mkdir -p " + www + "/live").c_str()) == 0);
  for (int i = 0; i < 20; ++i)
    std::ofstream(www + "/live/c" + std::to_string(i) + ".ts", std::ios::binary) << chunk_bytes(i);
  std::string key = dir.file("key.pem"), cert = dir.file("cert.pem");
  REQUIRE(system(("openssl req -x509 -newkey rsa:2048 -nodes -keyout " + key + " -out " + cert +
                  " -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null")
                     .c_str()) == 0);
  int port = -1;
  ChildProcess h2;
  // The port is picked free and then bound by nghttpd: retry if another process took it.
  for (int attempt = 0; attempt < 5 && port < 0; ++attempt) {
    int candidate = free_port();
    REQUIRE(h2.start({"/usr/sbin/nghttpd", "-v", "-d", www, std::to_string(candidate), key, cert}));
    if (wait_until([&] { return accepts(candidate); }, 5s)) {
      port = candidate;
    } else {
      h2.kill();
      h2.wait_exit(deadline_in(5s));
    }
  }
  REQUIRE(port > 0);
  const std::string origin = "https://127.0.0.1:" + std::to_string(port);

  SUBCASE("trusting the origin's CA, the chunks arrive over one HTTP/2 connection") {
    CacheNodeProcess node(dir.file("data"), origin,
                          {"signing.required=false", "upstream.ca_file=" + cert});
    std::vector<HttpResponse> responses(20);
    std::vector<std::thread> viewers;
    for (int i = 0; i < 20; ++i) {
      viewers.emplace_back([&, i] {
        responses[i] = http_get(node.url("/o/demo/live/c" + std::to_string(i) + ".ts"));
      });
    }
    for (auto& t : viewers) t.join();
    for (int i = 0; i < 20; ++i) {
      CAPTURE(i);
      CHECK(responses[i].status == 200);
      CHECK(responses[i].body == chunk_bytes(i));
    }
    // nghttpd -v tags every frame with its connection id; count the connections
    // that carried requests (the readiness probe above carried none).
    std::set<std::string> connections;
    for (const auto& line : h2.stdout_lines()) {
      auto at = line.find("[id=");
      if (at != std::string::npos && line.find("recv (stream_id=") != std::string::npos) {
        connections.insert(line.substr(at, line.find(']', at) - at));
      }
    }
    MESSAGE("HTTP/2 connections used: " << connections.size());
    // One connection per event loop at most: each loop multiplexes its own fetches.
    CHECK(connections.size() >= 1);
    CHECK(connections.size() <= static_cast<size_t>(test_threads()));
  }
  SUBCASE("an origin certificate nobody vouches for is refused with 502, never fetched") {
    CacheNodeProcess node(dir.file("data"), origin, {"signing.required=false"});
    auto r = http_get(node.url("/o/demo/live/c0.ts"));
    CHECK(r.status == 502);
    CHECK(is_json_error(r, "origin_unreachable"));
  }
  h2.terminate();
}

// The cache node serves HTTP/2 beside HTTP/1.1: h2 by ALPN on its TLS port and
// h2c with prior knowledge on its plain port, through the same cache path (hits,
// misses, ranges, 304, signatures, CORS), 100 concurrent streams on one
// connection, and hostile clients cut off without harm to others: rapid reset,
// header lists over the limit and HPACK bombs, PINGs that would hold a connection.
#include <curl/curl.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <thread>

#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"
#include "support/generated_body.h"
#include "support/raw_h2_client.h"
#include "support/sockets.h"
#include "support/test_certificate.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

// The node's TLS port with h2c beside it on the plain port.
struct TlsFiles : TestTlsFiles {
  explicit TlsFiles(const TempDir& dir) : TestTlsFiles(dir.path(), "h2-node") {}
  std::vector<std::string> overrides() const {
    auto o = TestTlsFiles::overrides();
    o.push_back("listen.h2c=true");
    return o;
  }
};

HttpResponse get(const CacheNodeProcess& node, const Transport& t, const TlsFiles& tls,
                 const std::string& target, const HttpHeaders& headers = {},
                 const std::string& method = "GET") {
  HttpRequest request;
  request.method = method;
  request.headers = headers;
  return node.request_over(t, tls.cert, target, request);
}

// What each test starts with (a doctest fixture): a cache node with h2 on its TLS port and
// h2c on its plain one, on a test_origin.
struct H2Node {
  TempDir dir;
  TlsFiles tls{dir};
  TestOrigin origin;
  CacheNodeProcess node{dir.file("data"), origin.base_url(), tls.overrides()};
};

std::string path_of(const CacheNodeProcess& node, const std::string& signed_url) {
  return signed_url.substr(node.url("").size());
}

size_t collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// Every path's GET at once on one h2c connection (prior knowledge), read until all
// streams closed: what came back for each, in the order of `paths`.
std::vector<RawH2Client::Stream> h2c_get_all(int port, const std::vector<std::string>& paths) {
  RawH2Client::Options options;
  options.receive_timeout = std::chrono::seconds(10);
  RawH2Client client(port, options);
  if (!client.connected()) return std::vector<RawH2Client::Stream>(paths.size());
  std::vector<int32_t> ids;
  for (const auto& path : paths) ids.push_back(client.submit(client.get_request(path)));
  client.run_until_answered(100000);
  std::vector<RawH2Client::Stream> results;
  for (int32_t id : ids) results.push_back(id > 0 ? client.stream(id) : RawH2Client::Stream{});
  return results;
}

}  // namespace

TEST_CASE_FIXTURE(
    H2Node,
    "h2 over TLS and h2c with prior knowledge: bodies, ranges, 304, HEAD, signatures, CORS, disk "
    "hits") {
  const std::string target = "/o/demo/gen/700K/h2.ts";
  const std::string body = generated_body("h2.ts", 700 * 1024);

  for (const Transport& t :
       {Transport{"h2 (ALPN)", HttpRequest::Version::http2_tls, true},
        Transport{"h2c (prior knowledge)", HttpRequest::Version::http2_prior_knowledge, false}}) {
    CAPTURE(t.name);
    auto first = get(node, t, tls, path_of(node, node.signed_url(target)));
    REQUIRE_MESSAGE(first.ok(), first.error);
    CHECK(first.http_version == 20);
    CHECK(first.status == 200);
    CHECK(first.body == body);
    CHECK(first.header("Content-Length") ==
          std::optional<std::string>(std::to_string(body.size())));
    CHECK(first.header("Content-Type") == std::optional<std::string>("video/mp2t"));
    auto range =
        get(node, t, tls, path_of(node, node.signed_url(target)), {{"Range", "bytes=100-199"}});
    CHECK(range.status == 206);
    CHECK(range.body == body.substr(100, 100));
    CHECK(range.header("Content-Range") == std::optional<std::string>("bytes 100-199/716800"));
    auto etag = first.header("ETag").value_or("");
    REQUIRE_FALSE(etag.empty());
    auto cached =
        get(node, t, tls, path_of(node, node.signed_url(target)), {{"If-None-Match", etag}});
    CHECK(cached.status == 304);
    CHECK(cached.body.empty());
    auto head = get(node, t, tls, path_of(node, node.signed_url(target)), {}, "HEAD");
    CHECK(head.status == 200);
    CHECK(head.body.empty());
    CHECK(head.header("Content-Length") == std::optional<std::string>(std::to_string(body.size())));
    auto refused = get(node, t, tls, target);
    CHECK(refused.status == 403);
    CHECK(is_json_error(refused, "signature_missing"));
    auto ping = get(node, t, tls, "/ping");
    CHECK(ping.status == 200);
    CHECK(ping.header("Access-Control-Allow-Origin") == std::optional<std::string>("*"));
    auto missing = get(node, t, tls, "/nowhere");
    CHECK(missing.status == 404);
    CHECK(is_json_error(missing, "not_found"));
    auto huge = get(node, t, tls, "/ping", {{"X-Big", std::string(20000, 'b')}});
    CHECK(huge.status == 431);
    CHECK(is_json_error(huge, "headers_too_large"));
  }
  // HTTP/1.1 on the same two ports.
  auto plain = http_get(node.signed_url(target));
  CHECK(plain.http_version == 11);
  CHECK(plain.body == body);
  auto https1 = get(node, {"https/1.1", HttpRequest::Version::http1_1, true}, tls,
                    path_of(node, node.signed_url(target)));
  CHECK(https1.http_version == 11);
  CHECK(https1.body == body);
  CHECK(origin.count("/gen/700K/h2.ts") == 1);

  // After a restart the chunk is on disk only: both HTTP/2 transports read it.
  REQUIRE(node.wait_disk_settled(1));
  node.stop();
  node.start();
  for (const Transport& t :
       {Transport{"h2 (ALPN)", HttpRequest::Version::http2_tls, true},
        Transport{"h2c (prior knowledge)", HttpRequest::Version::http2_prior_knowledge, false}}) {
    CAPTURE(t.name);
    auto disk = get(node, t, tls, path_of(node, node.signed_url(target)));
    CHECK(disk.http_version == 20);
    CHECK(disk.body == body);
    auto tail =
        get(node, t, tls, path_of(node, node.signed_url(target)), {{"Range", "bytes=-1000"}});
    CHECK(tail.body == body.substr(body.size() - 1000));
  }
  // And HTTP/1.1 on the plain port, through the protocol filter, still sends files whole.
  const double h2_connections = node.metric("http2_connections_total");
  CHECK(http_get(node.signed_url(target)).body == body);
  CHECK(origin.count("/gen/700K/h2.ts") == 1);
  // Each request above since the restart came on a connection of its own: four went on in h2.
  CHECK(h2_connections == 4);
  CHECK(node.metric("http2_connections_total") == 4);
}

TEST_CASE_FIXTURE(
    H2Node,
    "over TLS a hit arrives in full records: h2 DATA frames with their heads, an HTTP/1.1 head "
    "with its body") {
  struct Case {
    const char* name;
    HttpRequest::Version version;
    long http_version;
    size_t size;
    size_t most_records;  // of application data, control frames included
  };
  // h2, 1 MiB: 64 frames of 16 KiB; each head apart from its payload would be a record
  // of its own (~26 bytes): 128 records and more. HTTP/1.1, 40 KiB: the head apart
  // would be a fourth, short record.
  for (const Case& c : {Case{"h2", HttpRequest::Version::http2_tls, 20, 1024 * 1024, 72},
                        Case{"http/1.1", HttpRequest::Version::http1_1, 11, 40 * 1024, 3}}) {
    INFO("protocol: ", std::string(c.name));
    const std::string name = std::string("records-") + (c.http_version == 20 ? "h2" : "h1") + ".ts";
    const std::string target = "/o/demo/gen/" + std::to_string(c.size / 1024) + "K/" + name;
    const std::string body = generated_body(name, c.size);
    for (const char* pass : {"miss", "hit"}) {
      CAPTURE(pass);
      std::vector<size_t> records;
      HttpRequest request;
      request.url = node.tls_url(path_of(node, node.signed_url(target)));
      request.ca_file = tls.cert;
      request.version = c.version;
      request.tls_records_received = &records;
      const HttpResponse r = http_request(request);
      REQUIRE_MESSAGE(r.ok(), r.error);
      CHECK(r.http_version == c.http_version);
      CHECK(r.body == body);
      // A miss streams the body as the origin sends it: its records follow the origin's pace.
      if (std::string_view(pass) == "miss") continue;
      size_t small = 0;
      for (size_t length : records) small += length < 1024 ? 1 : 0;
      std::string lengths;
      for (size_t length : records) lengths += std::to_string(length) + " ";
      INFO("records: ", records.size(), ", under 1 KiB: ", small, ": ", lengths);
      CHECK(small <= (c.http_version == 20 ? 6u : 0u));  // SETTINGS, ACKs, WINDOW_UPDATEs
      CHECK(records.size() <= c.most_records);
    }
  }
  CHECK(origin.count("/gen/1024K/records-h2.ts") == 1);
}

TEST_CASE_FIXTURE(
    H2Node,
    "streams of one connection are sent one after another (RFC 9218's default), not a frame of "
    "each in turn") {
  std::vector<std::string> paths;
  // 32 KiB each, within the client's stream window (64 KiB): no stream waits for a window update.
  for (int i = 0; i < 10; ++i)
    paths.push_back(
        path_of(node, node.signed_url("/o/demo/gen/32K/order" + std::to_string(i) + ".ts")));
  h2c_get_all(node.port(), paths);  // now hits: every body is there at once
  auto results = h2c_get_all(node.port(), paths);
  std::sort(results.begin(), results.end(),
            [](const RawH2Client::Stream& a, const RawH2Client::Stream& b) {
              return a.first_chunk < b.first_chunk;
            });
  for (size_t i = 0; i < results.size(); ++i) {
    CAPTURE(i);
    CHECK(results[i].body.size() == 32 * 1024);
    // Two frames of 16 KiB each: interleaved, every body would overlap the next.
    if (i + 1 < results.size()) CHECK(results[i].last_chunk < results[i + 1].first_chunk);
  }
}

TEST_CASE_FIXTURE(
    H2Node,
    "100 concurrent streams on one HTTP/2 connection: every body whole, one connection, one origin "
    "fetch each") {
  constexpr int kStreams = 100;
  auto name_of = [](bool over_tls, int i) {
    return (over_tls ? "t" : "p") + std::to_string(i < 50 ? i % 5 : i);
  };
  {
    // h2c with prior knowledge.
    std::vector<std::string> paths;
    for (int i = 0; i < kStreams; ++i) {
      paths.push_back(
          path_of(node, node.signed_url("/o/demo/gen/64K/" + name_of(false, i) + ".ts")));
    }
    auto results = h2c_get_all(node.port(), paths);
    int ok = 0;
    for (int i = 0; i < kStreams; ++i) {
      ok += results[i].closed && results[i].status == 200 &&
            results[i].body == generated_body(name_of(false, i) + ".ts", 64 * 1024);
    }
    CHECK(ok == kStreams);
    for (int i = 0; i < 5; ++i) CHECK(origin.count("/gen/64K/p" + std::to_string(i) + ".ts") == 1);
  }
  for (bool use_tls : {true}) {
    CAPTURE(use_tls);
    std::unique_ptr<CURLM, decltype(&curl_multi_cleanup)> multi(curl_multi_init(),
                                                                curl_multi_cleanup);
    curl_multi_setopt(multi.get(), CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(multi.get(), CURLMOPT_MAX_HOST_CONNECTIONS, 1L);
    std::vector<std::string> bodies(kStreams);
    std::vector<CURL*> easies;
    for (int i = 0; i < kStreams; ++i) {
      // Half the streams share five chunks (a herd), half ask for their own.
      std::string name = (use_tls ? "t" : "p") + std::to_string(i < 50 ? i % 5 : i);
      std::string path = path_of(node, node.signed_url("/o/demo/gen/64K/" + name + ".ts"));
      CURL* e = curl_easy_init();
      curl_easy_setopt(e, CURLOPT_URL, (use_tls ? node.tls_url(path) : node.url(path)).c_str());
      curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                       use_tls ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
      curl_easy_setopt(e, CURLOPT_CAINFO, tls.cert.c_str());
      curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
      curl_easy_setopt(e, CURLOPT_PROXY, "");
      curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
      curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
      curl_easy_setopt(e, CURLOPT_WRITEDATA, &bodies[i]);
      curl_easy_setopt(e, CURLOPT_PRIVATE, reinterpret_cast<char*>(static_cast<intptr_t>(i)));
      curl_multi_add_handle(multi.get(), e);
      easies.push_back(e);
    }
    int running = 1;
    auto deadline = deadline_in(30s);
    for (int turns = 0;
         running > 0 && turns < 100000 && std::chrono::steady_clock::now() < deadline; ++turns) {
      curl_multi_perform(multi.get(), &running);
      if (running > 0) curl_multi_poll(multi.get(), nullptr, 0, 100, nullptr);
    }
    CHECK(running == 0);
    long connects = 0;
    int ok = 0;
    for (int i = 0; i < kStreams; ++i) {
      long status = 0, version = 0, n = 0;
      curl_easy_getinfo(easies[i], CURLINFO_RESPONSE_CODE, &status);
      curl_easy_getinfo(easies[i], CURLINFO_HTTP_VERSION, &version);
      curl_easy_getinfo(easies[i], CURLINFO_NUM_CONNECTS, &n);
      connects += n;
      std::string name = (use_tls ? "t" : "p") + std::to_string(i < 50 ? i % 5 : i);
      if (status == 200 && version == CURL_HTTP_VERSION_2_0 &&
          bodies[i] == generated_body(name + ".ts", 64 * 1024)) {
        ++ok;
      }
      curl_multi_remove_handle(multi.get(), easies[i]);
      curl_easy_cleanup(easies[i]);
    }
    CHECK(ok == kStreams);
    CHECK(connects == 1);
    for (int i = 0; i < 5; ++i) {
      CHECK(origin.count("/gen/64K/" + std::string(use_tls ? "t" : "p") + std::to_string(i) +
                         ".ts") == 1);
    }
  }
}

TEST_CASE_FIXTURE(
    H2Node,
    "rapid reset: a client that opens and cancels streams in a flood gets GOAWAY; others are "
    "served") {
  RawH2Client client(node.port());
  REQUIRE(client.connected());
  std::string path = path_of(node, node.signed_url("/o/demo/gen/1K/rr.ts"));
  auto headers = client.get_request(path);
  // 2,000 streams, each cancelled right after it was opened, written as fast as the socket takes
  // them.
  int sent_streams = 0;
  for (int i = 0; i < 2000; ++i) {
    int32_t id = client.submit(headers);
    // HEADERS out first: nghttp2 drops a request reset before it was sent.
    if (id < 0 || !client.send()) break;
    nghttp2_submit_rst_stream(client.session(), NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    if (!client.send()) break;  // the server closed on us
    ++sent_streams;
  }
  // Read until the server closes (bounded by the socket timeout and a count).
  client.run_until_closed(10000);
  MESSAGE("streams opened and reset before the cut: " << sent_streams);
  CHECK(client.got_goaway());
  CHECK(client.goaway_error() == NGHTTP2_ENHANCE_YOUR_CALM);
  // The node is alive and serves everyone else over both protocols.
  CHECK(http_get(node.url("/ping")).status == 200);
  HttpRequest h2;
  h2.url = node.url(path);
  h2.version = HttpRequest::Version::http2_prior_knowledge;
  auto other = http_request(h2);
  CHECK(other.status == 200);
  CHECK(other.body == generated_body("rr.ts", 1024));
  CHECK_FALSE(node.process().wait_exit(deadline_in(0ms)).has_value());
}

TEST_CASE_FIXTURE(
    H2Node,
    "a client that opens big windows and never reads costs the node a bounded buffer, not a chunk "
    "per stream") {
  const std::string path = path_of(node, node.signed_url("/o/demo/gen/8M/slow.ts"));
  REQUIRE(http_get(node.url(path)).status == 200);  // now a memory hit
  auto rss_kib = [&] { return proc_status_kib(node.pid(), "VmRSS"); };
  const int64_t before = rss_kib();

  // Windows as large as HTTP/2 allows: only the node's own bound holds bytes back.
  RawH2Client::Options options;
  options.receive_buffer = 4096;
  options.settings = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (1u << 31) - 1}};
  RawH2Client client(node.port(), options);
  REQUIRE(client.connected());
  nghttp2_submit_window_update(client.session(), NGHTTP2_FLAG_NONE, 0, (1 << 30));
  auto nva = client.get_request(path);
  constexpr int kStreams = 50;
  for (int i = 0; i < kStreams; ++i) client.submit(nva);
  REQUIRE(client.send());
  // Not a synchronisation but a measurement: the highest RSS over one second of the
  // node pushing into a connection that is never read (20 samples).
  int64_t settled = before;
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(50ms);
    settled = std::max(settled, rss_kib());
  }
  MESSAGE("node RSS before " << before << " KiB, with " << kStreams << " stalled 8 MiB streams "
                             << settled << " KiB");
  // Copies per stream would be 50 x 8 MiB = 400 MiB; the bound is the per-connection output.
  CHECK(settled - before < 16 * 1024);
  // A hit on another connection is still answered at once.
  CHECK(http_get(node.url(path)).status == 200);
}

namespace {

// An h2c client that reads with a short timeout and may send header blocks of any size:
// what the node sent back to a hostile request pattern (statuses, GOAWAY, whether it closed).
RawH2Client::Options hostile() {
  // Our own header blocks are the attack: let nghttp2 send them whatever their size.
  RawH2Client::Options options;
  options.receive_timeout = std::chrono::milliseconds(300);
  options.max_send_header_block = 64 << 20;
  return options;
}

}  // namespace

TEST_CASE_FIXTURE(
    H2Node,
    "HTTP/2 header lists: the limit is advertised, a list over it gets 431, an HPACK bomb ends the "
    "connection") {
  const std::string path = path_of(node, node.signed_url("/o/demo/gen/1K/hdr.ts"));
  // A field that fits HPACK's dynamic table (4 KiB): sent once, then referenced by index
  // in a byte or two, it decodes to 4 KiB each time.
  static const std::string kName = "x-filler", kValue(4000, 'a');
  auto request_with = [&](const RawH2Client& client, size_t copies) {
    std::vector<nghttp2_nv> filler;
    for (size_t i = 0; i < copies; ++i) {
      filler.push_back(nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(kName.data())),
                                  reinterpret_cast<uint8_t*>(const_cast<char*>(kValue.data())),
                                  kName.size(), kValue.size(), NGHTTP2_NV_FLAG_NONE});
    }
    return client.get_request(path, filler);
  };
  auto rss_kib = [&] { return proc_status_kib(node.pid(), "VmRSS"); };

  SUBCASE("over the limit: 431 per stream, the connection stays") {
    RawH2Client client(node.port(), hostile());
    REQUIRE(client.connected());
    auto nva = request_with(client, 5);  // 20 KB decoded against the default 16 KiB
    for (int i = 0; i < 20; ++i) client.submit(nva);
    client.submit(client.get_request(path));
    for (int i = 0; i < 100 && client.statuses().size() < 21 && client.exchange(); ++i) {
    }
    CHECK(nghttp2_session_get_remote_settings(client.session(),
                                              NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE) == 16384);
    const auto& statuses = client.statuses();
    REQUIRE(statuses.size() == 21);
    CHECK(std::count(statuses.begin(), statuses.end(), 431) == 20);
    CHECK(std::count(statuses.begin(), statuses.end(), 200) == 1);
    CHECK_FALSE(client.closed());
  }
  SUBCASE("a block decoding to megabytes: the connection ends, the node keeps its memory") {
    const int64_t before = rss_kib();
    constexpr int kConnections = 4;
    for (int c = 0; c < kConnections; ++c) {
      RawH2Client client(node.port(), hostile());
      REQUIRE(client.connected());
      auto nva = request_with(client, 600);  // about 2.4 MB decoded from about 5 KB on the wire
      for (int i = 0; i < 100; ++i) client.submit(nva);
      for (int i = 0; i < 100 && client.exchange(); ++i) {
      }
      CHECK(client.closed());
      CHECK(client.statuses().empty());
    }
    const int64_t after = rss_kib();
    MESSAGE("node RSS " << before << " KiB before, " << after << " KiB after " << kConnections
                        << " connections of 100 streams of 2.4 MB header lists");
    CHECK(after - before < 16 * 1024);
    CHECK(metric_value(http_get(node.url("/metrics")).body, "http2_header_list_refusals_total")
              .value_or(0) >= kConnections);
  }
  // Still serving.
  HttpRequest h2;
  h2.url = node.url(path);
  h2.version = HttpRequest::Version::http2_prior_knowledge;
  CHECK(http_request(h2).status == 200);
}

TEST_CASE("an HTTP/2 connection kept open only by PINGs is closed after io_timeout_s") {
  TempDir dir;
  TlsFiles tls(dir);
  TestOrigin origin;
  auto overrides = tls.overrides();
  overrides.push_back("server.io_timeout_s=2");
  CacheNodeProcess node(dir.file("data"), origin.base_url(), overrides);
  RawH2Client client(node.port(), hostile());
  REQUIRE(client.connected());
  auto start = Clock::now();
  // A PING about every 300 ms (the client's read timeout), for at most 10 s.
  for (int i = 0; i < 100 && !client.got_goaway() && !client.closed() && Clock::now() - start < 10s;
       ++i) {
    uint8_t payload[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    nghttp2_submit_ping(client.session(), NGHTTP2_FLAG_NONE, payload);
    client.exchange();  // sends it and reads the acknowledgement
    client.exchange();  // nothing else comes: one read timeout
  }
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  MESSAGE("GOAWAY or close after " << seconds << " s of PINGs");
  CHECK((client.got_goaway() || client.closed()));
  CHECK(seconds < 6);
}

namespace {

// A cache node whose connections time out after 2 s (the least io_timeout_s the test can
// tell from a live connection), with h2c on its plain port.
struct QuickTimeoutNode {
  TempDir dir;
  TlsFiles tls{dir};
  TestOrigin origin;
  CacheNodeProcess node{dir.file("data"), origin.base_url(), with_io_timeout(tls.overrides())};

  static std::vector<std::string> with_io_timeout(std::vector<std::string> overrides) {
    overrides.push_back("server.io_timeout_s=2");
    return overrides;
  }
};

// A client whose windows start at 0 and open only when the test says.
RawH2Client::Options zero_window() {
  RawH2Client::Options options;
  options.receive_timeout = std::chrono::milliseconds(300);
  options.manual_windows = true;
  options.settings = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 0}};
  return options;
}

}  // namespace

TEST_CASE_FIXTURE(
    QuickTimeoutNode,
    "h2c streams stalled by a zero window are closed at io_timeout_s however many PINGs come") {
  const std::string path = path_of(node, node.signed_url("/o/demo/gen/64K/stalled.ts"));
  REQUIRE(http_get(node.url(path)).status == 200);  // now a memory hit
  const int64_t rss_before = proc_status_kib(node.pid(), "VmRSS");
  RawH2Client client(node.port(), zero_window());
  REQUIRE(client.connected());
  constexpr int kStreams = 128;  // the node's SETTINGS_MAX_CONCURRENT_STREAMS
  const auto nva = client.get_request(path);
  std::vector<int32_t> ids;
  for (int i = 0; i < kStreams; ++i) ids.push_back(client.submit(nva));
  // Every reply's HEADERS comes (HEADERS are not flow-controlled); no DATA can.
  for (int i = 0; i < 1000 && client.statuses().size() < kStreams && client.exchange(); ++i) {
  }
  REQUIRE(client.statuses().size() == kStreams);
  const int64_t rss_stalled = proc_status_kib(node.pid(), "VmRSS");
  const double seconds = client.ping_until_closed(std::chrono::seconds(12));
  MESSAGE("stalled h2c connection (" << kStreams << " streams, PINGs every 300 ms) closed after "
                                     << seconds << " s; node RSS " << rss_before << " KiB before, "
                                     << rss_stalled << " KiB while stalled");
  CHECK((client.got_goaway() || client.closed()));
  CHECK(seconds < 2 + 3);  // io_timeout_s, the timer's 1 s tick, a margin
  CHECK(client.stream(ids.front()).body.empty());
  CHECK(node.metric("http2_stalled_connections_closed_total") >= 1);
  // The node serves others meanwhile and after.
  CHECK(http_get(node.url(path)).status == 200);
}

TEST_CASE_FIXTURE(QuickTimeoutNode,
                  "an h2c reader that opens its window slowly but steadily is not cut off") {
  constexpr size_t kSize = 128 * 1024;
  const std::string path = path_of(node, node.signed_url("/o/demo/gen/128K/slow-reader.ts"));
  REQUIRE(http_get(node.url(path)).status == 200);
  RawH2Client client(node.port(), zero_window());
  REQUIRE(client.connected());
  const int32_t id = client.submit(client.get_request(path));
  REQUIRE(id > 0);
  const auto start = Clock::now();
  // 8 KiB more window about every 300 ms (one read timeout): 16 rounds, well past io_timeout_s.
  for (int i = 0; i < 100 && !client.stream(id).closed && !client.closed(); ++i) {
    nghttp2_submit_window_update(client.session(), NGHTTP2_FLAG_NONE, id, 8 * 1024);
    nghttp2_submit_window_update(client.session(), NGHTTP2_FLAG_NONE, 0, 8 * 1024);
    client.exchange();  // the window out, DATA in
    client.exchange();  // a read timeout
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  MESSAGE("slow reader: " << client.stream(id).body.size() << " bytes in " << seconds << " s");
  CHECK(seconds > 2 * 2);  // it did outlive io_timeout_s
  CHECK(client.stream(id).body == generated_body("slow-reader.ts", kSize));
  CHECK_FALSE(client.got_goaway());
  CHECK_FALSE(client.closed());
}

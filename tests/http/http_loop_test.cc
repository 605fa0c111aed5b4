// The HTTP server and the curl-multi client on one real event loop, talking over
// loopback sockets.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "core/handles.h"
#include "core/json.h"
#include "core/metrics.h"
#include "http/client/http_client.h"
#include "http/server/http_server.h"
#include "support/process.h"

namespace {

// Runs the loop until `done()` or the deadline; returns done().
bool run_until(event_base* base, const std::function<bool()>& done,
               std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    timeval slice{0, 20000};
    event_base_loopexit(base, &slice);
    event_base_loop(base, EVLOOP_ONCE);
  }
  return done();
}

struct Loop {
  explicit Loop(http::HttpClientOptions client_options = {}) : base(event_base_new()) {
    http::HttpServerOptions options;
    options.service = "test";
    options.max_header_bytes = 2048;
    options.max_body_bytes = 1024;
    options.access_log = false;
    options.drain_timeout_s = 5;
    auto created = http::HttpServer::create(*base, options, metrics);
    REQUIRE(created.ok());
    server = std::move(created).value();
    client_options.request_timeout = std::chrono::milliseconds(3000);
    auto made = http::HttpClient::create(*base, client_options);
    REQUIRE(made.ok());
    client = std::move(made).value();
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(server->port()) + path;
  }
  struct Got {
    bool done = false;
    int heads = 0;
    http::FetchHead head;
    std::string body;
    http::FetchResult result;
  };
  Got fetch(const std::string& path, std::vector<http::HttpHeader> headers = {},
            std::string method = "GET", std::string body = {}) {
    return fetch_request(
        {url(path), std::move(method), std::move(headers), std::nullopt, std::move(body)});
  }
  // Runs the loop until `request` has its result.
  Got fetch_request(const http::FetchRequest& request) {
    Got got;
    client->fetch(request, {[&](const http::FetchHead& h) {
                              ++got.heads;
                              got.head = h;
                            },
                            [&](std::string_view data) { got.body.append(data); },
                            [&](const http::FetchResult& r) {
                              got.result = r;
                              got.done = true;
                            }});
    REQUIRE(run_until(base.get(), [&] { return got.done; }));
    return got;
  }

  core::EventBasePtr base;
  core::MetricsRegistry metrics;
  std::unique_ptr<http::HttpServer> server;
  std::unique_ptr<http::HttpClient> client;
};

// A loop whose client has the options `set` gives, and GET /hold on its server: every exchange
// kept unanswered, in arrival order, with the query's n; and the most of them outstanding at once.
struct HeldRequests {
  using SetOptions = std::function<void(http::HttpClientOptions&)>;
  explicit HeldRequests(const SetOptions& set) : loop(options_set_by(set)) {
    loop.server->route("/hold", {"GET"}, [this](http::HttpExchange& ex) {
      arrived.push_back(ex.query_param("n").value_or("?"));
      held.push_back(std::move(ex));
      size_t outstanding = 0;
      for (const auto& h : held) outstanding += h.finished() ? 0 : 1;
      most_outstanding = std::max(most_outstanding, outstanding);
    });
  }
  static http::HttpClientOptions options_set_by(const SetOptions& set) {
    http::HttpClientOptions options;
    set(options);
    return options;
  }
  Loop loop;
  std::vector<http::HttpExchange> held;
  std::vector<std::string> arrived;  // the n of each request
  size_t most_outstanding = 0;
};

}  // namespace

TEST_CASE("http loop: routed replies, JSON errors for unknown paths and methods") {
  Loop loop;
  loop.server->route("/hello", {"GET", "HEAD"}, [](http::HttpExchange& ex) {
    ex.add_header("X-Test", "1");
    ex.reply(200, "{\"hello\":" + core::json_string(ex.query_param("name").value_or("?")) + "}");
  });
  auto ok = loop.fetch("/hello?name=a%20b");
  CHECK(ok.result.ok);
  CHECK(ok.result.status == 200);
  CHECK(ok.heads == 1);
  CHECK(ok.body == "{\"hello\":\"a b\"}");
  CHECK(ok.head.header("x-test") == std::optional<std::string>("1"));

  auto head = loop.fetch("/hello", {}, "HEAD");
  CHECK(head.result.status == 200);
  CHECK(head.body.empty());
  CHECK(head.head.content_length() ==
        std::optional<uint64_t>(std::string("{\"hello\":\"?\"}").size()));

  auto missing = loop.fetch("/nope");
  CHECK(missing.result.status == 404);
  CHECK(missing.body.find("\"code\":\"not_found\"") != std::string::npos);

  auto wrong_method = loop.fetch("/hello", {}, "DELETE");
  CHECK(wrong_method.result.status == 405);
  CHECK(wrong_method.head.header("Allow") == std::optional<std::string>("GET, HEAD"));
  CHECK(wrong_method.body.find("method_not_allowed") != std::string::npos);
}

TEST_CASE("http loop: an exact path beats every prefix, then the longest prefix answers") {
  Loop loop;
  auto answer_with = [](std::string name) {
    return [name](http::HttpExchange& ex) { ex.reply(200, name, "text/plain"); };
  };
  // Routed in an order where neither the first nor the last match may be the answer.
  loop.server->route_prefix("/a/", {"GET"}, answer_with("prefix /a/"));
  loop.server->route_prefix("/a/b/", {"GET"}, answer_with("prefix /a/b/"));
  loop.server->route_prefix("/", {"GET"}, answer_with("prefix /"));
  loop.server->route("/a/b/c", {"GET"}, answer_with("exact /a/b/c"));
  loop.server->route("/a/b/c", {"GET"}, answer_with("exact /a/b/c, routed again"));
  loop.server->route_prefix("/a/b/", {"GET"}, answer_with("prefix /a/b/, routed again"));
  loop.server->route_prefix("/x", {"GET"}, answer_with("prefix /x"));
  const std::pair<const char*, const char*> expected[] = {
      {"/a/b/c", "exact /a/b/c"}, {"/a/b/c?q=1", "exact /a/b/c"}, {"/a/b/cd", "prefix /a/b/"},
      {"/a/b/", "prefix /a/b/"},  {"/a/b", "prefix /a/"},         {"/a/", "prefix /a/"},
      {"/a", "prefix /"},         {"/xyz", "prefix /x"},          {"/", "prefix /"},
  };
  for (const auto& [path, answer] : expected) {
    INFO(path);
    auto got = loop.fetch(path);
    CHECK(got.result.status == 200);
    CHECK(got.body == answer);
  }
}

TEST_CASE("http loop: a POST carries its body, with its length") {
  Loop loop;
  loop.server->route("/echo", {"POST"}, [&](http::HttpExchange& ex) {
    ex.reply(202, "{\"got\":" + core::json_string(ex.body()) + "}");
  });
  const std::string body(1000, 'x');  // the test server takes 1024 bytes at most
  auto posted = loop.fetch("/echo", {{"Content-Type", "application/json"}}, "POST", body);
  CHECK(posted.result.status == 202);
  CHECK(posted.body == "{\"got\":\"" + body + "\"}");
  auto empty = loop.fetch("/echo", {}, "POST");
  CHECK(empty.result.status == 202);
  CHECK(empty.body == "{\"got\":\"\"}");
}

TEST_CASE(
    "http loop: oversized headers and targets get JSON 431/414; a dropped exchange gets 500") {
  Loop loop;
  loop.server->route("/x", {"GET"}, [](http::HttpExchange& ex) { ex.reply(200, "{}"); });
  loop.server->route("/forgotten", {"GET"}, [](http::HttpExchange&) { /* never replies */ });
  auto big_header = loop.fetch("/x", {{"X-Big", std::string(3000, 'a')}});
  CHECK(big_header.result.status == 431);
  CHECK(big_header.body.find("headers_too_large") != std::string::npos);
  auto long_target = loop.fetch("/x?" + std::string(2100, 'q'));
  CHECK(long_target.result.status == 414);
  CHECK(long_target.body.find("uri_too_long") != std::string::npos);
  auto forgotten = loop.fetch("/forgotten");
  CHECK(forgotten.result.status == 500);
  CHECK(forgotten.body.find("internal_error") != std::string::npos);
  CHECK(loop.server->active_requests() == 0);
}

TEST_CASE(
    "http loop: a file segment is sent from the file (sendfile), never mapped into the process") {
  balancer::test::TempDir dir;
  const std::string path = dir.file("chunk");
  const int made = open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0640);
  REQUIRE(made >= 0);
  std::string bytes;
  for (int i = 0; i < 300000; ++i) bytes.push_back(static_cast<char>('a' + i % 23));
  REQUIRE(write(made, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  close(made);
  auto mapped = [&] {
    std::ifstream maps("/proc/self/maps");
    const std::string text{std::istreambuf_iterator<char>(maps), std::istreambuf_iterator<char>()};
    return text.find(path) != std::string::npos;
  };
  Loop loop;
  bool was_mapped = true;
  loop.server->route("/file", {"GET"}, [&](http::HttpExchange& ex) {
    http::BodyBuffer body;
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(body.append_file(fd, 1000, 250000));
    was_mapped = mapped();
    ex.reply(200, std::move(body), 250000, "application/octet-stream");
  });
  auto got = loop.fetch("/file");
  CHECK(got.result.status == 200);
  CHECK(got.body == bytes.substr(1000, 250000));
  CHECK_FALSE(was_mapped);
}

TEST_CASE("http loop: a streamed reply reaches the client in pieces, then ends") {
  Loop loop;
  std::vector<http::HttpExchange> parked;
  loop.server->route("/stream", {"GET"}, [&](http::HttpExchange& ex) {
    ex.add_header("Content-Type", "text/plain");
    ex.start(200);
    ex.send("first,", 6);
    parked.push_back(std::move(ex));
  });
  http::FetchRequest request{loop.url("/stream"), "GET", {}, std::nullopt, {}};
  std::string body;
  bool done = false;
  http::FetchResult result;
  loop.client->fetch(request, {nullptr, [&](std::string_view d) { body.append(d); },
                               [&](const http::FetchResult& r) {
                                 result = r;
                                 done = true;
                               }});
  REQUIRE(run_until(loop.base.get(), [&] { return body == "first,"; }));
  CHECK_FALSE(done);
  REQUIRE(parked.size() == 1);
  parked[0].send("second", 6);
  parked[0].end();
  REQUIRE(run_until(loop.base.get(), [&] { return done; }));
  CHECK(result.ok);
  CHECK(body == "first,second");
}

TEST_CASE("http loop: a client that goes away mid-stream is noticed and forgotten") {
  Loop loop;
  std::vector<http::HttpExchange> parked;
  bool closed_seen = false;
  loop.server->route("/slow", {"GET"}, [&](http::HttpExchange& ex) {
    ex.on_close([&] { closed_seen = true; });
    ex.start(200);
    ex.send("x", 1);
    parked.push_back(std::move(ex));
  });
  http::FetchRequest request{loop.url("/slow"), "GET", {}, std::nullopt, {}};
  bool got_data = false;
  http::FetchId id =
      loop.client->fetch(request, {nullptr, [&](std::string_view) { got_data = true; }, nullptr});
  REQUIRE(run_until(loop.base.get(), [&] { return got_data; }));
  loop.client->cancel(id);  // closes the client's connection
  // The server notices on its next write.
  std::string chunk(64 * 1024, 'y');
  REQUIRE(run_until(loop.base.get(), [&] {
    if (!parked[0].closed()) parked[0].send(chunk.data(), chunk.size());
    return closed_seen;
  }));
  CHECK(parked[0].closed());
  CHECK(loop.server->active_requests() == 0);
  parked.clear();  // destroying a closed exchange must not reply or crash
}

TEST_CASE("http client: refused connections and timeouts are reported, never hang") {
  Loop loop;
  std::vector<http::HttpExchange> parked;
  loop.server->route("/hang", {"GET"},
                     [&](http::HttpExchange& ex) { parked.push_back(std::move(ex)); });
  const http::FetchResult hang =
      loop.fetch_request({loop.url("/hang"), "GET", {}, std::chrono::milliseconds(300), {}}).result;
  CHECK_FALSE(hang.ok);
  CHECK(hang.timed_out);

  const http::FetchResult refused =
      loop.fetch_request({"http://127.0.0.1:1/x", "GET", {}, std::nullopt, {}}).result;
  CHECK_FALSE(refused.ok);
  CHECK_FALSE(refused.timed_out);
  CHECK_FALSE(refused.error.empty());
}

TEST_CASE("http server: drain stops accepting and waits for replies in progress") {
  Loop loop;
  std::vector<http::HttpExchange> parked;
  loop.server->route("/wait", {"GET"},
                     [&](http::HttpExchange& ex) { parked.push_back(std::move(ex)); });
  bool done = false;
  http::FetchResult result;
  std::string body;
  http::FetchRequest request{loop.url("/wait"), "GET", {}, std::nullopt, {}};
  loop.client->fetch(request, {nullptr, [&](std::string_view d) { body.append(d); },
                               [&](const http::FetchResult& r) {
                                 result = r;
                                 done = true;
                               }});
  REQUIRE(run_until(loop.base.get(), [&] { return parked.size() == 1; }));
  bool drained = false;
  loop.server->drain([&] { drained = true; });
  CHECK_FALSE(drained);
  parked[0].reply(200, "{\"late\":true}");
  REQUIRE(run_until(loop.base.get(), [&] { return drained && done; }));
  CHECK(result.status == 200);
  CHECK(body == "{\"late\":true}");
  // Replies during drain close their connection, and the listener is gone:
  // a new request is refused (or, had it raced onto a kept-alive connection, 503).
  bool refused_done = false;
  http::FetchResult refused;
  loop.client->fetch(request, {nullptr, nullptr, [&](const http::FetchResult& r) {
                                 refused = r;
                                 refused_done = true;
                               }});
  REQUIRE(run_until(loop.base.get(), [&] { return refused_done; }));
  CHECK((!refused.ok || refused.status == 503));
}

TEST_CASE(
    "http server: drain finishes promptly when a streamed reply ends after its bytes are flushed") {
  Loop loop;  // drain timeout 5 s: finishing well before it shows the reply was accounted
  std::vector<http::HttpExchange> parked;
  loop.server->route("/stream", {"GET"}, [&](http::HttpExchange& ex) {
    ex.add_header("Content-Length", "3");  // no chunked terminator left to write at end()
    ex.start(200);
    ex.send("abc", 3);
    parked.push_back(std::move(ex));
  });
  std::string body;
  bool done = false;
  http::FetchRequest request{loop.url("/stream"), "GET", {}, std::nullopt, {}};
  loop.client->fetch(request, {nullptr, [&](std::string_view d) { body.append(d); },
                               [&](const http::FetchResult&) { done = true; }});
  REQUIRE(run_until(loop.base.get(), [&] { return body == "abc"; }));
  bool drained = false;
  loop.server->drain([&] { drained = true; });
  // The output buffer is empty now, so the transport completes the request inside end().
  parked[0].end();
  CHECK(run_until(
      loop.base.get(), [&] { return drained && done; }, std::chrono::milliseconds(2000)));
}

TEST_CASE("http client: a request held at a plain-HTTP host does not hold up the next one to it") {
  Loop loop;
  std::vector<http::HttpExchange> held;
  loop.server->route("/hold", {"GET"},
                     [&](http::HttpExchange& ex) { held.push_back(std::move(ex)); });
  int done = 0;
  for (int n = 0; n < 2; ++n) {
    http::FetchRequest request{loop.url("/hold"), "GET", {}, std::nullopt, {}};
    loop.client->fetch(request, {nullptr, nullptr, [&](const http::FetchResult& r) {
                                   CHECK(r.status == 200);
                                   ++done;
                                 }});
  }
  // Both arrive while neither is answered (HTTP/1.1 cannot multiplex: no reason to wait).
  CHECK(run_until(
      loop.base.get(), [&] { return held.size() == 2; }, std::chrono::milliseconds(2000)));
  for (auto& ex : held) ex.reply(200, "ok", "text/plain");
  CHECK(run_until(loop.base.get(), [&] { return done == 2; }));
}

TEST_CASE(
    "http client: past max_host_transfers a host's transfers wait in line, and a cancelled one "
    "gives up its place") {
  HeldRequests hold([](http::HttpClientOptions& o) { o.max_host_transfers = 2; });
  std::vector<int> done_order;
  std::vector<http::FetchId> ids;
  for (int n = 0; n < 6; ++n) {
    http::FetchRequest request{
        hold.loop.url("/hold?n=" + std::to_string(n)), "GET", {}, std::nullopt, {}};
    ids.push_back(
        hold.loop.client->fetch(request, {nullptr, nullptr, [&, n](const http::FetchResult& r) {
                                            CHECK_MESSAGE(r.status == 200, r.error);
                                            done_order.push_back(n);
                                          }}));
  }
  CHECK(hold.loop.client->waiting() == 4);
  REQUIRE(run_until(hold.loop.base.get(), [&] { return hold.held.size() == 2; }));
  hold.loop.client->cancel(ids[2]);  // in line: never sent, never answered
  CHECK(hold.loop.client->waiting() == 3);
  // Answer one at a time; each answer lets the next in line go.
  for (size_t answered = 0; answered < 5; ++answered) {
    REQUIRE(run_until(hold.loop.base.get(), [&] { return hold.held.size() > answered; }));
    hold.held[answered].reply(200, "ok", "text/plain");
    REQUIRE(run_until(hold.loop.base.get(), [&] { return done_order.size() == answered + 1; }));
  }
  CHECK(hold.arrived == std::vector<std::string>{"0", "1", "3", "4", "5"});
  CHECK(done_order == std::vector<int>{0, 1, 3, 4, 5});
  CHECK(hold.most_outstanding == 2);
  CHECK(hold.loop.client->waiting() == 0);
  CHECK(hold.loop.client->active() == 0);
}

TEST_CASE(
    "http client: slow-lane transfers past max_host_slow_transfers wait in line, and a regular "
    "one to the same host goes at once") {
  HeldRequests hold([](http::HttpClientOptions& o) { o.max_host_slow_transfers = 2; });
  std::vector<http::HttpExchange>& held = hold.held;
  const std::vector<std::string>& arrived = hold.arrived;
  std::vector<std::string> done;
  auto fetch = [&](const std::string& n, bool slow) {
    http::FetchRequest request{hold.loop.url("/hold?n=" + n), "GET", {}, std::nullopt, {}};
    request.slow_lane = slow;
    hold.loop.client->fetch(request, {nullptr, nullptr, [&, n](const http::FetchResult& r) {
                                        CHECK_MESSAGE(r.status == 200, r.error);
                                        done.push_back(n);
                                      }});
  };
  for (int n = 0; n < 5; ++n) fetch("s" + std::to_string(n), true);
  CHECK(hold.loop.client->waiting() == 3);
  REQUIRE(run_until(hold.loop.base.get(), [&] { return held.size() == 2; }));
  // The slow ones hold their two; a regular request is not in their line.
  fetch("r", false);
  REQUIRE(run_until(hold.loop.base.get(), [&] { return held.size() == 3; }));
  CHECK(arrived.back() == "r");
  held[2].reply(200, "ok", "text/plain");
  REQUIRE(run_until(hold.loop.base.get(), [&] { return done.size() == 1; }));
  CHECK(hold.loop.client->waiting() == 3);  // the regular one's end frees no slow-lane place
  // Each slow answer lets the next slow one go, in order.
  held[0].reply(200, "ok", "text/plain");
  REQUIRE(run_until(hold.loop.base.get(), [&] { return held.size() == 4; }));
  CHECK(arrived.back() == "s2");
  for (size_t i = 1; i < held.size(); ++i) {
    if (!held[i].finished()) held[i].reply(200, "ok", "text/plain");
  }
  REQUIRE(run_until(hold.loop.base.get(), [&] {
    for (size_t i = 0; i < held.size(); ++i) {
      if (!held[i].finished()) held[i].reply(200, "ok", "text/plain");
    }
    return done.size() == 6;
  }));
  CHECK(arrived == std::vector<std::string>{"s0", "s1", "r", "s2", "s3", "s4"});
  CHECK(hold.loop.client->waiting() == 0);
}

TEST_CASE("http client: time spent in line counts toward a transfer's timeout") {
  http::HttpClientOptions options;
  options.max_host_transfers = 1;
  Loop loop(options);
  std::vector<http::HttpExchange> held;
  loop.server->route("/hold", {"GET"},
                     [&](http::HttpExchange& ex) { held.push_back(std::move(ex)); });
  bool first_done = false;
  http::FetchRequest first{loop.url("/hold"), "GET", {}, std::nullopt, {}};
  loop.client->fetch(first,
                     {nullptr, nullptr, [&](const http::FetchResult&) { first_done = true; }});
  std::optional<http::FetchResult> second;
  std::chrono::steady_clock::time_point second_done_at;
  http::FetchRequest in_line{loop.url("/hold"), "GET", {}, std::chrono::milliseconds(1000), {}};
  loop.client->fetch(in_line, {nullptr, nullptr, [&](const http::FetchResult& r) {
                                 second = r;
                                 second_done_at = std::chrono::steady_clock::now();
                               }});
  REQUIRE(run_until(loop.base.get(), [&] { return held.size() == 1; }));
  // The one in line outlives its timeout there; the first is answered after that.
  const auto expired_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(1200);
  run_until(
      loop.base.get(), [&] { return std::chrono::steady_clock::now() >= expired_at; },
      std::chrono::milliseconds(2000));
  const auto answered_at = std::chrono::steady_clock::now();
  held[0].reply(200, "ok", "text/plain");
  REQUIRE(run_until(loop.base.get(), [&] { return first_done && second.has_value(); }));
  CHECK(second->timed_out);
  // At once, not a whole timeout after it left the line.
  CHECK(second_done_at - answered_at < std::chrono::milliseconds(500));
}

TEST_CASE(
    "http client: a request's local address is its connection's, which no request naming another "
    "reuses") {
  Loop loop;
  loop.server->route("/peer", {"GET"},
                     [](http::HttpExchange& ex) { ex.reply(200, ex.remote_ip(), "text/plain"); });
  auto from = [&](const std::string& local) {
    http::FetchRequest request{loop.url("/peer"), "GET", {}, std::nullopt, {}};
    request.local_address = local;
    return loop.fetch_request(request);
  };
  const auto open = [&](int n) {
    return loop.metrics.render().find("http_connections_open " + std::to_string(n) + "\n") !=
           std::string::npos;
  };
  CHECK(from("127.16.0.1").body == "127.16.0.1");
  CHECK(from("127.16.0.2").body == "127.16.0.2");
  // Each address's connection stays open: a third request from the first reuses its own.
  CHECK(open(2));
  CHECK(from("127.16.0.1").body == "127.16.0.1");
  CHECK(open(2));
  // A request that names none may take any (libcurl's rule).
  const std::string unbound = from("").body;
  CHECK((unbound == "127.16.0.1" || unbound == "127.16.0.2"));
  CHECK(open(2));
}

TEST_CASE(
    "http client: a finished transfer's handle serves the next one, with none of its options") {
  Loop loop;
  loop.server->route("/what", {"GET", "HEAD", "POST"}, [](http::HttpExchange& ex) {
    ex.reply(200,
             ex.method() + " probe=" + ex.header("X-Probe").value_or("none") + " body=" + ex.body(),
             "text/plain");
  });
  CHECK(loop.client->spare_handles() == 0);
  http::FetchRequest post{loop.url("/what"), "POST", {{"X-Probe", "one"}}, std::nullopt, "abc"};
  post.local_address = "127.16.0.7";
  CHECK(loop.fetch_request(post).body == "POST probe=one body=abc");
  CHECK(loop.client->spare_handles() == 1);
  // A HEAD, then a plain GET on the same handle: a GET left with the HEAD's "no body", or the
  // POST's header or body, would show here.
  auto head = loop.fetch("/what", {}, "HEAD");
  CHECK(head.result.status == 200);
  CHECK(head.body.empty());
  CHECK(loop.client->spare_handles() == 1);
  CHECK(loop.fetch("/what").body == "GET probe=none body=");
  CHECK(loop.client->spare_handles() == 1);
}

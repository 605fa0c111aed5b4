// The HTTP side of a cache node for the balancer's unit tests: the project's own
// http::HttpServer on 127.0.0.1 (port 0), on the test's event loop, answering as the
// test says and recording what it was sent. Plus run_until, which runs that loop until
// a condition holds or a deadline passes. Loop thread (the test's) only.
#pragma once

#include <doctest/doctest.h>
#include <event2/event.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/metrics.h"
#include "http/server/http_server.h"
#include "support/process.h"

namespace balancer::test {

// Runs `base` without blocking until `done()` holds (true) or `limit` passes (false).
inline bool run_until(event_base& base, const std::function<bool()>& done,
                      std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  return wait_until(
      [&] {
        event_base_loop(&base, EVLOOP_NONBLOCK);
        return done();
      },
      limit, std::chrono::milliseconds(1));
}

struct SeenRequest {
  std::string method;
  std::string path;
  std::string authorization;
  std::string content_type;
  std::string body;
};

// What the node does with one request.
struct NodeAnswer {
  int status = 200;
  std::string body = "{}";
  bool hold = false;  // no answer until release_oldest() (or until the client gives up)
};

class LoopbackNode {
 public:
  // Answers the requests it receives with `script` in order, then with `then`.
  using Answers = std::function<NodeAnswer(const SeenRequest&)>;
  static Answers scripted(std::deque<NodeAnswer> script, NodeAnswer then = {}) {
    auto left = std::make_shared<std::deque<NodeAnswer>>(std::move(script));
    return [left, then](const SeenRequest&) {
      if (left->empty()) return then;
      NodeAnswer next = std::move(left->front());
      left->pop_front();
      return next;
    };
  }
  static Answers always(NodeAnswer answer) { return scripted({}, std::move(answer)); }

  explicit LoopbackNode(event_base& base) {
    http::HttpServerOptions options;
    options.service = "node";
    options.access_log = false;
    auto created = http::HttpServer::create(base, options, metrics_);
    REQUIRE(created.ok());
    server_ = std::move(created).value();
    port_ = server_->port();
    server_->route_prefix("/", {"GET", "POST"}, [this](http::HttpExchange& ex) { on(ex); });
  }

  // How every later request is answered (default: 200 "{}").
  void answer(Answers answers) { answers_ = std::move(answers); }
  // "http://127.0.0.1:<port>" + path; the port stays the same after close().
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  const std::vector<SeenRequest>& seen() const { return seen_; }
  size_t held() const { return held_.size(); }
  size_t max_held() const { return max_held_; }
  // Answers the oldest held request; false when none is held.
  bool release_oldest(int status, const std::string& body = "{}") {
    if (held_.empty()) return false;
    http::HttpExchange ex = std::move(held_.front());
    held_.pop_front();
    ex.reply(status, body);
    return true;
  }
  // The node goes away: held requests are dropped and new connections are refused.
  void close() {
    held_.clear();
    server_.reset();
  }

 private:
  void on(http::HttpExchange& ex) {
    SeenRequest r{ex.method(), ex.path(), ex.header("Authorization").value_or(""),
                  ex.header("Content-Type").value_or(""), ex.body()};
    seen_.push_back(r);
    NodeAnswer a = answers_(r);
    if (a.hold) {
      held_.push_back(std::move(ex));
      max_held_ = std::max(max_held_, held_.size());
      return;
    }
    ex.reply(a.status, a.body);
  }

  core::MetricsRegistry metrics_;
  std::unique_ptr<http::HttpServer> server_;
  int port_ = 0;
  Answers answers_ = always({});
  std::vector<SeenRequest> seen_;
  std::deque<http::HttpExchange> held_;  // after server_: dropped before it
  size_t max_held_ = 0;
};

}  // namespace balancer::test

// HealthPoller against real HTTP servers on loopback that answer its polls as each
// test scripts: which answers count as failed polls (error status, a body that is not
// a health document, a timeout, a node that refuses connections), how many in a row
// flip a node's state with the configured thresholds, and what the balancer is told
// after each result (on_update, snapshot, the balancer_cache_up gauge, the egress sum).
#include "balancer/caches/health_poller.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/handles.h"
#include "core/metrics.h"
#include "http/client/http_client.h"
#include "support/loopback_node.h"

namespace balancer {
namespace health_poller_test {

using namespace std::chrono_literals;
using State = CacheHealth::State;

const test::NodeAnswer kOk{200, R"({"status":"ok"})"};
const test::NodeAnswer kHold{200, "", true};

HealthPollOptions poll_options(int up_after, int down_after,
                               std::chrono::milliseconds interval = 20ms,
                               std::chrono::milliseconds timeout = 500ms) {
  HealthPollOptions options;
  options.interval = interval;
  options.timeout = timeout;
  options.thresholds.up_after = up_after;
  options.thresholds.down_after = down_after;
  return options;
}

// What the balancer saw of node "a" in one on_update call.
struct Told {
  State state = State::unknown;
  bool usable = false;
  double gauge = -1;
  std::string error;
};

struct Fixture {
  core::EventBasePtr base{event_base_new()};
  core::FakeClock clock;
  core::MetricsRegistry metrics;
  test::LoopbackNode node{*base};
  std::unique_ptr<http::HttpClient> client;
  std::unique_ptr<HealthPoller> poller;
  std::vector<Told> told;  // node "a" after every on_update

  Fixture() {
    auto made = http::HttpClient::create(*base, {});
    REQUIRE(made.ok());
    client = std::move(*made);
    poller = std::make_unique<HealthPoller>(*base, *client, metrics, clock);
    poller->on_update([this] {
      // What the balancer publishes is the snapshot (balancer_fetchers.cc).
      auto view = poller->snapshot();
      auto it = view.find("a");
      if (it == view.end()) return;
      told.push_back(Told{it->second.state(), it->second.usable(clock.now()), gauge("a"),
                          it->second.last_error()});
    });
  }
  double gauge(const std::string& id) {
    return metrics.gauge("balancer_cache_up", "", "cache=\"" + id + "\"").value();
  }
  void configure(const std::vector<std::string>& ids, HealthPollOptions options) {
    std::vector<HealthPollTarget> targets;
    for (const auto& id : ids) targets.push_back({id, node.url("/" + id + "/health")});
    poller->configure(targets, options);
  }
  // Runs the loop until `n` updates about node "a" were told (the configure included).
  void run_until_told(size_t n, std::chrono::milliseconds limit = 10s) {
    REQUIRE(test::run_until(
        *base, [&] { return told.size() >= n; }, limit));
  }
};

TEST_CASE(
    "health poller: up_after good polls bring a node up, down_after failed polls take it down, "
    "a silent one (a poll timed out) at once") {
  Fixture f;
  f.node.answer(test::LoopbackNode::scripted(
      {
          kOk,                                // 1: a node's first result decides at once
          {200, "not json"},                  // 2: one failure of the two it takes
          kOk,                                // 3: and a success starts the count again
          {200, R"({"status":"draining"})"},  // 4: one failure
          {503, R"({"status":"ok"})"},        // 5: the second in a row: down
          kOk,                                // 6
          kOk,                                // 7: two good polls are not three
          kHold,                              // 8: a failure starts the count again
          kOk,                                // 9
          kOk,                                // 10
          kOk,                                // 11: the third in a row: up
          kHold,                              // 12: silent: down at once
      },
      kHold));
  f.configure({"a"}, poll_options(3, 2));
  f.run_until_told(13);
  const std::vector<Told>& t = f.told;

  CHECK(t[0].state == State::unknown);  // configure() tells too
  CHECK_FALSE(t[0].usable);
  CHECK(t[0].gauge == 0);

  CHECK(t[1].state == State::up);
  CHECK(t[1].usable);
  CHECK(t[1].gauge == 1);
  CHECK(t[1].error.empty());

  CHECK(t[2].state == State::up);
  CHECK(t[2].usable);
  CHECK(t[2].error == "health endpoint did not answer a JSON object");
  CHECK(t[3].state == State::up);
  CHECK(t[3].error.empty());
  CHECK(t[4].state == State::up);
  CHECK(t[4].gauge == 1);
  CHECK(t[4].error == "health endpoint reports status 'draining'");

  CHECK(t[5].state == State::down);
  CHECK_FALSE(t[5].usable);
  CHECK(t[5].gauge == 0);
  CHECK(t[5].error == "health endpoint answered 503");

  for (size_t i : {6, 7, 8, 9, 10}) {
    CAPTURE(i);
    CHECK(t[i].state == State::down);
    CHECK_FALSE(t[i].usable);
    CHECK(t[i].gauge == 0);
  }
  CHECK(t[8].error == "health check timed out");

  CHECK(t[11].state == State::up);
  CHECK(t[11].usable);
  CHECK(t[11].gauge == 1);
  CHECK(t[12].state == State::down);
  CHECK_FALSE(t[12].usable);
  CHECK(t[12].error == "health check timed out");
  CHECK(f.node.seen().size() >= 12);
  CHECK(f.node.seen()[0].method == "GET");
  CHECK(f.node.seen()[0].path == "/a/health");
}

TEST_CASE(
    "health poller: a node whose reply is far larger than the members read stays up, and its "
    "numbers are read") {
  // 1 MB of members after the ones the balancer uses, as an audience inflating a node's reply
  // would make: read up to kHealthReplyReadBytes, the rest ignored, the node up.
  std::string large = R"({"status":"ok","overloaded":false,"egress_mbps":42.5,"mix":{)";
  for (int i = 0; large.size() < 1'000'000; ++i) large += "\"" + std::to_string(i) + "\":1,";
  large += R"("end":1}})";
  Fixture f;
  f.node.answer(test::LoopbackNode::scripted({{200, large}, {200, large}}, kHold));
  f.configure({"a"}, poll_options(1, 1));
  f.run_until_told(3);
  for (size_t i : {1, 2}) {
    CAPTURE(i);
    CHECK(f.told[i].state == State::up);
    CHECK(f.told[i].usable);
    CHECK(f.told[i].error.empty());
  }
  REQUIRE(f.poller->measured_egress(f.clock.now()).mbps.has_value());
  CHECK(*f.poller->measured_egress(f.clock.now()).mbps == doctest::Approx(42.5));
}

TEST_CASE("health poller: an overloaded node stays up but is not usable, at once") {
  Fixture f;
  f.node.answer(test::LoopbackNode::scripted({kOk,
                                              {200, R"({"status":"overloaded"})"},
                                              {200, R"({"status":"ok","overloaded":true})"},
                                              kOk},
                                             kHold));
  f.configure({"a"}, poll_options(2, 2));
  f.run_until_told(5);
  CHECK(f.told[1].usable);
  for (size_t i : {2, 3}) {
    CAPTURE(i);
    CHECK(f.told[i].state == State::up);
    CHECK_FALSE(f.told[i].usable);
    CHECK(f.told[i].gauge == 0);
  }
  CHECK(f.told[4].usable);
  CHECK(f.told[4].gauge == 1);
}

TEST_CASE(
    "health poller: a node whose process dies is taken down within a round trip, not at the "
    "next poll: its watched connection closes and the poll made at once is refused") {
  Fixture f;
  f.node.answer(test::LoopbackNode::always(kOk));
  // Polls 60 s apart: only the watch can notice the death within the test.
  f.configure({"a"}, poll_options(1, 2, 60s, 500ms));
  f.run_until_told(2);
  REQUIRE(f.told[1].state == State::up);
  REQUIRE(test::run_until(
      *f.base, [&] { return f.poller->watching("a"); }, 5s));
  f.node.close();  // its kernel closes every connection, the watched one too
  REQUIRE(test::run_until(
      *f.base, [&] { return f.told.back().state == State::down; }, 5s));
  CHECK_FALSE(f.told.back().usable);
  CHECK(f.told.back().error.rfind("health check failed: ", 0) == 0);
  CHECK_FALSE(f.poller->watching("a"));
}

TEST_CASE("numeric_url_address: numeric hosts of http(s) URLs, the scheme's port by default") {
  auto port_of = [](const std::string& url) -> int {
    auto a = numeric_url_address(url);
    if (!a) return -1;
    if (a->ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&*a)->sin_port);
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&*a)->sin6_port);
  };
  CHECK(port_of("http://127.0.0.1:8081/health") == 8081);
  CHECK(port_of("http://10.0.0.7/health") == 80);
  CHECK(port_of("https://10.0.0.7/health") == 443);
  CHECK(port_of("http://[::1]:9000/health") == 9000);
  CHECK(port_of("https://[::1]/health") == 443);
  CHECK(port_of("http://node-a.venue:8081/health") == -1);  // no name lookup on the loop
  CHECK(port_of("ftp://127.0.0.1/health") == -1);
  CHECK(port_of("http://user@127.0.0.1/health") == -1);
}

TEST_CASE(
    "health poller: a node whose server went away is taken down at its first refused poll, "
    "without waiting for down_after") {
  Fixture f;
  f.node.answer(test::LoopbackNode::always(kOk));
  f.configure({"a"}, poll_options(2, 2));
  f.run_until_told(2);
  REQUIRE(f.told[1].state == State::up);
  f.node.close();
  const size_t before = f.told.size();
  REQUIRE(test::run_until(*f.base, [&] { return f.told.back().state == State::down; }));
  // A poll answered before the close may still land; count from the first failure.
  size_t first = before;
  while (first < f.told.size() && f.told[first].error.empty()) ++first;
  REQUIRE(first < f.told.size());
  const Told& refused = f.told[first];
  CHECK(refused.state == State::down);  // nothing listens: no second poll needed
  CHECK_FALSE(refused.usable);
  CHECK(refused.gauge == 0);
  CHECK(refused.error.rfind("health check failed: ", 0) == 0);
  const CacheHealth* h = f.poller->health("a");
  REQUIRE(h != nullptr);
  CHECK_FALSE(h->usable(f.clock.now()));
}

TEST_CASE(
    "health poller: a reload keeps a node whose id and URL are unchanged (with the new "
    "thresholds), restarts one whose URL changed and forgets one removed") {
  Fixture f;
  f.node.answer(test::LoopbackNode::always(kOk));
  f.configure({"a", "b"}, poll_options(2, 2));
  REQUIRE(test::run_until(*f.base, [&] {
    return f.poller->health("a")->state() == State::up &&
           f.poller->health("b")->state() == State::up;
  }));
  CHECK(f.gauge("b") == 1);

  // "a" unchanged, "b" removed, "c" new; what the balancer sees before any new poll result.
  f.node.answer(test::LoopbackNode::always({503, "{}"}));
  const size_t before = f.told.size();
  f.configure({"a", "c"}, poll_options(2, 1));
  REQUIRE(f.told.size() == before + 1);
  CHECK(f.told.back().state == State::up);
  CHECK(f.poller->health("a")->state() == State::up);
  CHECK(f.poller->health("b") == nullptr);
  CHECK(f.gauge("b") == 0);
  REQUIRE(f.poller->health("c") != nullptr);
  CHECK(f.poller->health("c")->state() == State::unknown);
  auto view = f.poller->snapshot();
  CHECK(view.size() == 2);
  CHECK(view.count("a") == 1);
  CHECK(view.count("c") == 1);
  // The new down_after (1) applies to the node kept: its first failed poll takes it down.
  REQUIRE(test::run_until(*f.base, [&] {
    return f.poller->health("a")->last_error() == "health endpoint answered 503";
  }));
  CHECK(f.poller->health("a")->state() == State::down);

  // The same id at another URL starts over, in state unknown.
  f.node.answer(test::LoopbackNode::always(kOk));
  std::vector<HealthPollTarget> moved{{"a", f.node.url("/a2/health")}};
  f.poller->configure(moved, poll_options(2, 1));
  CHECK(f.poller->health("a")->state() == State::unknown);
  CHECK(f.poller->health("c") == nullptr);
  // Its first good poll decides at once, where the old node would have needed two.
  REQUIRE(test::run_until(*f.base, [&] { return f.poller->health("a")->state() == State::up; }));
  CHECK(f.node.seen().back().path == "/a2/health");
}

TEST_CASE(
    "health poller: the egress sum counts the nodes that are up (overloaded too) and heard from "
    "within stale_after") {
  Fixture f;
  f.node.answer([](const test::SeenRequest& r) -> test::NodeAnswer {
    if (r.path == "/a/health") return {200, R"({"status":"ok","egress_mbps":10})"};
    if (r.path == "/b/health") return {200, R"({"status":"overloaded","egress_mbps":2.5})"};
    if (r.path == "/c/health") return {200, R"({"status":"ok"})"};
    return {503, R"({"status":"ok","egress_mbps":100})"};  // "d": down, its number not read
  });
  HealthPollOptions options = poll_options(1, 1, 1h);  // one poll each, at configure()
  options.thresholds.stale_after = 3000ms;
  f.configure({"a", "b", "c", "d"}, options);
  CHECK_FALSE(f.poller->measured_egress(f.clock.now()).mbps.has_value());
  REQUIRE(test::run_until(*f.base, [&] {
    for (const char* id : {"a", "b", "c", "d"})
      if (f.poller->health(id)->state() == State::unknown) return false;
    return true;
  }));
  CHECK(f.poller->health("d")->state() == State::down);
  CHECK(f.poller->measured_egress(f.clock.now()).readings == 2);
  const auto heard = f.clock.now();
  CHECK(f.poller->measured_egress(heard).mbps == 12.5);
  CHECK(f.poller->measured_egress(heard + 3000ms).mbps == 12.5);
  CHECK_FALSE(f.poller->measured_egress(heard + 3001ms).mbps.has_value());
}

TEST_CASE(
    "health poller: polls repeat every interval, never two at once for a node; stop() ends them") {
  Fixture f;
  f.node.answer(test::LoopbackNode::always(kOk));
  f.configure({"a"}, poll_options(2, 2, 20ms));
  REQUIRE(test::run_until(*f.base, [&] { return f.node.seen().size() >= 4; }));

  // A poll the node does not answer: no other one starts while it waits (10 intervals).
  f.node.answer(test::LoopbackNode::always(kHold));
  REQUIRE(test::run_until(*f.base, [&] { return f.node.held() == 1; }));
  const size_t polls = f.node.seen().size();
  CHECK_FALSE(test::run_until(
      *f.base, [&] { return f.node.seen().size() > polls; }, 200ms));

  // stop() cancels it at once, and no poll or update follows.
  f.poller->stop();
  CHECK(f.client->active() == 0);
  const size_t updates = f.told.size();
  f.node.answer(test::LoopbackNode::always(kOk));
  CHECK(f.node.release_oldest(200, R"({"status":"ok"})"));
  CHECK_FALSE(test::run_until(
      *f.base, [&] { return f.node.seen().size() > polls || f.told.size() > updates; }, 200ms));
}

TEST_CASE(
    "health poller: a node's chunk fetches are told as what each reply adds to the last; its "
    "first reply, and one whose counts went back (a restarted node), only set the baseline") {
  Fixture f;
  auto reply = [](uint64_t answered, uint64_t failed) {
    return test::NodeAnswer{200, R"({"status":"ok","origin_chunk_fetches":{"demo":{"answered":)" +
                                     std::to_string(answered) + R"(,"failed":)" +
                                     std::to_string(failed) + "}}}"};
  };
  f.node.answer(test::LoopbackNode::scripted(
      {
          reply(10, 4),  // 1: the baseline (fetches before the balancer looked)
          reply(10, 4),  // 2: nothing new
          reply(12, 7),  // 3: 2 answered, 3 failed
          reply(1, 0),   // 4: restarted: a new baseline
          reply(1, 2),   // 5: 2 failed
          {200, R"({"status":"ok","origin_chunk_fetches":{"demo":{"answered":1,"failed":2},)"
                R"("backup":{"answered":5,"failed":0}}})"},  // 6: an origin new to it: from 0
      },
      kHold));
  std::vector<std::tuple<std::string, uint64_t, uint64_t>> heard;
  f.poller->on_chunk_fetches([&](const std::string& origin, uint64_t answered, uint64_t failed) {
    heard.emplace_back(origin, answered, failed);
  });
  f.configure({"a"}, poll_options(1, 2));
  f.run_until_told(7);
  CHECK(heard == std::vector<std::tuple<std::string, uint64_t, uint64_t>>{
                     {"demo", 2, 3}, {"demo", 0, 2}, {"backup", 5, 0}});
}

}  // namespace health_poller_test
}  // namespace balancer

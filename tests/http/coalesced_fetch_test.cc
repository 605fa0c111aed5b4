#include "http/client/coalesced_fetch.h"

#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

namespace {

using http::CoalescedFetches;
using http::JoinOutcome;
using http::UpstreamFailure;

using Answer = std::function<void(const std::string&)>;

struct FakeTransfer {
  int started_by = 0;  // which asker started it
  std::string body;
};

}  // namespace

TEST_CASE("coalesced fetch: the first of N askers starts the one fetch, all N are answered once") {
  CoalescedFetches<Answer, FakeTransfer> fetches;
  int fetches_started = 0;
  std::vector<int> answered(5, 0);
  std::vector<std::string> results(5);
  for (int i = 0; i < 5; ++i) {
    auto joined = fetches.join("/a.ts", [&, i](const std::string& r) {
      ++answered[i];
      results[i] = r;
    });
    REQUIRE(joined.flight != nullptr);
    if (joined.outcome == JoinOutcome::started) {
      ++fetches_started;
      joined.flight->started_by = i;
    } else {
      CHECK(joined.outcome == JoinOutcome::joined);
    }
  }
  CHECK(fetches_started == 1);
  CHECK(fetches.running("/a.ts"));
  CHECK(fetches.waiting("/a.ts") == 5);
  CHECK(fetches.size() == 1);

  fetches.flight("/a.ts")->body = "bytes";
  auto finished = fetches.finish("/a.ts");
  CHECK(finished.flight.started_by == 0);
  CHECK(finished.flight.body == "bytes");
  CHECK_FALSE(fetches.running("/a.ts"));
  CHECK(fetches.size() == 0);
  for (auto& waiter : finished.waiters) waiter(finished.flight.body);
  CHECK(answered == std::vector<int>(5, 1));
  CHECK(results == std::vector<std::string>(5, "bytes"));

  // Nothing left to answer: a second finish hands back no waiter.
  CHECK(fetches.finish("/a.ts").waiters.empty());
}

TEST_CASE("coalesced fetch: keys are independent") {
  CoalescedFetches<Answer> fetches;
  CHECK(fetches.join("a", [](const std::string&) {}).outcome == JoinOutcome::started);
  CHECK(fetches.join("b", [](const std::string&) {}).outcome == JoinOutcome::started);
  CHECK(fetches.join("a", [](const std::string&) {}).outcome == JoinOutcome::joined);
  CHECK(fetches.size() == 2);
  int a_answers = 0;
  fetches.finish("a", [&](Answer&) { ++a_answers; });
  CHECK(a_answers == 2);
  CHECK(fetches.running("b"));
  CHECK(fetches.waiting("b") == 1);
}

TEST_CASE(
    "coalesced fetch: an answer that asks again for the same key starts a new fetch, answered "
    "later") {
  CoalescedFetches<Answer> fetches;
  std::vector<std::string> log;
  int rejoin_outcome_started = 0;
  std::function<void(const std::string&)> asks_again = [&](const std::string& r) {
    log.push_back("first:" + r);
    auto joined =
        fetches.join("k", [&](const std::string& again) { log.push_back("again:" + again); });
    if (joined.outcome == JoinOutcome::started) ++rejoin_outcome_started;
  };
  REQUIRE(fetches.join("k", Answer(asks_again)).outcome == JoinOutcome::started);
  REQUIRE(fetches.join("k", [&](const std::string& r) { log.push_back("second:" + r); }).outcome ==
          JoinOutcome::joined);

  fetches.finish("k", [](Answer& answer) { answer("v1"); });
  // Both waiters of the first fetch got v1 exactly once; the re-ask did not join it.
  CHECK(log == std::vector<std::string>{"first:v1", "second:v1"});
  CHECK(rejoin_outcome_started == 1);
  CHECK(fetches.waiting("k") == 1);

  fetches.finish("k", [](Answer& answer) { answer("v2"); });
  CHECK(log == std::vector<std::string>{"first:v1", "second:v1", "again:v2"});
  CHECK_FALSE(fetches.running("k"));
}

TEST_CASE(
    "coalesced fetch: a fetch started with no asker (background refresh) is joined by later "
    "askers") {
  CoalescedFetches<Answer, int> fetches;
  auto started = fetches.find_or_start("live");
  REQUIRE(started.outcome == JoinOutcome::started);
  *started.flight = 42;
  CHECK(fetches.waiting("live") == 0);
  CHECK(fetches.find_or_start("live").outcome == JoinOutcome::joined);
  CHECK(fetches.join("live", [](const std::string&) {}).outcome == JoinOutcome::joined);
  auto finished = fetches.finish("live");
  CHECK(finished.flight == 42);
  CHECK(finished.waiters.size() == 1);
}

TEST_CASE(
    "coalesced fetch: over the waiter cap or the key cap the asker is not kept and still holds its "
    "answer") {
  CoalescedFetches<Answer> fetches(http::CoalescedFetchLimits{2, 1});
  int answered = 0;
  Answer count = [&](const std::string&) { ++answered; };
  CHECK(fetches.join("a", Answer(count)).outcome == JoinOutcome::started);
  CHECK(fetches.join("a", Answer(count)).outcome == JoinOutcome::joined);

  Answer third = count;
  auto over = fetches.join("a", std::move(third));
  CHECK(over.outcome == JoinOutcome::too_many_waiters);
  CHECK(over.flight == nullptr);
  CHECK(http::overflowed(over.outcome));
  REQUIRE(third);  // not moved from: the caller answers it now
  third("busy");
  CHECK(answered == 1);
  CHECK(fetches.waiting("a") == 2);

  Answer other = count;
  auto no_room = fetches.join("b", std::move(other));
  CHECK(no_room.outcome == JoinOutcome::too_many_keys);
  CHECK(http::overflowed(no_room.outcome));
  CHECK(other);
  CHECK_FALSE(fetches.running("b"));

  fetches.finish("a", [](Answer& answer) { answer("done"); });
  CHECK(answered == 3);
  // Room again once the fetch ended.
  CHECK(fetches.join("b", Answer(count)).outcome == JoinOutcome::started);
}

TEST_CASE("coalesced fetch: a zero waiter cap keeps no fetch running") {
  CoalescedFetches<Answer> fetches(http::CoalescedFetchLimits{0, 10});
  CHECK(fetches.join("a", [](const std::string&) {}).outcome == JoinOutcome::too_many_waiters);
  CHECK(fetches.size() == 0);
}

TEST_CASE("upstream failures are classified from the finished transfer") {
  http::FetchResult refused;
  refused.ok = false;
  CHECK(http::classify_fetch(refused, 0, false) == UpstreamFailure::unreachable);
  CHECK(http::classify_fetch(refused, 200, false) == UpstreamFailure::broken);

  http::FetchResult timed_out;
  timed_out.ok = false;
  timed_out.timed_out = true;
  CHECK(http::classify_fetch(timed_out, 0, false) == UpstreamFailure::timeout);
  CHECK(http::classify_fetch(timed_out, 200, false) == UpstreamFailure::timeout);

  auto answered = [](int status) {
    http::FetchResult r;
    r.ok = true;
    r.status = status;
    return r;
  };
  CHECK_FALSE(http::classify_fetch(answered(200), 200, false).has_value());
  CHECK(http::classify_fetch(answered(200), 200, true) == UpstreamFailure::too_large);
  CHECK(http::classify_fetch(answered(404), 404, false) == UpstreamFailure::not_found);
  CHECK(http::classify_fetch(answered(410), 410, false) == UpstreamFailure::not_found);
  CHECK(http::classify_fetch(answered(500), 500, false) == UpstreamFailure::bad_status);
  CHECK(http::classify_fetch(answered(304), 304, false) == UpstreamFailure::bad_status);
  CHECK_FALSE(http::classify_fetch(answered(304), 304, false, true).has_value());
}

TEST_CASE("upstream failures map to the error contract's statuses and codes") {
  const http::UpstreamWording playlist{"playlist", "source_too_large", "the balancer"};
  struct Row {
    UpstreamFailure failure;
    int status;
    const char* code;
    const char* message;
  };
  const Row rows[] = {
      {UpstreamFailure::unreachable, 502, "origin_unreachable",
       "The origin could not be reached for the playlist."},
      {UpstreamFailure::timeout, 504, "origin_timeout",
       "The origin did not send the playlist in time."},
      {UpstreamFailure::broken, 502, "origin_error",
       "The origin connection failed during the playlist transfer."},
      {UpstreamFailure::truncated, 502, "origin_error",
       "The origin sent fewer bytes of the playlist than it announced."},
      {UpstreamFailure::not_found, 404, "not_found", "The origin has no such playlist."},
      {UpstreamFailure::bad_status, 502, "origin_error",
       "The origin answered the playlist request with status 503."},
      {UpstreamFailure::too_large, 502, "source_too_large",
       "The origin's playlist is larger than the balancer accepts."},
  };
  for (const Row& row : rows) {
    CAPTURE(row.code);
    http::UpstreamErrorReply reply = http::upstream_error(row.failure, playlist, 503);
    CHECK(reply.status == row.status);
    CHECK(reply.error.code == row.code);
    CHECK(reply.error.message == row.message);
  }
  const http::UpstreamWording chunk{"chunk", "object_too_large", "this cache node"};
  http::UpstreamErrorReply big = http::upstream_error(UpstreamFailure::too_large, chunk);
  CHECK(big.error.code == "object_too_large");
  CHECK(big.error.message == "The origin's chunk is larger than this cache node accepts.");
  http::UpstreamErrorReply busy = http::overflow_error(chunk);
  CHECK(busy.status == 503);
  CHECK(busy.error.code == "busy");
}

// The keep-warm table (serving/keep_warm.h) with times passed in: which polled objects are
// kept, when each is due, and when one is let go.
#include "cache_node/serving/keep_warm.h"

#include <doctest/doctest.h>

using namespace cache_node;

namespace {

WarmObject object_for(const std::string& path, const std::string& signature = "") {
  WarmObject object;
  object.request.origin_id = "demo";
  object.request.origin_path = path;
  object.signed_suffix = signature;
  return object;
}

constexpr int64_t kWindowMs = 30'000;

}  // namespace

TEST_CASE("keep warm: a polled short-lived object is due a lifetime later, a segment never") {
  KeepWarm table;
  CHECK(table.polled("demo/live.m3u8", object_for("/live.m3u8"), 1'000, 3, 10'000));
  CHECK_FALSE(table.polled("demo/seg.ts", object_for("/seg.ts"), 86'400'000, 1, 10'000));
  CHECK_FALSE(table.polled("demo/none.m3u8", object_for("/none.m3u8"), 0, 1, 10'000));
  CHECK(table.size() == 1);
  CHECK(table.next_due_ms() == std::optional<int64_t>(11'000));
  CHECK(table.due(10'999).empty());
  CHECK(table.due(11'000) == std::vector<std::string>{"demo/live.m3u8"});
}

TEST_CASE("keep warm: refreshed while viewers read it, let go a window after the last read") {
  KeepWarm table;
  REQUIRE(table.polled("k", object_for("/live.m3u8", "bexp=1&bsig=a"), 1'000, 5, 0));
  // Read since (the count moved): refreshed, due a lifetime later.
  const WarmObject* warm = table.turn("k", 9, 1'000, kWindowMs);
  REQUIRE(warm != nullptr);
  CHECK(warm->request.origin_path == "/live.m3u8");
  CHECK(warm->signed_suffix == "bexp=1&bsig=a");
  CHECK(table.next_due_ms() == std::optional<int64_t>(2'000));
  // Nobody reads it any more: kept until the window since the last read (at 1 s) has passed.
  int64_t now = 2'000;
  for (; now < 1'000 + kWindowMs; now += 1'000) REQUIRE(table.turn("k", 9, now, kWindowMs));
  CHECK(table.turn("k", 9, now, kWindowMs) == nullptr);
  CHECK(table.size() == 0);
  CHECK_FALSE(table.next_due_ms().has_value());
}

TEST_CASE("keep warm: a copy no longer held in memory, or a window of 0, lets it go") {
  KeepWarm table;
  REQUIRE(table.polled("gone", object_for("/gone.m3u8"), 1'000, 1, 0));
  REQUIRE(table.polled("off", object_for("/off.m3u8"), 1'000, 1, 0));
  CHECK(table.turn("gone", std::nullopt, 1'000, kWindowMs) == nullptr);
  CHECK(table.turn("off", 2, 1'000, 0) == nullptr);
  CHECK(table.size() == 0);
}

TEST_CASE(
    "keep warm: polled again renews the object; due_at moves its turn; the table is bounded") {
  KeepWarm table(2);
  REQUIRE(table.polled("a", object_for("/a.m3u8", "old"), 1'000, 1, 0));
  REQUIRE(table.polled("b", object_for("/b.m3u8"), 2'000, 1, 0));
  CHECK_FALSE(table.polled("c", object_for("/c.m3u8"), 1'000, 1, 0));  // full
  REQUIRE(table.polled("a", object_for("/a.m3u8", "new"), 1'000, 4, 500));
  CHECK(table.size() == 2);
  CHECK(table.next_due_ms() == std::optional<int64_t>(1'500));
  // Another fetch refreshed "a" until 1.8 s: its turn moves there, after nothing else.
  table.due_at("a", 1'800);
  CHECK(table.due(1'800) == std::vector<std::string>{"a"});
  CHECK(table.due(2'000) == std::vector<std::string>{"a", "b"});
  const WarmObject* renewed = table.turn("a", 4, 2'000, kWindowMs);
  REQUIRE(renewed != nullptr);
  CHECK(renewed->signed_suffix == "new");
  table.forget("b");
  table.forget("b");
  CHECK(table.size() == 1);
  CHECK(table.due(100'000) == std::vector<std::string>{"a"});
}

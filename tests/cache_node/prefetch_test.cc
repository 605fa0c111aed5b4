// The pure parts of prefetch on the node: the bounded request body, the key
// check, the gate (rate and prefetches in progress) and the ledger that counts
// first-viewer hits and wasted prefetches, on a time the test moves.
#include <doctest/doctest.h>

#include "cache_node/fetching/prefetch.h"

using namespace cache_node;

TEST_CASE("prefetch body: 1 to 64 chunk strings under \"chunks\"; anything else is a bad request") {
  auto ok = parse_prefetch_body(R"({"chunks":["/o/demo/a/seg1.ts","/o/demo/a/seg2.ts?x=1"]})");
  REQUIRE(ok.ok());
  CHECK(ok->size() == 2);
  CHECK((*ok)[1] == "/o/demo/a/seg2.ts?x=1");
  for (const char* bad :
       {"", "[]", "{\"chunks\":[]}", "{\"chunks\":\"/o/demo/a.ts\"}", "{\"chunks\":[1]}",
        "{\"paths\":[\"/o/demo/a.ts\"]}", "{\"chunks\":[\"/o/demo/a.ts\"]"}) {
    INFO(bad);
    auto r = parse_prefetch_body(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "bad_request");
  }
  std::string many = "{\"chunks\":[";
  for (int i = 0; i < 65; ++i)
    many += std::string(i ? "," : "") + "\"/o/demo/" + std::to_string(i) + ".ts\"";
  CHECK_FALSE(parse_prefetch_body(many + "]}").ok());
}

TEST_CASE("prefetch key: only the exact key matches") {
  CHECK(prefetch_key_matches("prefetch-key-0123456789", "prefetch-key-0123456789"));
  CHECK_FALSE(prefetch_key_matches("prefetch-key-012345678", "prefetch-key-0123456789"));
  CHECK_FALSE(prefetch_key_matches("prefetch-key-01234567890", "prefetch-key-0123456789"));
  CHECK_FALSE(prefetch_key_matches("prefetch-key-0123456788", "prefetch-key-0123456789"));
  CHECK_FALSE(prefetch_key_matches("", "prefetch-key-0123456789"));
}

TEST_CASE(
    "prefetch gate: a second's burst at the rate, then tokens as time passes; in progress at most "
    "max") {
  PrefetchGate gate;
  int admitted = 0;
  for (int i = 0; i < 20; ++i) admitted += gate.admit(1000, 10, 100) ? 1 : 0;
  CHECK(admitted == 10);
  CHECK_FALSE(gate.admit(1050, 10, 100));  // half a token
  CHECK(gate.admit(1100, 10, 100));        // one token after 100 ms at 10/s
  CHECK(gate.inflight() == 11);
  PrefetchGate few;
  CHECK(few.admit(0, 100, 2));
  CHECK(few.admit(0, 100, 2));
  CHECK_FALSE(few.admit(0, 100, 2));  // two in progress
  few.finished();
  CHECK(few.admit(0, 100, 2));
}

TEST_CASE(
    "prefetch ledger: the first viewer is counted once; a chunk nobody asks for is wasted after "
    "its time") {
  PrefetchLedger ledger(60'000, 1000);
  ledger.prefetched("demo/seg1.ts", 0);
  ledger.prefetched("demo/seg2.ts", 1000);
  CHECK(ledger.first_viewer("demo/seg1.ts"));
  CHECK_FALSE(ledger.first_viewer("demo/seg1.ts"));  // the second viewer is not the first
  CHECK_FALSE(ledger.first_viewer("demo/other.ts"));
  CHECK(ledger.expire(59'999) == 0);
  CHECK(ledger.expire(61'000) == 1);  // seg2: never asked for
  CHECK(ledger.size() == 0);
  CHECK_FALSE(ledger.first_viewer("demo/seg2.ts"));
}

TEST_CASE("prefetch ledger: bounded; the oldest goes uncounted") {
  PrefetchLedger ledger(60'000, 3);
  for (int i = 0; i < 5; ++i) ledger.prefetched("k" + std::to_string(i), i);
  CHECK(ledger.size() == 3);
  CHECK_FALSE(ledger.first_viewer("k0"));
  CHECK(ledger.first_viewer("k4"));
  CHECK(ledger.expire(100'000) == 2);
}

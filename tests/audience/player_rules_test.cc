// What a player decides: reload cadence (RFC 8216 §6.3.4), live start near the edge, variant
// choice, throughput estimate, query parameters and tag attributes.
#include <doctest/doctest.h>

#include "audience/player_rules.h"

using namespace audience;

TEST_CASE("reload after a target duration when the playlist changed, half of it when not") {
  CHECK(reload_delay_s(6, true) == doctest::Approx(6));
  CHECK(reload_delay_s(6, false) == doctest::Approx(3));
  CHECK(reload_delay_s(0, false) > 0);  // never a busy loop
}

TEST_CASE("a live player starts three target durations from the end") {
  const std::vector<double> window(10, 2.0);
  CHECK(live_start_index(window, 6) == 7);
  CHECK(live_start_index(window, 5) == 7);
  CHECK(live_start_index({2, 2}, 6) == 0);
  CHECK(live_start_index({}, 6) == 0);
  CHECK(live_start_index({4, 4, 1, 1}, 3) == 1);
}

TEST_CASE("variant choice: top, bottom, and ABR under the throughput estimate") {
  const std::vector<uint64_t> ladder = {800'000, 200'000, 3'000'000};
  CHECK(choose_variant(VariantPolicy::top, ladder, std::nullopt) == 2);
  CHECK(choose_variant(VariantPolicy::bottom, ladder, 1e9) == 1);
  CHECK(choose_variant(VariantPolicy::abr, ladder, std::nullopt) == 1);
  CHECK(choose_variant(VariantPolicy::abr, ladder, 1'100'000) == 0);  // 0.8 × 1.1 M ≥ 800 k
  CHECK(choose_variant(VariantPolicy::abr, ladder, 900'000) == 1);
  CHECK(choose_variant(VariantPolicy::abr, ladder, 10e6) == 2);
  CHECK(parse_variant_policy("abr") == VariantPolicy::abr);
  CHECK_FALSE(parse_variant_policy("best"));
}

TEST_CASE("the throughput estimate believes a drop at once and a rise only when it lasts") {
  ThroughputEstimate t;
  CHECK_FALSE(t.bps());
  t.add(1'000'000, 1.0);  // 8 Mbit/s
  REQUIRE(t.bps());
  CHECK(*t.bps() == doctest::Approx(8e6).epsilon(0.01));
  t.add(100'000, 1.0);  // 0.8 Mbit/s
  const double after_drop = *t.bps();
  CHECK(after_drop < 5e6);
  t.add(1'000'000, 1.0);
  CHECK(*t.bps() < 8e6);
}

TEST_CASE("query parameters are replaced in place or appended") {
  CHECK(with_query_param("http://b/hls/a.m3u8?cache=venue-a&viewer=v", "cache", "") ==
        "http://b/hls/a.m3u8?cache=&viewer=v");
  CHECK(with_query_param("http://b/hls/a.m3u8?viewer=v&cache=x", "cache", "y") ==
        "http://b/hls/a.m3u8?viewer=v&cache=y");
  CHECK(with_query_param("http://b/a.m3u8", "cache", "y") == "http://b/a.m3u8?cache=y");
  CHECK(with_query_param("http://b/a.m3u8?", "c", "1") == "http://b/a.m3u8?c=1");
  CHECK(with_query_param("http://b/a.m3u8?xcache=1#f", "cache", "2") ==
        "http://b/a.m3u8?xcache=1&cache=2#f");
}

TEST_CASE("tag attributes, quoted or not") {
  const std::string line =
      "#EXT-X-STREAM-INF:BANDWIDTH=300000,CODECS=\"avc1.4d401f,mp4a.40.2\",PATHWAY-ID=\"venue-a\"";
  CHECK(tag_attribute(line, "PATHWAY-ID") == "venue-a");
  CHECK(tag_attribute(line, "CODECS") == "avc1.4d401f,mp4a.40.2");
  CHECK(tag_attribute(line, "BANDWIDTH") == "300000");
  CHECK_FALSE(tag_attribute(line, "AUDIO"));
}

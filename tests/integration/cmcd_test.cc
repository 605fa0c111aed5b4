// CMCD (CTA-5004) on the real servers: a player's report as the `CMCD=` query argument (hls.js,
// Shaka Player) or as the four CMCD headers (Media3, hls.js with useHeaders) changes neither a
// chunk's signature, nor its cache key, nor the source playlist the balancer fetches; both
// servers read it and expose the playback it describes (stalls by channel and node, sessions,
// buffer health) in /metrics and as JSON (the node's /playback, the balancer's /admin/status); a
// malformed report is counted and the request served as if it had none. What players report
// never reaches the node's /health, which balancers poll: no audience can make it larger.
#include <doctest/doctest.h>

#include <string>

#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

// encodeURIComponent of a CMCD payload, as hls.js writes the query argument.
std::string query_encoded(const std::string& payload) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : payload) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

std::string with_cmcd(const std::string& url, const std::string& payload) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + "CMCD=" + query_encoded(payload);
}

std::string object_of(const std::string& json, const std::string& key) {
  const size_t at = json.find("\"" + key + "\":{");
  if (at == std::string::npos) return "";
  const size_t end = json.find('}', at);
  return json.substr(at, end - at + 1);
}

}  // namespace

TEST_CASE(
    "cache node: CMCD as query or headers; the signature and the cache key ignore it; playback "
    "counted") {
  NodeOnOrigin s({"node_id=venue-a", "playback.channels=[\"demo\"]"});
  const std::string path = "/o/demo/gen/16K/cmcd.ts";
  const std::string signed_url = s.node.signed_url(path);

  // hls.js 1.7 (CMCD v2, query mode) on the signed link: the signature still holds.
  auto first = http_get(with_cmcd(
      signed_url,
      R"(bl=(21300),br=(3200),bs,cid="demo",mtp=(25400),nor=("n.ts"),ot=v,sid="s-1",sta=p,v=2)"));
  INFO(first.status, " ", first.body.substr(0, 200));
  REQUIRE(first.status == 200);
  CHECK(first.header("X-Cache") == "MISS");
  // Another report on the same link: the same chunk, from the cache.
  auto second = http_get(with_cmcd(signed_url, R"(bl=21000,br=3200,cid="demo",sid="s-1")"));
  CHECK(second.status == 200);
  CHECK(second.header("X-Cache") == "HIT");
  CHECK(second.body == first.body);
  CHECK(s.origin.count("/gen/16K/cmcd.ts") == 1);

  // Media3 (CMCD v1 headers), a stall and a short buffer; no cid.
  auto headers = http_get(signed_url, {{"CMCD-Object", "br=840,d=4000,ot=v,tb=3200"},
                                       {"CMCD-Request", "bl=1500,mtp=9000"},
                                       {"CMCD-Session", "sf=h,sid=\"s-2\",st=l"},
                                       {"CMCD-Status", "bs"}});
  CHECK(headers.status == 200);
  // A malformed report: counted, and the chunk served all the same.
  auto malformed = http_get(with_cmcd(signed_url, "bl=(1 2,sid=\"open"));
  CHECK(malformed.status == 200);
  // A tampered link with a report is still refused: only the CMCD argument is set aside.
  CHECK(http_get(with_cmcd(signed_url + "x", "bl=1")).status == 403);

  const std::string metrics = http_get(s.node.url("/metrics")).body;
  CHECK(metric_value(metrics, "cmcd_reports_total{result=\"read\"}") == 3);
  CHECK(metric_value(metrics, "cmcd_reports_total{result=\"malformed\"}") == 1);
  CHECK(metric_value(metrics, "playback_stalls_total{channel=\"demo\",node=\"venue-a\"}") == 1);
  CHECK(metric_value(metrics, "playback_stalls_total{channel=\"unknown\",node=\"venue-a\"}") == 1);
  CHECK(metric_value(metrics, "playback_sessions_reporting") == 2);
  // s-1 at 21 s, s-2 at 1.5 s: both regular (no st, st=l).
  CHECK(metric_value(metrics, "playback_sessions_with_buffer{kind=\"regular\"}") == 2);
  CHECK(metric_value(metrics, "playback_sessions_healthy_buffer{kind=\"regular\"}") == 1);
  CHECK(metric_value(metrics, "playback_sessions_healthy_buffer{kind=\"low_latency\"}") == 0);
  CHECK(metric_value(metrics, "playback_sessions_by_live_latency{at_most_s=\"+Inf\"}") == 0);
  CHECK(metric_value(metrics, "playback_buffer_length_seconds_count") == 3);
  CHECK(metric_value(metrics, "playback_bitrate_bytes_per_second_count") == 3);

  const std::string playback = http_get(s.node.url("/playback")).body;
  INFO(playback);
  CHECK(json_integer(playback, "sessions") == 2);
  CHECK(json_integer(playback, "healthy_buffer") == 1);
  CHECK(json_integer(playback, "stalls_total") == 2);
  // 840 kbps counts up to 1,000; 3,200 up to 4,000.
  CHECK(playback.find("\"bitrate_mix\":{\"1000\":1,\"4000\":1}") != std::string::npos);
  CHECK(s.node.health().find("playback") == std::string::npos);
}

TEST_CASE(
    "cache node: a low-latency player's buffer is judged against its part, and the players' "
    "latency behind live is counted per session") {
  NodeOnOrigin s({"node_id=venue-a", "playback.channels=[\"ll\"]"});
  const std::string signed_url = s.node.signed_url("/o/demo/gen/2K/part.mp4");
  // hls.js in low-latency mode (CMCD v2, st=ll): 0.6 s buffered, parts of 267 ms, 0.95 s behind
  // live; a regular player with the same buffer, 7.5 s behind.
  REQUIRE(http_get(with_cmcd(signed_url, R"(bl=(600),br=(1200),cid="ll",d=267,ltc=950,ot=v,)"
                                         R"(sid="ll-1",st=ll,v=2)"))
              .status == 200);
  REQUIRE(http_get(with_cmcd(signed_url, R"(bl=600,br=3200,d=2000,ltc=7500,sid="reg-1",st=l)"))
              .status == 200);
  const std::string metrics = http_get(s.node.url("/metrics")).body;
  INFO(metrics.substr(metrics.find("playback_sessions")));
  CHECK(metric_value(metrics, "playback_sessions_with_buffer{kind=\"low_latency\"}") == 1);
  CHECK(metric_value(metrics, "playback_sessions_healthy_buffer{kind=\"low_latency\"}") == 1);
  CHECK(metric_value(metrics, "playback_sessions_with_buffer{kind=\"regular\"}") == 1);
  CHECK(metric_value(metrics, "playback_sessions_healthy_buffer{kind=\"regular\"}") == 0);
  CHECK(metric_value(metrics, "playback_sessions_by_live_latency{at_most_s=\"0.9\"}") == 0);
  CHECK(metric_value(metrics, "playback_sessions_by_live_latency{at_most_s=\"1\"}") == 1);
  CHECK(metric_value(metrics, "playback_sessions_by_live_latency{at_most_s=\"8\"}") == 2);
  CHECK(metric_value(metrics, "playback_sessions_by_live_latency{at_most_s=\"+Inf\"}") == 2);
  CHECK(metric_value(metrics, "playback_live_latency_seconds_count") == 2);
  const std::string playback = http_get(s.node.url("/playback")).body;
  INFO(playback);
  CHECK(json_integer(playback, "healthy_buffer") == 1);
  CHECK(json_integer(playback, "low_latency_sessions_with_buffer") == 1);
  CHECK(json_integer(playback, "low_latency_healthy_buffer") == 1);
  CHECK(json_integer(playback, "sessions_with_latency") == 2);
  CHECK(playback.find(R"("latency_mix":{"1000":1,"8000":1})") != std::string::npos);
}

TEST_CASE(
    "cache node: one client reporting thousands of bitrates and sessions changes neither /health "
    "nor the size of /playback") {
  NodeOnOrigin s({"node_id=venue-a"});
  const std::string signed_url = s.node.signed_url("/o/demo/gen/2K/flood.ts");
  REQUIRE(http_get(signed_url).status == 200);
  const size_t health_before = s.node.health().size();
  // One signed link replayed with a new report each time, as an attacker in the stand could:
  // 2,000 distinct bitrates from 2,000 sessions with 400-byte ids. Before the playback summary
  // left /health, each bitrate added a member to it (about 9 bytes each).
  const std::string long_id(400, 'x');
  for (int i = 0; i < 2000; ++i) {
    auto r = http_get(with_cmcd(signed_url, "br=" + std::to_string(100 + 7 * i) + ",sid=\"" +
                                                long_id + std::to_string(i) + "\""));
    REQUIRE(r.status == 200);
  }
  const std::string health = s.node.health();
  INFO(health);
  CHECK(health.size() <= health_before + 16);  // counters may gain a digit or two
  CHECK(health.find("playback") == std::string::npos);
  // The summary at most a second old, in its eleven buckets.
  std::string playback;
  REQUIRE(wait_until(
      [&] {
        playback = http_get(s.node.url("/playback")).body;
        return json_integer(playback, "sessions") == 2000;
      },
      5s, 50ms));
  INFO(playback);
  CHECK(playback.size() < 400);
  const std::string metrics = http_get(s.node.url("/metrics")).body;
  // Bounded in bytes whatever the ids' length: 2,000 sessions of a fixed size.
  CHECK(metric_value(metrics, "playback_sessions_memory_bytes") ==
        2000 * 112);  // PlaybackQuality::kBytesPerSession
}

namespace {

// The playback_stalls_total series of a /metrics text: how many, and their sum.
std::pair<int, double> stall_series(const std::string& metrics) {
  int series = 0;
  double sum = 0;
  for (size_t at = metrics.find("\nplayback_stalls_total{"); at != std::string::npos;
       at = metrics.find("\nplayback_stalls_total{", at + 1)) {
    ++series;
    sum += std::stod(metrics.substr(metrics.find(' ', at + 1) + 1));
  }
  return {series, sum};
}

}  // namespace

TEST_CASE(
    "cache node: /playback is the operator's, and one client can neither add stall labels nor "
    "inflate stalls") {
  const std::string key = "node-operator-key-00001";
  NodeOnOrigin s({"node_id=venue-a", "playback.channels=[\"demo\"]", "operator.key=" + key,
                  "operator.allow_loopback=false"});
  // Without the key, or with another, the audience's figures are refused in our error shape.
  const HttpResponse anonymous = http_get(s.node.url("/playback"));
  CHECK(anonymous.status == 401);
  CHECK(anonymous.body.find(R"({"error":{"code":"operator_key_required")") == 0);
  const HttpResponse wrong = http_get(s.node.url("/playback"), {{"X-Operator-Key", key + "x"}});
  CHECK(wrong.status == 403);
  CHECK(wrong.body.find("operator_key_invalid") != std::string::npos);
  CHECK(http_get(s.node.url("/playback"), {{"X-Operator-Key", key}}).status == 200);
  CHECK(http_get(s.node.url("/playback?key=" + key)).status == 200);

  // One signed link replayed with 300 reports of a stall, each naming another channel, from one
  // session; then 20 sessions of the configured channel, each reporting a stall 10 times.
  const std::string signed_url = s.node.signed_url("/o/demo/gen/2K/stalls.ts");
  for (int i = 0; i < 300; ++i) {
    REQUIRE(
        http_get(with_cmcd(signed_url, "bs,cid=\"ch" + std::to_string(i) + "\",sid=\"flood\",su"))
            .status == 200);
  }
  for (int n = 0; n < 20; ++n) {
    for (int i = 0; i < 10; ++i) {
      REQUIRE(http_get(with_cmcd(signed_url, "bs,cid=\"demo\",sid=\"p-" + std::to_string(n) + "\""))
                  .status == 200);
    }
  }
  // A stall without a session is nobody's: not counted.
  REQUIRE(http_get(with_cmcd(signed_url, "bs,cid=\"demo\"")).status == 200);
  const std::string metrics = http_get(s.node.url("/metrics")).body;
  const auto [series, stalls] = stall_series(metrics);
  MESSAGE("stall series: " << series << ", stalls counted: " << stalls);
  CHECK(series == 2);  // demo and other (was 1,025 label values from one client)
  CHECK(metric_value(metrics, "playback_stalls_total{channel=\"other\",node=\"venue-a\"}") == 1);
  CHECK(metric_value(metrics, "playback_stalls_total{channel=\"demo\",node=\"venue-a\"}") == 20);
  // The summary is at most a second old.
  CHECK(wait_until(
      [&] {
        const std::string playback =
            http_get(s.node.url("/playback"), {{"X-Operator-Key", key}}).body;
        return json_integer(playback, "stalls_total") == 21;
      },
      5s, 50ms));
}

TEST_CASE(
    "cache node: a viewer's CMCD next object (nor) is fetched before it asks, once, if its link is "
    "signed") {
  NodeOnOrigin s({"node_id=venue-a"});
  const std::string base = s.node.url("");
  auto relative_to_dir = [&](const std::string& signed_url) {  // as hls.js writes nor
    return signed_url.substr(signed_url.rfind('/') + 1);
  };
  const std::string next = relative_to_dir(s.node.signed_url("/o/demo/gen/16K/live/s2.ts"));
  auto first = http_get(with_cmcd(s.node.signed_url("/o/demo/gen/16K/live/s1.ts"),
                                  "bl=4000,nor=\"" + next + "\",sid=\"n-1\""));
  REQUIRE(first.status == 200);
  CHECK(wait_until([&] { return s.origin.count("/gen/16K/live/s2.ts") == 1; }, 10s, 10ms));
  auto second = http_get(s.node.signed_url("/o/demo/gen/16K/live/s2.ts"));
  CHECK(second.status == 200);
  // HIT once the prefetch landed; COALESCED when the viewer asks while it is still on its way
  // (origin has counted it, its answer not yet stored: seen under ThreadSanitizer). Either way
  // the viewer's request cost no origin fetch of its own.
  const std::string cache_status = second.header("X-Cache").value_or("(none)");
  CHECK_MESSAGE((cache_status == "HIT" || cache_status == "COALESCED"), cache_status);
  CHECK(s.origin.count("/gen/16K/live/s2.ts") == 1);

  // Not fetched: a next object whose link is not signed, one that leaves the origin's tree,
  // one on another host.
  for (const std::string& nor : {std::string("s3.ts"), std::string("../../../../s4.ts"),
                                 std::string("http://elsewhere.invalid/o/demo/s5.ts")}) {
    CHECK(
        http_get(with_cmcd(s.node.signed_url("/o/demo/gen/16K/live/s1.ts"), "nor=\"" + nor + "\""))
            .status == 200);
  }
  // The counters move before each reply: one prefetch started, the unsigned link refused.
  const std::string metrics = http_get(s.node.url("/metrics")).body;
  CHECK(metric_value(metrics, "cache_prefetch_next_object_total") == 1);
  CHECK(metric_value(metrics, "cache_prefetches_total{result=\"invalid\"}") == 1);
  CHECK(s.origin.count("/gen/16K/live/s3.ts") == 0);
  CHECK(s.origin.count("/gen/16K/s4.ts") == 0);
}

TEST_CASE(
    "balancer: a playlist request's CMCD is read, never sent to origin, and counted for its "
    "channel and cache") {
  TempDir dir;
  write_file(dir.file("root/live/index.m3u8"), live_playlist(10, 3));
  write_file(dir.file("root/health.json"), R"({"status":"ok"})");
  TestOrigin origin(serving_files(dir.file("root")));
  BalancerProcess balancer(
      dir, origin.url("/files"), channels_json({channel_json("demo", "/live/index.m3u8")}),
      caches_json({R"({"id":"a","site":"venue","url":"http://127.0.0.1:9","health_url":")" +
                   origin.url("/files/health.json") + "\"}"}));
  REQUIRE(balancer.wait_cache_usable("a", true, 10s));

  const std::string target = "/hls/demo/live/index.m3u8?cache=a&viewer=v1";
  const std::string report1 = R"(bl=8000,bs,ot=m,sid="p-1",su)",
                    report2 = R"(bl=9000,ot=m,sid="p-1")";
  auto first = balancer.get(with_cmcd(target, report1));
  INFO(first.status, " ", first.body.substr(0, 300));
  REQUIRE(first.status == 200);
  CHECK(first.body.find("CMCD") == std::string::npos);  // not copied into the links
  auto second = balancer.get(with_cmcd(target, report2));
  CHECK(second.status == 200);
  // Origin never saw the argument (it would make each report a source playlist of its own).
  for (const std::string& report : {report1, report2})
    CHECK(origin.count("/files/live/index.m3u8?CMCD=" + query_encoded(report)) == 0);
  CHECK(origin.count("/files/live/index.m3u8") >= 1);

  CHECK(balancer.metric("cmcd_reports_total{result=\"read\"}") == 2);
  CHECK(balancer.metric("playback_stalls_total{channel=\"demo\",node=\"a\"}") == 1);
  CHECK(balancer.metric("playback_sessions_reporting") == 1);
  const std::string status = balancer.get("/admin/status").body;
  const std::string playback = object_of(status, "playback");
  INFO(status);
  CHECK(json_integer(playback, "sessions") == 1);
  CHECK(json_integer(playback, "stalls_total") == 1);
}

TEST_CASE("balancer: a request that is not admitted adds no playback session") {
  TempDir dir;
  write_file(dir.file("root/live/index.m3u8"), live_playlist(10, 3));
  TestOrigin origin(serving_files(dir.file("root")));
  BalancerProcess balancer(dir, origin.url("/files"),
                           channels_json({channel_json("demo", "/live/index.m3u8")}),
                           caches_json({}), {"limits.max_anonymous_per_address=2"});
  // Two anonymous viewers from this address are admitted, the next 30 refused with 429: each
  // reports a session of its own, and only the admitted ones count.
  int refused = 0;
  for (int i = 0; i < 32; ++i) {
    const std::string target = "/hls/demo/live/index.m3u8?viewer=v" + std::to_string(i);
    auto r = balancer.get(with_cmcd(target, "bl=5000,sid=\"p-" + std::to_string(i) + "\""));
    CHECK((r.status == 200 || r.status == 429));
    refused += r.status == 429 ? 1 : 0;
  }
  CHECK(refused == 30);
  CHECK(balancer.metric("playback_sessions_reporting") == 2);
  CHECK(balancer.metric("cmcd_reports_total{result=\"read\"}") == 2);
}

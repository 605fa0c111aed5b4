// Source playlist fetching by the real balancer: one origin fetch for many
// viewers, live freshness (never more than 0.5 s behind origin), LL-HLS
// blocking reloads keyed and coalesced, and origin failure handling.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>

#include "support/balancer_fixture.h"
#include "support/herd.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

struct Stack {
  explicit Stack(const std::vector<std::string>& channels,
                 std::vector<std::string> overrides = {}) {
    TestOriginOptions options;
    options.root = dir.file("root");
    std::filesystem::create_directories(options.root);
    origin = std::make_unique<TestOrigin>(options);
    balancer = std::make_unique<BalancerProcess>(
        dir, origin->url("/files"), channels_json(channels), caches_json({}), std::move(overrides));
  }
  TempDir dir;
  std::unique_ptr<TestOrigin> origin;
  std::unique_ptr<BalancerProcess> balancer;
};

double ms_since(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// Publishes media sequence 2..updates+1 into `path`, one every 400 ms (faster than any real
// stream), on its own thread; `written[seq]` is when each was written.
class PacedPublisher {
 public:
  PacedPublisher(std::string path, int updates) : written(updates + 2) {
    writer_ = std::thread([this, path = std::move(path), updates] {
      auto next = Clock::now() + 400ms;
      for (int seq = 2; seq <= updates + 1; ++seq) {
        std::this_thread::sleep_until(next);  // pacing the simulated stream, not synchronising
        write_file(path, live_playlist(seq, 5, 1));
        written[seq] = Clock::now();
        next += 400ms;
      }
      done = true;
    });
  }
  ~PacedPublisher() { join(); }
  void join() {
    if (writer_.joinable()) writer_.join();
  }

  std::vector<Clock::time_point> written;
  std::atomic<bool> done{false};

 private:
  std::thread writer_;
};

}  // namespace

TEST_CASE(
    "100 concurrent viewers of one live media playlist cost one origin fetch; VOD exactly one") {
  Stack s({channel_json("live", "/live/index.m3u8?delay_ms=200"),
           channel_json("vod", "/vod/index.m3u8")});
  write_file(s.dir.file("root/live/index.m3u8"), live_playlist(1, 5));
  write_file(s.dir.file("root/vod/index.m3u8"), live_playlist(1, 5) + "#EXT-X-ENDLIST\n");

  HerdOptions options;
  options.url = s.balancer->url("/hls/live/live/index.m3u8?delay_ms=200&viewer=herd");
  options.clients = 100;
  options.keep_bodies = false;
  HerdResult herd = run_herd(options);
  REQUIRE(herd.setup_error.empty());
  CHECK(herd.ok_count() == 100);
  CHECK(herd.hash_counts().size() == 1);
  // Origin first: a background refresh may start between the two reads, and the
  // balancer counts a fetch when it sends it, so origin never saw more than counted.
  const int64_t origin_seen = s.origin->count("/files/live/index.m3u8?delay_ms=200");
  std::string metrics = s.balancer->metrics();
  double by_request =
      metric_value(metrics,
                   "balancer_origin_fetches_total{resource=\"playlist\",trigger=\"request\"}")
          .value_or(-1);
  double by_refresh =
      metric_value(metrics,
                   "balancer_origin_fetches_total{resource=\"playlist\",trigger=\"refresh\"}")
          .value_or(-1);
  MESSAGE("live herd: " << herd.ok_count() << " viewers, origin fetches: " << by_request
                        << " for requests, " << by_refresh << " background refreshes; wall "
                        << herd.wall_ms << " ms");
  CHECK(by_request == 1);
  // Whatever else origin saw was the background refresh, which does not grow with viewers.
  CHECK(origin_seen >= 1);
  CHECK(origin_seen <= static_cast<int64_t>(by_request + by_refresh));
  CHECK(by_refresh <= 2);
  CHECK(metric_value(metrics, "balancer_playlist_cache_total{result=\"miss\"}") == 1);

  options.url = s.balancer->url("/hls/vod/vod/index.m3u8?viewer=herd");
  HerdResult vod = run_herd(options);
  CHECK(vod.ok_count() == 100);
  CHECK(s.origin->count("/files/vod/index.m3u8") == 1);
}

TEST_CASE("a live playlist updated at origin is served at most 0.5 s behind") {
  Stack s({channel_json("live", "/live/index.m3u8")});
  const std::string path = s.dir.file("root/live/index.m3u8");
  write_file(path, live_playlist(1, 5, 1));
  REQUIRE(s.balancer->get("/hls/live/live/index.m3u8?viewer=fresh").status == 200);

  constexpr int kUpdates = 15;
  PacedPublisher publisher(path, kUpdates);
  std::map<int64_t, Clock::time_point> first_seen;
  int64_t last = 0;
  bool went_back = false;
  auto deadline = Clock::now() + 15s;
  while (Clock::now() < deadline) {
    auto r = s.balancer->get("/hls/live/live/index.m3u8?viewer=fresh");
    auto now = Clock::now();
    if (r.status != 200) continue;
    int64_t seq = media_sequence(r.body);
    if (seq < last) went_back = true;
    last = std::max(last, seq);
    first_seen.emplace(seq, now);
    if (publisher.done && seq == kUpdates + 1) break;
    std::this_thread::sleep_for(20ms);  // poll period of the measuring viewer
  }
  publisher.join();
  CHECK_FALSE(went_back);
  std::vector<double> lags;
  for (int seq = 2; seq <= kUpdates + 1; ++seq) {
    auto it = first_seen.find(seq);
    if (it == first_seen.end()) continue;  // skipped between two polls: covered by the next one
    lags.push_back(ms_since(publisher.written[seq], it->second));
  }
  REQUIRE(lags.size() >= kUpdates / 2);
  auto p = percentiles(lags);
  MESSAGE("freshness lag behind origin over " << p.count << " updates: p50 " << p.p50 << " ms, p95 "
                                              << p.p95 << " ms, max " << p.max
                                              << " ms (poll period 20 ms)");
  CHECK(first_seen.count(kUpdates + 1) == 1);
  CHECK(p.max <= 500);
  // Refreshes are background fetches (viewers did not wait for origin).
  CHECK(s.balancer->metric(
            "balancer_origin_fetches_total{resource=\"playlist\",trigger=\"refresh\"}") > 0);
}

namespace {

// Viewers of a live channel whose origin answers after `delay_ms`: after a warm-up (the first
// copy, then one round trip before refreshes can be sent ahead), every poll is answered from
// the balancer's copy, none waits for a refresh, and the copy stays within 0.5 s of origin's.
void watch_distant_origin(int delay_ms) {
  const std::string source = "/live/index.m3u8?delay_ms=" + std::to_string(delay_ms);
  Stack s({channel_json("live", source)});
  const std::string path = s.dir.file("root/live/index.m3u8");
  write_file(path, live_playlist(1, 5, 1));
  const std::string url = "/hls/live" + source + "&viewer=far";
  REQUIRE(s.balancer->get(url).status == 200);
  const auto warm_until = Clock::now() + 1500ms;
  for (int i = 0; i < 500 && Clock::now() < warm_until; ++i) {
    s.balancer->get(url);
    std::this_thread::sleep_for(20ms);  // poll period of the viewer, not synchronisation
  }
  const double waits_before = s.balancer->metric("balancer_playlist_refresh_waits_total");
  REQUIRE(waits_before >= 0);

  constexpr int kUpdates = 10;
  PacedPublisher publisher(path, kUpdates);
  // Per media sequence number, when the first poll that showed it was sent.
  std::map<int64_t, Clock::time_point> first_seen;
  std::map<std::string, int> sources;
  int64_t last = 0;
  bool went_back = false;
  double longest_gap_ms = 0;  // between two polls' sends: how late a poll can see a change
  Clock::time_point previous_send{};
  const auto deadline = Clock::now() + 15s;
  for (int i = 0; i < 2000 && Clock::now() < deadline; ++i) {
    const auto sent = Clock::now();
    if (i > 0) longest_gap_ms = std::max(longest_gap_ms, ms_since(previous_send, sent));
    previous_send = sent;
    auto r = s.balancer->get(url);
    ++sources[r.header("X-Playlist-Source").value_or(std::to_string(r.status))];
    if (r.status == 200) {
      const int64_t seq = media_sequence(r.body);
      went_back = went_back || seq < last;
      last = std::max(last, seq);
      first_seen.emplace(seq, sent);
      if (publisher.done && seq == kUpdates + 1) break;
    }
    std::this_thread::sleep_for(20ms);  // poll period of the viewer
  }
  publisher.join();
  const double waits = s.balancer->metric("balancer_playlist_refresh_waits_total") - waits_before;
  std::vector<double> lags;
  for (int seq = 2; seq <= kUpdates + 1; ++seq) {
    auto it = first_seen.find(seq);
    if (it != first_seen.end()) lags.push_back(ms_since(publisher.written[seq], it->second));
  }
  REQUIRE(lags.size() >= kUpdates / 2);
  const auto p = percentiles(lags);
  std::string answered;
  for (const auto& [source_name, n] : sources)
    answered += " " + source_name + "=" + std::to_string(n);
  MESSAGE("origin " << delay_ms << " ms away: polls answered" << answered << "; refresh waits "
                    << waits << "; lag behind origin p50 " << p.p50 << " ms, max " << p.max
                    << " ms (longest gap between polls " << longest_gap_ms << " ms)");
  CHECK_FALSE(went_back);
  CHECK(first_seen.count(kUpdates + 1) == 1);
  CHECK(waits == 0);
  CHECK(sources.size() == 1);
  CHECK(sources["HIT"] > 0);
  // A poll sent 0.5 s after a change shows it: the lag is at most that plus one gap.
  CHECK(p.max <= 500 + longest_gap_ms);
}

}  // namespace

TEST_CASE("a live origin 200 ms away: no viewer waits for a refresh, the copy within 0.5 s") {
  watch_distant_origin(200);
}

// A 200 ms origin seen from a loaded balancer (6,000 connections) answers in about 350 ms.
TEST_CASE("a live origin 300 ms away: refreshes overlap, no viewer waits, the copy within 0.5 s") {
  watch_distant_origin(300);
}

// 40 live playlists whose origin takes a second each (three refreshes of each in flight: 120
// requests) and one fast playlist on the same origin: the slow ones' refreshes share a bounded
// part of the origin's 64 connections, so the fast one's refresh is sent at once and its viewer
// never waits behind them. Before the slow lane the fast viewer waited up to a second.
TEST_CASE("40 slow live playlists on one origin leave a fast one on it fresh") {
  constexpr int kSlow = 40;
  std::vector<std::string> channels;
  for (int i = 0; i < kSlow; ++i) {
    const std::string name = "slow" + std::to_string(i);
    channels.push_back(channel_json(name, "/" + name + "/index.m3u8?delay_ms=1000"));
  }
  channels.push_back(channel_json("fast", "/fast/index.m3u8"));
  Stack s(channels, {"limits.max_anonymous_per_address=100"});  // 41 viewers from one address
  for (int i = 0; i < kSlow; ++i) {
    const std::string name = "slow" + std::to_string(i);
    write_file(s.dir.file("root/" + name + "/index.m3u8"), live_playlist(1, 5, 1));
  }
  write_file(s.dir.file("root/fast/index.m3u8"), live_playlist(1, 5, 1));
  // One viewer of each slow playlist, all at once: each is then refreshed in the background.
  std::vector<std::thread> viewers;
  std::atomic<int> slow_ok{0};
  for (int i = 0; i < kSlow; ++i) {
    viewers.emplace_back([&, i] {
      const std::string name = "slow" + std::to_string(i);
      if (s.balancer
              ->get("/hls/" + name + "/" + name + "/index.m3u8?delay_ms=1000&viewer=v" +
                    std::to_string(i))
              .status == 200)
        ++slow_ok;
    });
  }
  for (auto& t : viewers) t.join();
  REQUIRE(slow_ok.load() == kSlow);
  // Refreshes overlapping: more slow requests sent than the origin's 64 connections.
  REQUIRE(wait_until(
      [&] {
        return s.balancer->metric(
                   "balancer_origin_fetches_total{resource=\"playlist\",trigger=\"refresh\"}") >=
               2 * kSlow + 64;
      },
      10s));
  const std::string fast = "/hls/fast/fast/index.m3u8?viewer=quick";
  REQUIRE(s.balancer->get(fast).status == 200);
  std::vector<double> waits_ms;
  const auto until = Clock::now() + 2500ms;
  for (int i = 0; i < 500 && Clock::now() < until; ++i) {
    const auto r = s.balancer->get(fast);
    CHECK(r.status == 200);
    waits_ms.push_back(std::chrono::duration<double, std::milli>(r.total).count());
    std::this_thread::sleep_for(20ms);  // the viewer's poll period, not synchronisation
  }
  const Percentiles p = percentiles(waits_ms);
  MESSAGE("fast playlist beside " << kSlow << " slow ones: " << p.count << " polls, p50 " << p.p50
                                  << " ms, p95 " << p.p95 << " ms, max " << p.max << " ms");
  // Without the slow lane most polls waited 0.7 s (17–28 of them in 2.5 s). Under a sanitizer
  // one poll in 74 once took 1.3 s (the server paused as a whole), so there only the p95 holds.
  CHECK(p.p95 < 250);
  if (servers_sanitizer().empty()) CHECK(p.max < 250);
}

TEST_CASE(
    "LL-HLS directives on a playlist that does not advertise blocking reloads never reach origin") {
  Stack s({channel_json("live", "/live/index.m3u8")});
  write_file(s.dir.file("root/live/index.m3u8"), live_playlist(1, 5, 1));
  const std::string base = "/hls/live/live/index.m3u8?viewer=ll";
  REQUIRE(s.balancer->get(base).status == 200);
  for (int i = 0; i < 64; ++i) {
    auto r = s.balancer->get(base + "&_HLS_msn=" + std::to_string(1 + i % 6) + "&_HLS_part=" +
                             std::to_string(i / 6) + (i % 2 ? "&_HLS_skip=YES" : ""));
    CAPTURE(i);
    CHECK(r.status == 200);
  }
  // Total first: background refreshes of the plain copy may land between the reads.
  int64_t total = s.origin->total();
  int64_t plain = s.origin->count("/files/live/index.m3u8");
  CHECK(total - plain <= 0);
  CHECK(s.origin->count("/files/live/index.m3u8?_HLS_msn=2&_HLS_part=0") == 0);
}

TEST_CASE("origin down: the last good copy serves for playlists.media_stale_s, then 502 JSON") {
  Stack s({channel_json("live", "/live/index.m3u8")}, {"playlists.media_stale_s=3"});
  write_file(s.dir.file("root/live/index.m3u8"), live_playlist(7, 5, 2));
  auto good = s.balancer->get("/hls/live/live/index.m3u8?viewer=v");
  REQUIRE(good.status == 200);
  // Keep watching so the copy is being refreshed, then the origin dies.
  REQUIRE(wait_until(
      [&] {
        return s.balancer->metric(
                   "balancer_origin_fetches_total{resource=\"playlist\",trigger=\"refresh\"}") >= 2;
      },
      5s));
  s.origin->process().kill();
  REQUIRE(s.origin->process().wait_exit(deadline_in(5s)).has_value());
  auto killed = Clock::now();

  HttpResponse failure;
  Clock::time_point failed_at{};
  int stale = 0;
  auto deadline = killed + 8s;
  while (Clock::now() < deadline) {
    auto r = s.balancer->get("/hls/live/live/index.m3u8?viewer=v");
    if (r.status != 200) {
      failure = r;
      failed_at = Clock::now();
      break;
    }
    CHECK(r.body == good.body);  // the last good copy, unchanged
    if (r.header("X-Playlist-Source") == std::optional<std::string>("STALE")) ++stale;
    std::this_thread::sleep_for(50ms);
  }
  REQUIRE(failure.status != 0);
  double served_for = ms_since(killed, failed_at);
  MESSAGE("last good copy served for " << served_for << " ms after the origin died (" << stale
                                       << " stale replies)");
  CHECK(failure.status == 502);
  CHECK(is_json_error(failure, "origin_unreachable"));
  CHECK(stale > 0);
  // media_stale_s (3 s, longer than the 2 s target duration) after the last good fetch, which
  // was < 0.5 s before the kill; plus this loop's 50 ms steps and a request's time, which under
  // ThreadSanitizer reached 3335 ms in one CI run.
  CHECK(served_for >= 2400);
  CHECK(served_for <= 3500);
}

TEST_CASE("an origin that never answers gives 504 JSON after the fetch timeout") {
  Stack s({channel_json("hung", "/live/index.m3u8?hang=1")}, {"playlists.fetch_timeout_ms=400"});
  write_file(s.dir.file("root/live/index.m3u8"), live_playlist(1, 3));
  auto started = Clock::now();
  auto r = s.balancer->get("/hls/hung/live/index.m3u8?hang=1&viewer=v");
  CHECK(r.status == 504);
  CHECK(is_json_error(r, "origin_timeout"));
  CHECK(ms_since(started, Clock::now()) < 3000);
}

TEST_CASE(
    "LL-HLS: blocking reloads are keyed and coalesced per (playlist, msn, part); skip is never "
    "passed on") {
  Stack s({channel_json("ll", "/ll/index.m3u8")});
  const std::string ll =
      "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n"
      "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=1.5\n"
      "#EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-MEDIA-SEQUENCE:10\n"
      "#EXTINF:2.0,\ns10.m4s\n#EXTINF:2.0,\ns11.m4s\n"
      "#EXT-X-PART:DURATION=0.5,INDEPENDENT=YES,URI=\"s12.0.m4s\"\n#EXT-X-PART:DURATION=0.5,URI="
      "\"s12.1.m4s\"\n"
      "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s12.2.m4s\"\n";
  write_file(s.dir.file("root/ll/index.m3u8"), ll);
  const std::string base = "/hls/ll/ll/index.m3u8?viewer=v";
  REQUIRE(s.balancer->get(base).status == 200);

  // Already in the shared copy: answered without a trip to origin.
  auto held = s.balancer->get(base + "&_HLS_msn=12&_HLS_part=1");
  CHECK(held.status == 200);
  CHECK(s.origin->count("/files/ll/index.m3u8?_HLS_msn=12&_HLS_part=1") == 0);
  CHECK(tag_uri(held.body, "#EXT-X-PRELOAD-HINT:").find("/files/ll/s12.2.m4s") !=
        std::string::npos);

  // Not yet there: one origin request per (msn, part), however many viewers ask.
  HerdOptions options;
  options.url = s.balancer->url(base + "&_HLS_msn=12&_HLS_part=2");
  options.clients = 30;
  HerdResult herd = run_herd(options);
  CHECK(herd.ok_count() == 30);
  // The balancer follows this playlist with the same reload (answered at once by this origin,
  // so at most one every live_refresh_ms): those apart, the 30 viewers cost one, or none when
  // they came while a follow was held and joined it.
  const double follows =
      metric_value(s.balancer->metrics(),
                   "balancer_origin_fetches_total{resource=\"playlist\",trigger=\"follow\"}")
          .value_or(-1);
  CHECK(follows >= 1);
  const double asked = s.origin->count("/files/ll/index.m3u8?_HLS_msn=12&_HLS_part=2") - follows;
  CHECK(asked >= 0);
  CHECK(asked <= 1);
  CHECK(s.balancer->get(base + "&_HLS_msn=13").status == 200);
  CHECK(s.origin->count("/files/ll/index.m3u8?_HLS_msn=13") == 1);

  // Too far ahead: refused without asking origin.
  auto far = s.balancer->get(base + "&_HLS_msn=40");
  CHECK(far.status == 400);
  CHECK(is_json_error(far, "bad_request"));
  CHECK(s.origin->count("/files/ll/index.m3u8?_HLS_msn=40") == 0);

  // Delta updates (YES and v2) are made from the shared copy: origin is not asked for them.
  CHECK(s.balancer->get(base + "&_HLS_skip=YES").status == 200);
  CHECK(s.balancer->get(base + "&_HLS_skip=YES").status == 200);
  CHECK(s.origin->count("/files/ll/index.m3u8?_HLS_skip=YES") == 0);
  // v2 would have the date ranges skipped too: the same delta update answers it, date ranges
  // kept, so no v2 copy is fetched for any (msn, part) an attacker names.
  CHECK(s.balancer->get(base + "&_HLS_skip=v2").status == 200);
  CHECK(s.balancer->get(base + "&_HLS_skip=v2").status == 200);
  for (int part = 0; part < 3; ++part) {
    CHECK(s.balancer->get(base + "&_HLS_msn=12&_HLS_part=" + std::to_string(part) + "&_HLS_skip=v2")
              .status == 200);
  }
  CHECK(s.origin->count("/files/ll/index.m3u8?_HLS_skip=v2") == 0);
  for (int part = 0; part < 3; ++part) {
    CHECK(s.origin->count("/files/ll/index.m3u8?_HLS_msn=12&_HLS_part=" + std::to_string(part) +
                          "&_HLS_skip=v2") == 0);
  }
}

TEST_CASE(
    "LL-HLS blocking reloads follow RFC 8216bis 6.2.5.2: limits, a part past a segment's last, "
    "ENDLIST, 503") {
  Stack s({channel_json("ll", "/ll/index.m3u8?blocking_delay_ms=20000"),
           channel_json("done", "/done/index.m3u8"), channel_json("next", "/next/index.m3u8")});
  // Segment 11 complete with its two parts listed; segment 12 not begun.
  const std::string ll =
      "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n"
      "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5\n"
      "#EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-MEDIA-SEQUENCE:10\n"
      "#EXTINF:1.0,\ns10.m4s\n"
      "#EXT-X-PART:DURATION=0.5,INDEPENDENT=YES,URI=\"s11.0.m4s\"\n#EXT-X-PART:DURATION=0.5,URI="
      "\"s11.1.m4s\"\n"
      "#EXTINF:1.0,\ns11.m4s\n"
      "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s12.0.m4s\"\n";
  write_file(s.dir.file("root/ll/index.m3u8"), ll);
  write_file(s.dir.file("root/next/index.m3u8"), ll);
  write_file(s.dir.file("root/done/index.m3u8"), ll + "#EXT-X-ENDLIST\n");
  const std::string base = "/hls/ll/ll/index.m3u8?blocking_delay_ms=20000&viewer=v";
  REQUIRE(s.balancer->get(base).status == 200);

  // More than two segments past the last (11): 400 at once; two past is asked of origin.
  auto far = s.balancer->get(base + "&_HLS_msn=14");
  CHECK(far.status == 400);
  CHECK(is_json_error(far, "bad_request"));
  // Parts: the limit is 3 / 0.5 = 6 parts past the last (11.1), a segment counting as 2.
  CHECK(s.balancer->get(base + "&_HLS_msn=13&_HLS_part=4").status == 400);

  // Not satisfied within three target durations (3 s; origin would hold it 20 s): 503.
  const auto started = Clock::now();
  auto late = s.balancer->get(base + "&_HLS_msn=12&_HLS_part=1");
  const double waited = ms_since(started, Clock::now());
  CHECK(late.status == 503);
  CHECK(is_json_error(late, "playlist_not_ready"));
  CHECK(late.header("Retry-After").has_value());
  CHECK(waited >= 2500);
  CHECK(waited < 6000);

  // A part past segment 11's last means part 0 of segment 12: asked of origin as such.
  const std::string next = "/hls/next/next/index.m3u8?viewer=v";
  REQUIRE(s.balancer->get(next).status == 200);
  CHECK(s.balancer->get(next + "&_HLS_msn=11&_HLS_part=2").status == 200);
  CHECK(s.origin->count("/files/next/index.m3u8?_HLS_msn=11&_HLS_part=2") == 0);
  CHECK(s.origin->count("/files/next/index.m3u8?_HLS_msn=12&_HLS_part=0") >= 1);

  // EXT-X-ENDLIST: the directives are ignored, answered at once from the shared copy.
  const std::string done = "/hls/done/done/index.m3u8?viewer=v";
  REQUIRE(s.balancer->get(done).status == 200);
  auto ended = s.balancer->get(done + "&_HLS_msn=40&_HLS_part=3");
  CHECK(ended.status == 200);
  CHECK(s.origin->count("/files/done/index.m3u8?_HLS_msn=40&_HLS_part=3") == 0);
}

// A media playlist under the byte limit but with 160,000 short segments, against the
// real balancer, test origin and cache node: each viewer's copy is a window of the newest
// playlists.max_segments segments (bounded size, bounded rewrite time, another channel
// answered meanwhile); a VOD playlist that long is refused; clients that never read their
// replies hold at most playlists.max_unsent_bytes; an EVENT playlist growing for three
// hours stays within both limits and its window never moves backwards.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "balancer/balancer_fixture.h"
#include "cache_node_fixture.h"
#include "faults/fault_support.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

constexpr int kLongSegments = 160000;
constexpr size_t kDefaultMaxSegments = 12000;  // playlists.max_segments default

// A media playlist of `count` 1-second segments "s<N>.ts" (about 27 bytes each).
std::string long_playlist(int count, const std::string& header, bool endlist = false) {
  std::string out = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n" + header;
  out.reserve(out.size() + static_cast<size_t>(count) * 28 + 32);
  char line[48];
  for (int i = 0; i < count; ++i) {
    int n = std::snprintf(line, sizeof line, "#EXTINF:1.000,\ns%07d.ts\n", i);
    out.append(line, static_cast<size_t>(n));
  }
  if (endlist) out += "#EXT-X-ENDLIST\n";
  return out;
}

size_t count_of(const std::string& text, std::string_view needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++n;
  return n;
}

int64_t media_sequence_of(const std::string& body) {
  const std::string tag = "#EXT-X-MEDIA-SEQUENCE:";
  size_t at = body.find(tag);
  return at == std::string::npos ? 0 : std::stoll(body.substr(at + tag.size()));
}

// The last URI line's segment name ("s0000123.ts"), "" when none.
std::string last_segment(const std::string& body) {
  size_t end = body.rfind(".ts");
  if (end == std::string::npos) return {};
  size_t start = body.rfind("/s", end);
  return start == std::string::npos ? std::string() : body.substr(start + 1, end + 3 - start - 1);
}

std::string segment_name(int i) {
  char name[32];
  std::snprintf(name, sizeof name, "s%07d.ts", i);
  return name;
}

struct Stack {
  explicit Stack(std::vector<std::string> overrides = {}) {
    write_file(dir.file("root/big/index.m3u8"), long_playlist(kLongSegments, ""));
    write_file(dir.file("root/vod/index.m3u8"), long_playlist(kLongSegments, "#EXT-X-PLAYLIST-TYPE:VOD\n", true));
    write_file(dir.file("root/small/index.m3u8"), live_playlist(100, 5));
    TestOriginOptions options;
    options.root = dir.file("root");
    origin = std::make_unique<TestOrigin>(options);
    node = std::make_unique<CacheNodeProcess>(dir.file("cache-a"), origin->url("/files"));
    overrides.push_back("playlists.max_bytes=8388608");  // 160,000 segments are about 4.3 MB
    balancer = std::make_unique<BalancerProcess>(
        dir, origin->url("/files"),
        channels_json({channel_json("big", "/big/index.m3u8"), channel_json("vod", "/vod/index.m3u8"),
                       channel_json("small", "/small/index.m3u8"), channel_json("event", "/event/index.m3u8")}),
        caches_json({cache_json("venue-a", "venue", node->port())}), std::move(overrides));
    REQUIRE(balancer->wait_cache_usable("venue-a", true, 10s));
  }
  TempDir dir;
  std::unique_ptr<TestOrigin> origin;
  std::unique_ptr<CacheNodeProcess> node;
  std::unique_ptr<BalancerProcess> balancer;
};

double rewrite_seconds_mean(const BalancerProcess& b) {
  const std::string m = b.metrics();
  const double sum = metric_value(m, "balancer_rewrite_seconds_sum").value_or(0);
  const double count = metric_value(m, "balancer_rewrite_seconds_count").value_or(0);
  return count > 0 ? sum / count : 0;
}

}  // namespace

TEST_CASE("a live playlist of 160,000 segments under the byte limit: each viewer gets the newest max_segments") {
  Stack s;
  const auto first = s.balancer->get("/hls/big/big/index.m3u8?viewer=first&cache=venue-a");
  REQUIRE(first.status == 200);
  CHECK(count_of(first.body, "#EXTINF:") == kDefaultMaxSegments);
  CHECK(media_sequence_of(first.body) == kLongSegments - static_cast<int64_t>(kDefaultMaxSegments));
  CHECK(last_segment(first.body) == segment_name(kLongSegments - 1));
  // The window's size, whatever the source's: about 110 bytes per signed link here.
  CHECK(first.body.size() < kDefaultMaxSegments * 160);
  CHECK(s.balancer->metric("balancer_playlist_windowed_total") >= 1);

  // Eight viewers fetch it at once while another channel's viewer keeps asking for its
  // playlist: every copy is a window, and the small one is answered meanwhile.
  std::vector<HttpResponse> replies(8);
  std::atomic<int> done{0};
  std::vector<std::thread> viewers;
  const auto started = Clock::now();
  for (int i = 0; i < 8; ++i) {
    viewers.emplace_back([&, i] {
      replies[i] = s.balancer->get("/hls/big/big/index.m3u8?cache=venue-a&viewer=v" + std::to_string(i));
      done.fetch_add(1);
    });
  }
  double slowest_small_ms = 0;
  int small_answers = 0;
  bool small_ok = true;
  wait_until(
      [&] {
        const auto asked = Clock::now();
        const auto r = http_get(s.balancer->url("/hls/small/small/index.m3u8?viewer=other"), {}, 10s);
        slowest_small_ms = std::max(slowest_small_ms, std::chrono::duration<double, std::milli>(Clock::now() - asked).count());
        small_ok = small_ok && r.status == 200 && count_of(r.body, "#EXTINF:") == 5;
        ++small_answers;
        return done.load() == 8;
      },
      60s, 5ms);
  for (auto& t : viewers) t.join();
  const double all_ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
  for (const auto& r : replies) {
    CHECK(r.status == 200);
    CHECK(count_of(r.body, "#EXTINF:") == kDefaultMaxSegments);
    CHECK(r.body.size() < kDefaultMaxSegments * 160);
  }
  CHECK(small_ok);
  CHECK(small_answers >= 1);
  CHECK(slowest_small_ms < 5000);  // generous: sanitizer builds are slow
  MESSAGE("160,000-segment live playlist (" << (kLongSegments * 27 >> 10) << " KiB at origin): a viewer's copy is "
                                            << first.body.size() << " bytes (" << kDefaultMaxSegments
                                            << " segments); 8 viewers at once took " << all_ms
                                            << " ms in all; another channel's playlist meanwhile: " << small_answers
                                            << " answers, slowest " << slowest_small_ms
                                            << " ms; mean rewrite " << rewrite_seconds_mean(*s.balancer) * 1000
                                            << " ms");
}

TEST_CASE("a VOD playlist of 160,000 segments is refused with source_too_many_segments, counted") {
  Stack s;
  const auto r = s.balancer->get("/hls/vod/vod/index.m3u8?viewer=a");
  CHECK(r.status == 502);
  CHECK(is_json_error_reply(r, "source_too_many_segments"));
  CHECK(r.body.find("160000 segments") != std::string::npos);
  CHECK(s.balancer->metric("balancer_errors_total{code=\"source_too_many_segments\"}") >= 1);
  CHECK(s.balancer->metric(
            "balancer_origin_fetch_failures_total{resource=\"playlist\",code=\"source_too_many_segments\"}") >= 1);
  // Other channels are untouched.
  CHECK(s.balancer->get("/hls/small/small/index.m3u8?viewer=a").status == 200);
}

TEST_CASE("twenty clients that never read their replies hold at most playlists.max_unsent_bytes") {
  // The window is lifted here (max_segments above the source's count), so each copy is the
  // whole 160,000 segments, about 20 MB with signed links: far more than the kernel's socket
  // buffers take (tcp_wmem's 4 MiB at most), so what a client does not read stays in this
  // process unless the budget stops it.
  constexpr size_t kBudget = 8u << 20;  // playlists.max_unsent_bytes
  constexpr int kReaders = 20;
  Stack s({"playlists.max_segments=200000", "playlists.max_unsent_bytes=" + std::to_string(kBudget),
           "server.io_timeout_s=60"});
  const pid_t pid = s.balancer->process().pid();
  // Warm: the source parsed, each loop's links computed, a copy sent and released.
  HttpResponse whole;
  for (int i = 0; i < 4; ++i) {
    whole = http_get(s.balancer->url("/hls/big/big/index.m3u8?cache=venue-a&viewer=warm" + std::to_string(i)), {}, 30s);
    REQUIRE(whole.status == 200);
  }
  REQUIRE(count_of(whole.body, "#EXTINF:") == kLongSegments);
  REQUIRE(wait_until([&] { return s.balancer->metric("balancer_playlist_unsent_bytes") == 0; }, 10s, 20ms));
  const int64_t rss_before = rss_kib(pid);
  const double requests_before = s.balancer->metric("balancer_requests_total{kind=\"playlist\"}");
  const auto refused_now = [&] {
    return metric_value(s.balancer->metrics(), "balancer_errors_total{code=\"reply_backlog_full\"}").value_or(0);
  };
  const double refused_before = refused_now();

  std::vector<int> readers;
  for (int i = 0; i < kReaders; ++i) {
    const int fd = connect_local(s.balancer->port(), 4096);
    REQUIRE(fd >= 0);
    readers.push_back(fd);
    REQUIRE(send_all(fd, "GET /hls/big/big/index.m3u8?cache=venue-a&viewer=stuck" + std::to_string(i) +
                             " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  }
  // Every request answered (a copy, or 503 once the budget is spent), none read.
  CHECK(wait_until(
      [&] {
        return s.balancer->metric("balancer_requests_total{kind=\"playlist\"}") >= requests_before + kReaders &&
               s.balancer->metric("balancer_active_requests") <= 1;
      },
      60s, 20ms));
  int64_t rss_max = 0;
  double unsent_max = 0;
  const auto hung = Clock::now();
  wait_until(
      [&] {
        rss_max = std::max(rss_max, rss_kib(pid));
        unsent_max = std::max(unsent_max, s.balancer->metric("balancer_playlist_unsent_bytes"));
        return Clock::now() - hung >= 1s;
      },
      3s, 100ms);
  const double refused = refused_now() - refused_before;
  // A reading client meanwhile: refused with the JSON shape and Retry-After while the budget is spent.
  const auto meanwhile = s.balancer->get("/hls/big/big/index.m3u8?cache=venue-a&viewer=reader");
  CHECK(refused >= kReaders - 2);  // one copy per loop at most got out before the budget was spent
  CHECK(unsent_max > kBudget);
  // Each loop checks the budget, then adds its copy: one copy per loop over it at most.
  CHECK(unsent_max <= kBudget + 2 * whole.body.size());
  // Twenty unread copies would hold 20 x 20 MB (and their viewers' listings); the budget keeps
  // it to one copy per loop (two here) and what rendering it took.
  CHECK(rss_max - rss_before <= 4 * static_cast<int64_t>(whole.body.size() >> 10));
  CHECK(meanwhile.status == 503);
  CHECK(is_json_error_reply(meanwhile, "reply_backlog_full"));
  CHECK(meanwhile.header("Retry-After").has_value());

  // The readers go away: what they held is released and viewers are served again.
  for (int fd : readers) ::close(fd);
  CHECK(wait_until([&] { return s.balancer->metric("balancer_playlist_unsent_bytes") == 0; }, 10s, 20ms));
  const auto after = http_get(s.balancer->url("/hls/big/big/index.m3u8?cache=venue-a&viewer=reader"), {}, 30s);
  CHECK(after.status == 200);
  MESSAGE(kReaders << " clients not reading a " << whole.body.size() << "-byte copy with max_unsent_bytes "
                   << (kBudget >> 20) << " MiB: " << refused << " refused (503 reply_backlog_full); unsent at most "
                   << static_cast<int64_t>(unsent_max) / 1024 << " KiB; RSS " << rss_before / 1024
                   << " MiB before, at most " << rss_max / 1024 << " MiB while they hung (+" << rss_max - rss_before
                   << " KiB)");
}

TEST_CASE("an EVENT playlist growing for three hours stays within max_segments; its window never moves back") {
  constexpr int kHours3 = 3 * 3600;    // 1-second segments
  constexpr int kStep = 900;           // segments added between two looks (15 minutes)
  constexpr size_t kWindow = 3600;     // playlists.max_segments here: one hour
  constexpr size_t kBudget = 4u << 20;  // playlists.max_unsent_bytes
  Stack s({"playlists.max_segments=" + std::to_string(kWindow),
           "playlists.max_unsent_bytes=" + std::to_string(kBudget)});
  const std::string header =
      "#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-KEY:METHOD=AES-128,URI=\"k.key\"\n"
      "#EXT-X-PROGRAM-DATE-TIME:2026-11-23T18:00:00.000Z\n";
  int64_t previous_sequence = -1;
  size_t largest = 0;
  for (int count = kStep; count <= kHours3; count += kStep) {
    write_file(s.dir.file("root/event/index.m3u8"), long_playlist(count, header));
    HttpResponse r;
    // The balancer refreshes live copies in the background: wait for this step's newest segment.
    REQUIRE(wait_until(
        [&] {
          r = s.balancer->get("/hls/event/event/index.m3u8?cache=venue-a&viewer=fan");
          return r.status == 200 && last_segment(r.body) == segment_name(count - 1);
        },
        10s, 50ms));
    const size_t segments = count_of(r.body, "#EXTINF:");
    const int64_t sequence = media_sequence_of(r.body);
    CHECK(segments == std::min<size_t>(count, kWindow));
    CHECK(sequence == count - static_cast<int64_t>(segments));
    CHECK(sequence >= previous_sequence);
    CHECK(count_of(r.body, "#EXT-X-KEY:") == 1);  // carried when the window slid past it
    CHECK(count_of(r.body, "#EXT-X-PROGRAM-DATE-TIME:") == 1);
    if (static_cast<size_t>(count) > kWindow) {
      CHECK(r.body.find("#EXT-X-PLAYLIST-TYPE:EVENT") == std::string::npos);  // the window slides
    } else {
      CHECK(r.body.find("#EXT-X-PLAYLIST-TYPE:EVENT") != std::string::npos);
    }
    CHECK(r.body.size() <= kBudget);
    previous_sequence = sequence;
    largest = std::max(largest, r.body.size());
  }
  CHECK(previous_sequence == kHours3 - static_cast<int64_t>(kWindow));
  MESSAGE("EVENT playlist grown to " << kHours3 << " 1-second segments in steps of " << kStep << ": window of "
                                     << kWindow << ", largest copy " << largest << " bytes, last media sequence "
                                     << previous_sequence);
}

TEST_CASE("with the default max_segments a three-hour EVENT playlist of 1-second segments is served whole") {
  Stack s;
  write_file(s.dir.file("root/event/index.m3u8"), long_playlist(3 * 3600, "#EXT-X-PLAYLIST-TYPE:EVENT\n"));
  const auto r = s.balancer->get("/hls/event/event/index.m3u8?cache=venue-a&viewer=fan");
  REQUIRE(r.status == 200);
  CHECK(count_of(r.body, "#EXTINF:") == 3 * 3600);
  CHECK(media_sequence_of(r.body) == 0);
  CHECK(r.body.find("#EXT-X-PLAYLIST-TYPE:EVENT") != std::string::npos);
}

// An encoder restart on a live channel with the real balancer, a real cache
// node and an origin whose playlist the test writes: run A ends with
// EXT-X-ENDLIST, run B numbers from 0 again with the same names and other
// bytes. A player following the balancer sees no end tag, a discontinuity, a
// media sequence that never goes back, and only run B's bytes after the restart,
// through the node that stored run A's seg_00000.ts (and restarted in between, so
// run A's chunks come from its disk store) and straight from origin.
#include <doctest/doctest.h>

#include <cstdio>
#include <map>
#include <set>
#include <thread>

#include "support/venue_stack.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

std::string segment_name(uint64_t n) {
  char name[32];
  std::snprintf(name, sizeof name, "seg_%05llu.ts", static_cast<unsigned long long>(n));
  return name;
}

// Run `run`'s bytes for segment `n`: different in every run, same length.
std::string segment_bytes(char run, uint64_t n) {
  return std::string(1000, run) + "-" + segment_name(n);
}

// An encoder that wrote `written` segments lists the last three (none yet ended).
std::string encoder_playlist(uint64_t written, bool ended = false) {
  uint64_t first = written > 3 ? written - 3 : 0;
  std::string out = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:" +
                    std::to_string(first) + "\n";
  for (uint64_t n = first; n < written; ++n) out += "#EXTINF:1.0,\n" + segment_name(n) + "\n";
  if (ended) out += "#EXT-X-ENDLIST\n";
  return out;
}

struct Listed {
  uint64_t msn = 0;
  bool discontinuity = false;
  std::string link;
};

struct Copy {
  int64_t media_sequence = -1;
  bool endlist = false;
  std::vector<Listed> segments;
};

Copy read_copy(const std::string& text) {
  Copy copy;
  copy.media_sequence = media_sequence(text);
  copy.endlist = text.find("#EXT-X-ENDLIST") != std::string::npos;
  uint64_t msn = static_cast<uint64_t>(std::max<int64_t>(copy.media_sequence, 0));
  bool discontinuity = false;
  for (const auto& line : split_lines(text)) {
    if (line == "#EXT-X-DISCONTINUITY") discontinuity = true;
    if (line.empty() || line[0] == '#') continue;
    copy.segments.push_back({msn++, discontinuity, line});
    discontinuity = false;
  }
  return copy;
}

// A player: reloads the playlist, downloads every segment newer than the last
// one it has, and remembers what it got per media sequence number.
struct Player {
  Player(const BalancerProcess& b, std::string t) : balancer(b), target(std::move(t)) {}
  const BalancerProcess& balancer;
  std::string target;  // playlist target on the balancer
  int64_t last_media_sequence = -1;
  std::optional<uint64_t> last_downloaded;
  std::map<uint64_t, std::string> bytes;  // per served media sequence number
  std::map<uint64_t, std::string> links;
  std::set<uint64_t> discontinuities;
  bool saw_endlist = false;
  bool went_back = false;
  bool link_changed = false;

  // One reload; returns the numbers downloaded.
  std::vector<uint64_t> reload() {
    std::vector<uint64_t> got;
    auto r = balancer.get(target);
    REQUIRE(r.status == 200);
    Copy copy = read_copy(r.body);
    saw_endlist = saw_endlist || copy.endlist;
    went_back = went_back || copy.media_sequence < last_media_sequence;
    last_media_sequence = copy.media_sequence;
    for (const Listed& s : copy.segments) {
      if (s.discontinuity) discontinuities.insert(s.msn);
      // The signature renews every second: the link without it must stay the same.
      std::string unsigned_link = s.link.substr(0, s.link.find("bexp="));
      auto [it, inserted] = links.emplace(s.msn, unsigned_link);
      link_changed = link_changed || it->second != unsigned_link;
      if (last_downloaded && s.msn <= *last_downloaded) continue;
      auto chunk = http_get(s.link);
      REQUIRE_MESSAGE(chunk.status == 200, s.link);
      bytes[s.msn] = chunk.body;
      last_downloaded = s.msn;
      got.push_back(s.msn);
    }
    return got;
  }
};

struct Stack : VenueStack {
  Stack() {
    write_file(dir.file("root/live/index.m3u8"), encoder_playlist(0));
    start(channels_json({channel_json("demo", "/live/index.m3u8")}));
  }
  // The encoder writes segment n of `run` and then its playlist.
  void write_segment(char run, uint64_t n) {
    write_file(dir.file("root/live/" + segment_name(n)), segment_bytes(run, n));
    write_file(dir.file("root/live/index.m3u8"), encoder_playlist(n + 1));
  }
};

// Reloads every 50 ms until `done` or `limit`; returns whether `done` held.
template <class Done>
bool follow_until(Player& player, std::chrono::milliseconds limit, Done done) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    player.reload();
    if (done()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

}  // namespace

TEST_CASE(
    "a live encoder that ends and restarts with the same names keeps players going on run B's "
    "bytes") {
  Stack s;
  Player via_node{*s.balancer, "/hls/demo/live/index.m3u8?viewer=venue&cache=venue-a"};
  Player direct{*s.balancer, "/hls/demo/live/index.m3u8?viewer=outside"};

  // Run A: six segments, each downloaded through the node (which keeps seg_00000.ts of run A).
  for (uint64_t n = 0; n < 6; ++n) {
    s.write_segment('A', n);
    CHECK(follow_until(via_node, 3s, [&] { return via_node.last_downloaded == n; }));
    CHECK(follow_until(direct, 3s, [&] { return direct.last_downloaded == n; }));
  }
  for (uint64_t n = 0; n < 6; ++n) CHECK(via_node.bytes[n] == segment_bytes('A', n));
  // Run A ends. The end tag is held back: players keep reloading.
  write_file(s.dir.file("root/live/index.m3u8"), encoder_playlist(6, true));
  CHECK(follow_until(via_node, 3s, [&] {
    return metric_value(s.balancer->metrics(), "balancer_live_ends_held_total") == 1;
  }));
  via_node.reload();
  direct.reload();
  CHECK_FALSE(via_node.saw_endlist);
  CHECK_FALSE(direct.saw_endlist);
  // The node restarts between the runs: run A's chunks come back from its disk store.
  REQUIRE(s.node->wait_disk_settled(6));
  s.node->stop();
  s.node->start();
  REQUIRE(s.balancer->wait_cache_usable("venue-a", true, 10s));

  // Run B restarts the numbering with the same names and other bytes.
  write_file(s.dir.file("root/live/seg_00000.ts"), segment_bytes('B', 0));
  const auto restarted = std::chrono::steady_clock::now();
  write_file(s.dir.file("root/live/index.m3u8"), encoder_playlist(1));
  REQUIRE(follow_until(via_node, 5s, [&] { return via_node.last_downloaded > 5u; }));
  const double first_new_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - restarted)
          .count();
  REQUIRE(follow_until(direct, 5s, [&] { return direct.last_downloaded > 5u; }));
  MESSAGE("restart to run B's first segment downloaded by a player (reloading every 50 ms): "
          << first_new_ms << " ms");
  CHECK(first_new_ms < 1500);

  for (uint64_t n = 1; n < 5; ++n) {
    s.write_segment('B', n);
    CHECK(follow_until(via_node, 3s, [&] { return via_node.last_downloaded == 6 + n; }));
    CHECK(follow_until(direct, 3s, [&] { return direct.last_downloaded == 6 + n; }));
  }
  for (Player* p : {&via_node, &direct}) {
    CAPTURE(p->target);
    CHECK_FALSE(p->saw_endlist);
    CHECK_FALSE(p->went_back);
    CHECK_FALSE(p->link_changed);
    CHECK(p->discontinuities.count(6) == 1);
    // Every number from 0 to 10, once: run A's six, then run B's five, with run B's bytes.
    REQUIRE(p->bytes.size() == 11);
    for (uint64_t n = 0; n < 6; ++n) CHECK(p->bytes[n] == segment_bytes('A', n));
    for (uint64_t n = 0; n < 5; ++n) CHECK(p->bytes[6 + n] == segment_bytes('B', n));
  }
  // The node still holds run A's seg_00000.ts under its plain name (from its disk: origin has
  // run B's bytes under that name now): run B's link is another key.
  CHECK(http_get(s.node->signed_url("/o/demo/live/seg_00000.ts")).body == segment_bytes('A', 0));
  CHECK(via_node.links[6].find("seg_00000.ts?brun=") != std::string::npos);
  CHECK(metric_value(s.balancer->metrics(), "balancer_live_restarts_total") == 1);

  // The operator marks the channel finished: the next end tag reaches players at once.
  s.balancer->write_channels(
      channels_json({R"({"id":"demo","origin":"demo","source":"/live/index.m3u8",)"
                     R"("free":true,"finished":true})"}));
  REQUIRE(s.balancer->reload());
  write_file(s.dir.file("root/live/index.m3u8"), encoder_playlist(5, true));
  CHECK(follow_until(via_node, 3s, [&] { return via_node.saw_endlist; }));
}

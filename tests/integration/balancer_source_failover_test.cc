// A channel with two sources, end to end: two test origins, each fed by an "encoder" the test
// drives (one segment per target duration of 1 s, on a shared clock: the same program dates,
// each with its own names and numbers), a real cache node that knows both origins, and the real
// balancer. The preferred source is killed, answers 503, stops moving (200, the same playlist),
// freezes (SIGSTOP) or restarts at segment 0; players following the balancer (through the node
// and straight to origin) see one timeline: numbers never go back, a number always names the
// same chunk, one discontinuity where the backup's segments begin, and the backup's bytes from
// there, with no media repeated or skipped.
#include <doctest/doctest.h>

#include <signal.h>

#include <functional>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "hls/program_date.h"
#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"
#include "support/text_lines.h"

using namespace balancer::test;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr int64_t kEpochMs = 1'790'000'000'000;  // where segment 0 starts on the shared clock
constexpr uint64_t kWindow = 4;                  // segments an encoder lists

// One encoder and packager: writes segment n (on the shared clock) under its own name and
// number, then its playlist of the newest kWindow.
struct Encoder {
  const TempDir& dir;
  std::string root;                     // the origin's files
  std::string name;                     // "a" or "b": in segment names and bytes
  uint64_t base = 0;                    // its number for segment 0
  uint64_t written = 0;                 // segments written (on the shared clock: 0..written-1)
  uint64_t restarted_at = 0;            // a restart numbers from 0 again from this segment on
  bool keyed = false;                   // its playlist names an AES-128 key of its own, key.bin
  std::string playlist = "index.m3u8";  // its playlist's name under live/ (one rendition)

  uint64_t number(uint64_t n) const {
    return n >= restarted_at ? base + n - restarted_at : base + n;
  }
  std::string file_of(uint64_t n) const {
    return name + std::to_string(number(n)) + (restarted_at > 0 && n >= restarted_at ? "r" : "") +
           ".ts";
  }
  static std::string key_of(const std::string& name) { return std::string(16, name[0]); }
  static std::string bytes_of(const std::string& name, uint64_t n) {
    return std::string(500, name[0]) + "-" + std::to_string(n);
  }
  void write(uint64_t n) {
    write_file(dir.file(root + "/live/" + file_of(n)), bytes_of(name, n));
    written = n + 1;
    const uint64_t first = std::max(written > kWindow ? written - kWindow : 0, restarted_at);
    std::string out = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:" +
                      std::to_string(number(first)) + "\n#EXT-X-PROGRAM-DATE-TIME:" +
                      hls::format_program_date_ms(kEpochMs + static_cast<int64_t>(first) * 1000) +
                      "\n";
    if (keyed) {
      write_file(dir.file(root + "/live/key.bin"), key_of(name));
      out += "#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin\"\n";
    }
    for (uint64_t i = first; i < written; ++i) out += "#EXTINF:1.0,\n" + file_of(i) + "\n";
    write_file(dir.file(root + "/live/" + playlist), out);
  }
};

// A player: reloads the playlist, downloads every segment newer than the last one it has, and
// checks what a player would trip on.
struct Player {
  Player(const BalancerProcess& b, std::string t) : balancer(b), target(std::move(t)) {}
  const BalancerProcess& balancer;
  std::string target;
  int64_t last_media_sequence = -1;
  std::optional<uint64_t> last_downloaded;
  std::map<uint64_t, std::string> bytes;  // per served number
  std::map<uint64_t, std::string> links;  // per served number, without the signature
  std::map<uint64_t, uint64_t> discontinuity_numbers;
  std::set<uint64_t> tagged;
  bool went_back = false, link_changed = false, number_moved = false, saw_endlist = false;
  // A chunk that fails is asked again at the next reload, as a player retries, and skipped
  // after kChunkTries; without this, a failed chunk fails the test.
  bool chunk_failures_allowed = false;
  static constexpr int kChunkTries = 3;
  std::map<uint64_t, int> chunk_failures;  // per number

  void reload() {
    auto r = balancer.get(target);
    REQUIRE_MESSAGE(r.status == 200, r.body);
    const int64_t sequence = media_sequence(r.body);
    went_back = went_back || sequence < last_media_sequence;
    last_media_sequence = sequence;
    saw_endlist = saw_endlist || r.body.find("#EXT-X-ENDLIST") != std::string::npos;
    uint64_t msn = static_cast<uint64_t>(std::max<int64_t>(sequence, 0));
    uint64_t number = 0;
    bool discontinuity = false;
    for (const std::string& line : split_lines(r.body)) {
      if (line.starts_with("#EXT-X-DISCONTINUITY-SEQUENCE:")) number = std::stoull(line.substr(30));
      if (line == "#EXT-X-DISCONTINUITY") discontinuity = true;
      if (line.empty() || line[0] == '#') continue;
      if (discontinuity) {
        ++number;
        tagged.insert(msn);
      }
      discontinuity = false;
      const std::string link = line.substr(0, line.find("bexp="));
      auto [it, fresh] = links.emplace(msn, link);
      link_changed = link_changed || it->second != link;
      auto [d, dfresh] = discontinuity_numbers.emplace(msn, number);
      number_moved = number_moved || d->second != number;
      if (!last_downloaded || msn > *last_downloaded) {
        auto chunk = http_get(line);
        if (chunk.status != 200 && chunk_failures_allowed) {
          if (++chunk_failures[msn] < kChunkTries) return;
        } else {
          REQUIRE_MESSAGE(chunk.status == 200, line);
          bytes[msn] = chunk.body;
        }
        last_downloaded = msn;
      }
      ++msn;
    }
  }
  // Reloads every 50 ms until `done` or `limit`.
  template <class Done>
  bool follow_until(std::chrono::milliseconds limit, Done done) {
    const auto deadline = SteadyClock::now() + limit;
    while (SteadyClock::now() < deadline) {
      reload();
      if (done()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }
  bool has(uint64_t msn) const { return last_downloaded && *last_downloaded >= msn; }
};

struct FailoverStack {
  explicit FailoverStack(const std::string& failover = "{\"failback\":\"manual\"}",
                         std::vector<std::string> settings = {},
                         const std::string& source = "/live/index.m3u8",
                         const std::vector<std::string>& origins = {"demo", "backup"}) {
    a.write(0);
    b.write(0);
    origin_a = std::make_unique<TestOrigin>(serving_files(dir.file("root-a")));
    origin_b = std::make_unique<TestOrigin>(serving_files(dir.file("root-b")));
    node = std::make_unique<CacheNodeProcess>(
        dir.file("cache"), origin_a->url("/files"),
        std::vector<std::string>{"origins.backup.url=" + origin_b->url("/files")});
    balancer = std::make_unique<BalancerProcess>(
        dir, origin_a->url("/files"), channels(origins, failover, source),
        caches_json({cache_json("venue-a", "venue", node->port())}),
        with_backup(std::move(settings)));
    REQUIRE(balancer->wait_cache_usable("venue-a", true, 10s));
  }
  std::vector<std::string> with_backup(std::vector<std::string> settings) const {
    settings.push_back("origins.backup.url=" + origin_b->url("/files"));
    return settings;
  }
  // The channels file with the demo channel's sources: these origins' /live/index.m3u8, in order.
  static std::string channels(const std::vector<std::string>& origins,
                              const std::string& failover = "{\"failback\":\"manual\"}",
                              const std::string& source = "/live/index.m3u8") {
    std::string sources;
    for (const std::string& origin : origins) {
      sources += (sources.empty() ? "" : ",") + std::string("{\"origin\":\"") + origin +
                 "\",\"source\":\"" + source + "\"}";
    }
    return "{\"channels\":[{\"id\":\"demo\",\"free\":true,\"kind\":\"live\",\"sources\":[" +
           sources + "],\"failover\":" + failover + "}]}";
  }
  ~FailoverStack() {
    if (origin_a->process().pid() > 0) ::kill(origin_a->process().pid(), SIGCONT);
  }
  // Both encoders write segments up to `last` while both players follow them.
  void play_both_until(uint64_t last, std::vector<Player*> players) {
    for (uint64_t n = a.written; n <= last; ++n) {
      a.write(n);
      b.write(n);
      for (Player* p : players) CHECK(p->follow_until(3s, [&] { return p->has(n); }));
    }
  }
  // A player through the node and one straight to origin, both played up to segment `last`.
  std::pair<Player, Player> start_players(uint64_t last) {
    std::pair<Player, Player> players{
        Player{*balancer, "/hls/demo/live/index.m3u8?viewer=venue&cache=venue-a"},
        Player{*balancer, "/hls/demo/live/index.m3u8?viewer=outside"}};
    play_both_until(last, {&players.first, &players.second});
    return players;
  }
  // A player straight to origin only, played up to segment `last`.
  Player start_direct(uint64_t last) {
    Player direct{*balancer, "/hls/demo/live/index.m3u8?viewer=outside"};
    play_both_until(last, {&direct});
    return direct;
  }
  double switches(const std::string& reason) const {
    return metric_value(
               balancer->metrics(),
               "balancer_source_switches_total{channel=\"demo\",reason=\"" + reason + "\"}")
        .value_or(0);
  }

  TempDir dir;
  Encoder a{dir, "root-a", "a", 0};
  Encoder b{dir, "root-b", "b", 700};
  std::unique_ptr<TestOrigin> origin_a, origin_b;
  std::unique_ptr<CacheNodeProcess> node;
  std::unique_ptr<BalancerProcess> balancer;
};

// The backup's segments from `from` on, one per target duration, each listed to both players;
// returns the milliseconds from the first one's writing to its listing in the node player's copy.
double play_backup(FailoverStack& s, uint64_t from, uint64_t to, Player& via_node, Player& direct,
                   Encoder* also = nullptr) {
  double first_ms = -1;
  for (uint64_t n = from; n <= to; ++n) {
    const auto written = SteadyClock::now();
    s.b.write(n);
    if (also != nullptr) also->write(n);
    CHECK(via_node.follow_until(3s, [&] { return via_node.has(n); }));
    if (n == from) {
      first_ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - written).count();
    }
    CHECK(direct.follow_until(3s, [&] { return direct.has(n); }));
    std::this_thread::sleep_until(written + 1s);  // the encoder's pace
  }
  return first_ms;
}

// What every player must have seen: A's bytes up to `last_a`, then B's, one timeline.
void check_one_timeline(const Player& p, uint64_t last_a, uint64_t last) {
  CAPTURE(p.target);
  CHECK_FALSE(p.went_back);
  CHECK_FALSE(p.link_changed);
  CHECK_FALSE(p.number_moved);
  CHECK_FALSE(p.saw_endlist);
  CHECK(p.tagged == std::set<uint64_t>{last_a + 1});
  for (uint64_t n = 1; n <= last; ++n) {
    CAPTURE(n);
    REQUIRE(p.bytes.count(n) == 1);
    CHECK(p.bytes.at(n) == Encoder::bytes_of(n <= last_a ? "a" : "b", n));
  }
}

}  // namespace

TEST_CASE(
    "the preferred source killed: the backup's next segment is listed after the last one "
    "served, through the node and straight to origin") {
  FailoverStack s;
  auto [via_node, direct] = s.start_players(5);
  const auto killed = SteadyClock::now();
  s.origin_a->process().kill();
  REQUIRE(wait_until([&] { return s.switches("unreachable") == 1; }, 3s, 20ms));
  const double detect_ms =
      std::chrono::duration<double, std::milli>(SteadyClock::now() - killed).count();
  const double listed_ms = play_backup(s, 6, 9, via_node, direct);
  MESSAGE("kill to switch: " << detect_ms
                             << " ms; backup's segment written to listed: " << listed_ms << " ms");
  CHECK(detect_ms < 1000);  // one target duration
  CHECK(listed_ms < 1000);
  check_one_timeline(via_node, 5, 9);
  check_one_timeline(direct, 5, 9);
  // Through the node, the backup's chunks are fetched from the backup's origin.
  CHECK(via_node.links.at(6).find("/o/backup/live/b706.ts") != std::string::npos);
  CHECK(via_node.links.at(5).find("/o/demo/live/a5.ts") != std::string::npos);
  CHECK(metric_value(s.balancer->metrics(), "balancer_channel_active_source{channel=\"demo\"}") ==
        1);
}

TEST_CASE(
    "the preferred source's chunks fail at the node while its playlists move: the channel "
    "moves to the backup (chunk_errors), which the playlists never show") {
  FailoverStack s;
  auto [via_node, direct] = s.start_players(4);
  via_node.chunk_failures_allowed = true;
  direct.chunk_failures_allowed = true;  // A's chunks fail straight from its origin too
  REQUIRE(s.origin_a->outage(503, /*chunks_only=*/true));
  const auto failing = SteadyClock::now();
  // Both encoders go on; the player through the node asks for A's new chunks and retries them.
  std::optional<SteadyClock::time_point> switched;
  uint64_t n = 5;
  for (; n <= 8 && !switched; ++n) {
    const auto written = SteadyClock::now();
    s.a.write(n);
    s.b.write(n);
    wait_until(
        [&] {
          via_node.reload();
          if (s.switches("chunk_errors") > 0) switched = SteadyClock::now();
          return switched.has_value();
        },
        1s, 50ms);
    std::this_thread::sleep_until(written + 1s);
  }
  REQUIRE(switched);
  CHECK(s.switches("chunk_errors") == 1);
  const double detect_ms = std::chrono::duration<double, std::milli>(*switched - failing).count();
  // The backup's segments from here on play through the node.
  const uint64_t last_a = n - 1;
  play_backup(s, n, n + 2, via_node, direct);
  MESSAGE("chunks failing to switch: " << detect_ms << " ms (A's last segment listed: " << last_a
                                       << ")");
  CHECK(detect_ms < 1500);  // one and a half target durations
  CHECK(s.switches("unreachable") + s.switches("origin_error") + s.switches("stalled") == 0);
  CHECK(via_node.links.at(n).find("/o/backup/live/b" + std::to_string(700 + n) + ".ts") !=
        std::string::npos);
  for (uint64_t m = n; m <= n + 2; ++m) CHECK(via_node.bytes.at(m) == Encoder::bytes_of("b", m));
  CHECK(via_node.chunk_failures.count(5) == 1);  // A's chunk did fail through the node
  CHECK(metric_value(s.node->metrics(),
                     "cache_origin_chunk_fetches_total{origin=\"demo\",result=\"failed\"}")
            .value_or(0) >= 2);
}

TEST_CASE(
    "the preferred source answers 503, then recovers: the channel moves to the backup and, "
    "once the preferred one has been healthy for failback_after_s, back") {
  FailoverStack s("{\"failback\":\"auto\",\"failback_after_s\":2}");
  auto [via_node, direct] = s.start_players(4);
  REQUIRE(s.origin_a->outage(503));
  REQUIRE(wait_until([&] { return s.switches("origin_error") == 1; }, 3s, 20ms));
  play_backup(s, 5, 6, via_node, direct);
  // A recovers (its encoder never stopped): healthy from now on; back after 2 s.
  REQUIRE(s.origin_a->outage(0));
  for (uint64_t n = 7; n <= 11; ++n) {
    const auto written = SteadyClock::now();
    s.a.write(n);
    s.b.write(n);
    for (Player* p : {&via_node, &direct}) CHECK(p->follow_until(3s, [&] { return p->has(n); }));
    std::this_thread::sleep_until(written + 1s);
  }
  CHECK(s.switches("failback") == 1);
  for (Player* p : {&via_node, &direct}) {
    CAPTURE(p->target);
    CHECK_FALSE(p->went_back);
    CHECK_FALSE(p->link_changed);
    CHECK_FALSE(p->number_moved);
    CHECK(p->tagged.size() == 2);  // one discontinuity at each switch
    for (uint64_t n = 1; n <= 11; ++n) {
      CAPTURE(n);
      REQUIRE(p->bytes.count(n) == 1);
      const std::string& got = p->bytes.at(n);
      // The clock's segment n, from either source: nothing repeated or skipped.
      CHECK((got == Encoder::bytes_of("a", n) || got == Encoder::bytes_of("b", n)));
    }
    CHECK(p->bytes.at(11) == Encoder::bytes_of("a", 11));
  }
}

TEST_CASE(
    "the preferred source stops moving (200, the same playlist) or freezes: the backup "
    "within one and a half target durations") {
  enum class Fault { encoder_stopped, origin_stalled, frozen };
  Fault fault = Fault::encoder_stopped;
  SUBCASE("the encoder stops writing: 200, the same playlist") {}
  SUBCASE("the origin answers its last playlist while the encoder goes on") {
    fault = Fault::origin_stalled;
  }
  SUBCASE("the origin freezes (SIGSTOP)") {
    fault = Fault::frozen;
  }
  const bool freeze = fault == Fault::frozen;
  FailoverStack s;
  auto [via_node, direct] = s.start_players(4);
  if (freeze) ::kill(s.origin_a->process().pid(), SIGSTOP);
  if (fault == Fault::origin_stalled) {
    REQUIRE(s.origin_a->stall(true));
    // Its playlist as of now is the one it answers from here on.
    REQUIRE(http_get(s.origin_a->url("/files/live/index.m3u8")).status == 200);
  }
  // The backup moves on at its pace (and A's encoder too, when only its origin stalled).
  const double listed_ms =
      play_backup(s, 5, 7, via_node, direct, fault == Fault::origin_stalled ? &s.a : nullptr);
  const char* reason = "stalled";
  CHECK(s.switches(reason) == 1);
  const std::string what = freeze                           ? "frozen"
                           : fault == Fault::origin_stalled ? "stalled (origin)"
                                                            : "stalled (encoder)";
  MESSAGE(what << ": the backup's first segment listed " << listed_ms
               << " ms after it was written");
  // The stall is known 1.5 target durations after the last progress (the switch's 100 ms tick
  // and the player's 50 ms reloads on top).
  CHECK(listed_ms < 1700);
  check_one_timeline(via_node, 4, 7);
  check_one_timeline(direct, 4, 7);
  if (freeze) ::kill(s.origin_a->process().pid(), SIGCONT);
}

TEST_CASE(
    "the preferred source restarts at segment 0: the channel moves to the backup instead "
    "of continuing the restart") {
  FailoverStack s;
  auto [via_node, direct] = s.start_players(5);
  s.a.restarted_at = 6;
  s.a.write(6);  // A's number 0 again
  REQUIRE(wait_until([&] { return s.switches("went_back") == 1; }, 3s, 20ms));
  play_backup(s, 6, 8, via_node, direct);
  check_one_timeline(via_node, 5, 8);
  check_one_timeline(direct, 5, 8);
}

TEST_CASE(
    "the operator moves a channel to a source and back with one request each; bad requests "
    "change nothing") {
  FailoverStack s;
  Player direct = s.start_direct(3);
  auto post = [&](const std::string& query) {
    return http_request("POST", s.balancer->url("/admin/sources" + query));
  };
  check_json_error(post("?channel=demo&source=7"), 400, "bad_request");
  check_json_error(post("?channel=nope&source=1"), 404, "unknown_channel");
  check_json_error(post("?channel=demo&source=one"), 400, "bad_request");
  CHECK(s.switches("operator") == 0);

  HttpResponse moved = post("?channel=demo&source=1");
  REQUIRE(moved.status == 200);
  CHECK(moved.body.find("\"demo\":{\"active\":1,\"forced\":1") != std::string::npos);
  s.play_both_until(5, {&direct});
  // "auto" hands the choice back to health; with failback "manual" the channel stays.
  REQUIRE(post("?channel=demo&source=auto").status == 200);
  s.play_both_until(6, {&direct});
  REQUIRE(post("?channel=demo&source=0").status == 200);
  s.play_both_until(9, {&direct});
  CHECK(s.switches("operator") == 2);
  CHECK(metric_sum(s.balancer->metrics(), "balancer_source_switches_total") == 2);
  const std::string board = s.balancer->get("/admin/sources").body;
  CHECK(board.find("\"demo\":{\"active\":0,\"forced\":0") != std::string::npos);
  CHECK(board.find("{\"origin\":\"backup\",\"known\":true,\"healthy\":true") != std::string::npos);
  CHECK_FALSE(direct.went_back);
  CHECK_FALSE(direct.link_changed);
  CHECK_FALSE(direct.number_moved);
  CHECK(direct.tagged.size() == 2);
  for (uint64_t n = 1; n <= 9; ++n) {
    CAPTURE(n);
    REQUIRE(direct.bytes.count(n) == 1);
    const std::string& got = direct.bytes.at(n);
    CHECK((got == Encoder::bytes_of("a", n) || got == Encoder::bytes_of("b", n)));
  }
  CHECK(direct.bytes.at(9) == Encoder::bytes_of("a", 9));
  CHECK(s.balancer->get("/admin/status").body.find("\"sources\":{\"demo\":") != std::string::npos);

  // A source that is not healthy cannot be chosen: the viewers stay where they are.
  s.origin_b->process().kill();
  REQUIRE(wait_until(
      [&] {
        return s.balancer->get("/admin/sources")
                   .body.find(
                       "\"origin\":\"backup\",\"known\":true,"
                       "\"healthy\":false") != std::string::npos;
      },
      5s, 50ms));
  check_json_error(post("?channel=demo&source=1"), 409, "source_unhealthy");
  CHECK(s.balancer->get("/admin/sources").body.find("\"demo\":{\"active\":0") != std::string::npos);
  CHECK(s.switches("operator") == 2);
}

namespace {

// A channel of two renditions (index.m3u8 and high.m3u8 in its master) on both sources, with a
// player of each, for viewers that come and go.
struct TwoRenditions {
  explicit TwoRenditions(FailoverStack& stack) : s(stack) {
    for (const char* root : {"root-a", "root-b"}) {
      write_file(s.dir.file(std::string(root) + "/live/master.m3u8"),
                 "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nindex.m3u8\n"
                 "#EXT-X-STREAM-INF:BANDWIDTH=2400000\nhigh.m3u8\n");
    }
    a_high.playlist = b_high.playlist = "high.m3u8";
    a_high.write(0);
    b_high.write(0);
    REQUIRE(s.balancer->get("/hls/demo/live/master.m3u8?viewer=outside").status == 200);
  }
  // Segments `from`..`to` at the encoders' pace, each followed by `players`. `act` (an operator's
  // request) is made after the first segment, again every 100 ms between segments until it
  // succeeds, while the encoders go on: sources that stop moving while the test waits would
  // stall, and a stalled source is refused.
  void play(uint64_t from, uint64_t to, const std::vector<Player*>& players,
            const std::function<bool()>& act = {}) {
    bool acted = !act;
    for (uint64_t n = from; n <= to; ++n) {
      const auto written = SteadyClock::now();
      for (Encoder* e : {&s.a, &s.b, &a_high, &b_high}) e->write(n);
      for (Player* p : players) CHECK(p->follow_until(3s, [&] { return p->has(n); }));
      while (!acted && SteadyClock::now() + 100ms < written + 1s) {
        acted = act();
        if (!acted) std::this_thread::sleep_for(100ms);
      }
      std::this_thread::sleep_until(written + 1s);
    }
    REQUIRE(acted);
  }
  // Every number both players were given names the same moment on the shared clock, in the same
  // discontinuity; neither saw a number go back or change.
  void check_agree(size_t at_least) const {
    for (const Player* p : {&low, &high}) {
      CAPTURE(p->target);
      CHECK_FALSE(p->went_back);
      CHECK_FALSE(p->link_changed);
      CHECK_FALSE(p->number_moved);
    }
    size_t compared = 0;
    for (const auto& [msn, bytes] : high.bytes) {
      CAPTURE(msn);
      REQUIRE(low.bytes.count(msn) == 1);
      const std::string& other = low.bytes.at(msn);
      CHECK(bytes.substr(bytes.find('-')) == other.substr(other.find('-')));
      ++compared;
    }
    for (const auto& [msn, number] : high.discontinuity_numbers) {
      CAPTURE(msn);
      if (low.discontinuity_numbers.count(msn)) CHECK(number == low.discontinuity_numbers.at(msn));
    }
    CHECK(compared >= at_least);
  }

  FailoverStack& s;
  Encoder a_high{s.dir, "root-a", "ah", 0};
  Encoder b_high{s.dir, "root-b", "bh", 700};
  Player low{*s.balancer, "/hls/demo/live/index.m3u8?viewer=outside"};
  Player high{*s.balancer, "/hls/demo/live/high.m3u8?viewer=outside"};
};

}  // namespace

TEST_CASE(
    "a rendition nobody watched through two switches agrees with the watched one on numbers, "
    "discontinuities and media when a viewer comes back to it") {
  // A copy with no viewer of its own would stop being refreshed after live_idle_s.
  FailoverStack s("{\"failback\":\"manual\"}", {"playlists.live_idle_s=1"}, "/live/master.m3u8");
  TwoRenditions r(s);
  // The operator moves the channel to `source`: refused (409) while it is not known healthy.
  auto choose = [&](int source) {
    return [&s, source] {
      const std::string query = "?channel=demo&source=" + std::to_string(source);
      return http_request("POST", s.balancer->url("/admin/sources" + query)).status == 200;
    };
  };
  r.play(1, 3, {&r.low, &r.high});
  // Nobody watches for a while (every copy's refresh stops); low's viewer comes back, the channel
  // moves to B while only low plays, then high's viewer comes back.
  r.play(4, 5, {});
  r.play(6, 7, {&r.low});
  r.play(8, 9, {&r.low}, choose(1));
  r.play(10, 11, {&r.low, &r.high});
  // High's viewer leaves again; the channel moves back to A while only low plays.
  r.play(12, 14, {&r.low});
  r.play(15, 17, {&r.low}, choose(0));
  r.play(18, 20, {&r.low, &r.high});
  CHECK(s.switches("operator") == 2);
  CHECK(r.low.tagged.size() == 2);
  r.check_agree(8);
  CHECK(r.high.bytes.at(20) == Encoder::bytes_of("a", 20));
}

TEST_CASE(
    "one source restarting at 0 while only one rendition is watched: the other, when a viewer "
    "comes back to it, agrees on numbers, discontinuities and media") {
  FailoverStack s("{\"failback\":\"manual\"}", {"playlists.live_idle_s=1"}, "/live/master.m3u8",
                  {"demo"});
  TwoRenditions r(s);
  r.play(1, 3, {&r.low, &r.high});
  r.play(4, 6, {&r.low});
  // The encoder restarts (both renditions number from 0 again, with new names).
  r.s.a.restarted_at = r.a_high.restarted_at = 7;
  r.play(7, 9, {&r.low});
  r.play(10, 12, {&r.low, &r.high});
  CHECK(r.low.tagged == std::set<uint64_t>{7});
  r.check_agree(3);
  CHECK(r.high.bytes.at(12) == Encoder::bytes_of("a", 12));
}

TEST_CASE(
    "no viewer request moves a channel: blocking reloads far ahead, playlists the source does "
    "not have, traversal and the backup's own names leave the preferred source active") {
  FailoverStack s;
  Player direct = s.start_direct(3);
  // As the player asks (its viewer query), so each reaches the channel's playlists.
  const std::vector<std::string> hostile{
      "/hls/demo/live/index.m3u8?viewer=outside&_HLS_msn=999999",
      "/hls/demo/live/index.m3u8?viewer=outside&_HLS_msn=0&_HLS_part=9",
      "/hls/demo/live/index.m3u8?viewer=outside&_HLS_skip=YES",
      "/hls/demo/live/missing.m3u8?viewer=outside",
      "/hls/demo/live/b702.ts?viewer=outside",
      "/hls/demo/../backup/live/index.m3u8?viewer=outside",
      "/hls/demo/live/%2e%2e/%2e%2e/index.m3u8?viewer=outside",
      "/hls/demo/o/backup/live/index.m3u8?viewer=outside",
      "/hls/demo/live/index.m3u8?viewer=outside&source=1",
  };
  // Each asked several times in a row, as a fault needs two answers in a row.
  for (int round = 0; round < 3; ++round) {
    for (const std::string& target : hostile) {
      CAPTURE(target);
      const HttpResponse r = s.balancer->get(target);
      CHECK(r.status < 500);
    }
  }
  s.play_both_until(6, {&direct});
  CHECK(metric_sum(s.balancer->metrics(), "balancer_source_switches_total") == 0);
  CHECK(s.balancer->get("/admin/sources").body.find("\"demo\":{\"active\":0") != std::string::npos);
  CHECK(direct.tagged.empty());
  CHECK(direct.bytes.at(6) == Encoder::bytes_of("a", 6));
}

TEST_CASE(
    "each source's key comes from its own origin: after the preferred one dies, the key the "
    "backup's playlist names is the backup's") {
  FailoverStack s;
  s.a.keyed = s.b.keyed = true;
  Player viewer{*s.balancer, "/hls/demo/live/index.m3u8?viewer=venue&cache=venue-a"};
  Player direct{*s.balancer, "/hls/demo/live/index.m3u8?viewer=outside"};
  // The key link of the viewer's newest copy, fetched as a player would.
  auto key_now = [&] {
    const std::string body = s.balancer->get(viewer.target).body;
    const size_t at = body.rfind("#EXT-X-KEY:");
    REQUIRE(at != std::string::npos);
    const size_t uri = body.find("URI=\"", at) + 5;
    const std::string link = body.substr(uri, body.find('"', uri) - uri);
    auto r = http_get(link.starts_with("http") ? link : s.balancer->url(link));
    REQUIRE_MESSAGE(r.status == 200, link << " " << r.body);
    return r.body;
  };
  s.play_both_until(3, {&viewer, &direct});
  CHECK(key_now() == Encoder::key_of("a"));
  s.origin_a->process().kill();
  REQUIRE(wait_until([&] { return s.switches("unreachable") == 1; }, 3s, 20ms));
  play_backup(s, 4, 6, viewer, direct);
  CHECK(key_now() == Encoder::key_of("b"));
  // A key link naming an origin that is no source of the channel is refused.
  auto forged = s.balancer->get("/key/demo/live/key.bin?bsrc=elsewhere&viewer=venue");
  CHECK(forged.status == 404);
}

TEST_CASE(
    "a reload that changes a channel's sources moves its viewers to the new one in the same "
    "timeline: nobody dropped, numbers continued, one discontinuity") {
  FailoverStack s;
  auto [via_node, direct] = s.start_players(5);
  // The backup made the preferred source (the same names on both: the viewers' names stay).
  s.balancer->write_channels(FailoverStack::channels({"backup", "demo"}));
  REQUIRE(s.balancer->reload("ok"));
  // The first copies after the reload: the new source has nothing past segment 5 yet, so the
  // viewers keep what was served.
  via_node.reload();
  direct.reload();
  // Both encoders go on; the viewers get B's segments from 6 on.
  play_backup(s, 6, 9, via_node, direct, &s.a);
  check_one_timeline(via_node, 5, 9);
  check_one_timeline(direct, 5, 9);
  CHECK(via_node.links.at(6).find("/o/backup/live/b706.ts") != std::string::npos);
  // A reload is the operator's choice, not a failure: no switch is counted by a reason.
  CHECK(metric_sum(s.balancer->metrics(), "balancer_source_switches_total") == 0);
}

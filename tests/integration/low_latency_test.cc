// A Low-Latency HLS stream end to end with real processes: ll_origin publishing CMAF parts
// that ffmpeg encoded, a cache node, the balancer. A player loop as hls.js and Media3 run one
// (blocking reloads for the hinted part, each new part fetched through the node) gets every
// part, sees the same URI for a part in every playlist, and is a fraction of a second behind
// live; a crowd waiting on the same part costs the origin one blocking request and one part
// fetch.
#include <doctest/doctest.h>

#include <ctime>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"
#include "support/fault_support.h"
#include "support/herd.h"
#include "support/ll_origin_fixture.h"
#include "support/ll_stack_fixture.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

double wall_now_s() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<double>(now.tv_sec) + now.tv_nsec / 1e9;
}

double parse_pdt(const std::string& value) {
  tm t{};
  if (strptime(value.c_str(), "%Y-%m-%dT%H:%M:%S", &t) == nullptr) return 0;
  return static_cast<double>(timegm(&t)) + std::stoi(value.substr(20, 3)) / 1000.0;
}

struct PartLine {
  std::string uri;
  double duration = 0;
};

// What a player reads of one media playlist: its parts (in order), the hint, and when the
// newest part ends on the wall clock (the last segment's PDT plus what follows it).
struct LowLatencyView {
  std::vector<PartLine> parts;
  std::string hint;
  double newest_end_s = 0;
};

LowLatencyView read_view(const std::string& playlist) {
  LowLatencyView view;
  static const std::regex part(R"re(#EXT-X-PART:DURATION=([0-9.]+),URI="([^"]+)")re");
  static const std::regex hint(R"re(#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)")re");
  double pdt = 0, after_pdt = 0;
  std::istringstream lines(playlist);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (line.rfind("#EXT-X-PROGRAM-DATE-TIME:", 0) == 0) {
      pdt = parse_pdt(line.substr(25));
      after_pdt = 0;
    } else if (std::regex_search(line, m, part)) {
      view.parts.push_back({m[2], std::stod(m[1])});
      after_pdt += std::stod(m[1]);
    } else if (line.rfind("#EXTINF:", 0) == 0) {
      after_pdt = std::stod(line.substr(8));  // the segment's parts add up to it
    } else if (std::regex_search(line, m, hint)) {
      view.hint = m[1];
    }
  }
  view.newest_end_s = pdt + after_pdt;
  return view;
}

// "…/seg12.3.m4s?bexp=…" → {12, 3}.
std::optional<std::pair<uint64_t, uint64_t>> part_number(const std::string& uri) {
  static const std::regex name(R"re(seg([0-9]+)\.([0-9]+)\.m4s)re");
  std::smatch m;
  if (!std::regex_search(uri, m, name)) return std::nullopt;
  return std::pair<uint64_t, uint64_t>{std::stoull(m[1]), std::stoull(m[2])};
}

#define CAPTURE_STATUS(c) MESSAGE("first client: status " << (c).status << " " << (c).error)

std::string path_of(const std::string& uri) {
  const size_t host = uri.find("://");
  const size_t path = uri.find('/', host == std::string::npos ? 0 : host + 3);
  return uri.substr(path, uri.find('?') - path);
}

}  // namespace

TEST_CASE(
    "LL-HLS end to end: every part through balancer and node, stable URIs, a fraction of a second "
    "behind live") {
  SKIP_WITHOUT_FFMPEG();
  LlStack stack(low_and_high(), 2);
  auto& [dir, origin, node, balancer] = stack;

  auto master = balancer.get("/hls/ll/master.m3u8?cache=venue-a&viewer=ll1");
  REQUIRE(master.status == 200);
  // A steering player on the node's pathway (Media3, hls.js): its variants carry the pathway.
  std::string variant, sibling;
  for (const std::string& uri : uri_lines(master.body)) {
    if (uri.find("pathway=venue-a") == std::string::npos) continue;
    (uri.find("/low/") != std::string::npos ? variant : sibling) = uri;
  }
  REQUIRE(variant.find("/hls/ll/low/index.m3u8?") == 0);
  REQUIRE(sibling.find("/hls/ll/high/index.m3u8?") == 0);
  static const std::regex report(R"re(#EXT-X-RENDITION-REPORT:URI="([^"]+)")re");

  // The player: a blocking reload for the hinted part, then the new parts through the node.
  std::map<std::string, std::string> uri_by_part;  // part path → the URI first listed
  std::vector<double> behind_live_s;
  size_t parts_fetched = 0, changed_uris = 0;
  std::string next_query;
  const auto until = Clock::now() + 6s;
  for (int round = 0; round < 200 && Clock::now() < until; ++round) {
    auto media = balancer.get(variant + next_query);
    REQUIRE(media.status == 200);
    const double received = wall_now_s();
    const LowLatencyView view = read_view(media.body);
    REQUIRE(!view.parts.empty());
    REQUIRE(!view.hint.empty());
    behind_live_s.push_back(received - view.newest_end_s);
    // Media3's rules: the hint is a part; the sibling's report names exactly the URI the
    // master lists for it on this pathway.
    CHECK(media.body.find("#EXT-X-PRELOAD-HINT:TYPE=PART,") != std::string::npos);
    // A part's and the hint's node links name the part target (the node then remembers a
    // hinted part's 404 for at most that long).
    CHECK(view.hint.find("bpt=") != std::string::npos);
    CHECK(view.parts.back().uri.find("bpt=") != std::string::npos);
    std::smatch reported;
    REQUIRE(std::regex_search(media.body, reported, report));
    CHECK(reported[1] == sibling);
    for (const PartLine& part : view.parts) {
      const std::string path = path_of(part.uri);
      auto known = uri_by_part.find(path);
      if (known != uri_by_part.end()) {
        if (known->second != part.uri) ++changed_uris;
        continue;
      }
      uri_by_part[path] = part.uri;
      if (round == 0) continue;  // the player starts at the live edge
      auto bytes = http_get(part.uri);
      CHECK(bytes.status == 200);
      CHECK(bytes.body.substr(4, 4) == "moof");
      ++parts_fetched;
    }
    // The hint names the next part: ask for the playlist that lists it.
    auto next = part_number(view.hint);
    REQUIRE(next.has_value());
    next_query =
        "&_HLS_msn=" + std::to_string(next->first) + "&_HLS_part=" + std::to_string(next->second);
  }
  std::sort(behind_live_s.begin(), behind_live_s.end());
  const double p50 = behind_live_s[behind_live_s.size() / 2];
  const double worst = behind_live_s.back();
  MESSAGE("LL-HLS through balancer and node: "
          << parts_fetched << " parts in 6 s, newest part behind live p50 " << p50 * 1000
          << " ms, max " << worst * 1000 << " ms");
  CHECK(parts_fetched >= 15);  // about four a second
  CHECK(changed_uris == 0);
  CHECK(p50 < 0.5);
  // The balancer says how old the newest part was as it served each playlist.
  const std::string metrics = balancer.metrics();
  const double count =
      metric_value(metrics, "balancer_playlist_newest_age_seconds_count{channel=\"ll\"}")
          .value_or(0);
  const double sum =
      metric_value(metrics, "balancer_playlist_newest_age_seconds_sum{channel=\"ll\"}")
          .value_or(1e9);
  CHECK(count >= 20);
  CHECK(sum / count < 0.5);
  // Each part the player fetched reached the origin once (the node's fetch).
  for (const auto& [path, uri] : uri_by_part) {
    const std::string origin_path = path.substr(path.find("/low/"));
    CHECK(origin.count(origin_path) <= 1);
  }

  // A crowd on the part the player's last playlist hinted: one blocking request upstream (at
  // most two: see below), then one origin fetch of the part however many fetch it.
  auto hinted = part_number(read_view(balancer.get(variant + next_query).body).hint);
  REQUIRE(hinted.has_value());
  const uint64_t msn = hinted->first;
  const std::string wait_for =
      "&_HLS_msn=" + std::to_string(msn) + "&_HLS_part=" + std::to_string(hinted->second);
  HerdOptions herd;
  herd.url = balancer.url(variant + wait_for);
  herd.clients = 50;
  herd.keep_bodies = true;
  HerdResult waited = run_herd(herd);
  REQUIRE(waited.setup_error.empty());
  CHECK(waited.ok_count() == 50);
  if (!waited.clients.empty() && !waited.clients[0].ok()) CAPTURE_STATUS(waited.clients[0]);
  // The balancer's follow of that part, which the crowd joins; had the crowd come between two
  // follows, one request of its own as well.
  const int64_t upstream = origin.count("/low/index.m3u8?" + wait_for.substr(1));
  CHECK(upstream >= 1);
  CHECK(upstream <= 2);
  REQUIRE(waited.clients[0].ok());
  const LowLatencyView view = read_view(waited.clients[0].body);
  const auto listed = std::find_if(view.parts.begin(), view.parts.end(), [&](const PartLine& p) {
    return p.uri.find("/seg" + std::to_string(msn) + "." + std::to_string(hinted->second) +
                      ".m4s") != std::string::npos;
  });
  REQUIRE(listed != view.parts.end());
  HerdOptions fetchers;
  fetchers.url = listed->uri;
  fetchers.clients = 50;
  HerdResult fetched = run_herd(fetchers);
  CHECK(fetched.ok_count() == 50);
  CHECK(fetched.hash_counts().size() == 1);
  CHECK(origin.count("/low/seg" + std::to_string(msn) + "." + std::to_string(hinted->second) +
                     ".m4s") == 1);
}

TEST_CASE(
    "LL-HLS: with live prefetch the balancer names each new hint to the node before its viewers "
    "ask; each "
    "part still reaches the origin once") {
  SKIP_WITHOUT_FFMPEG();
  const std::string key = "prefetch-key-integration-0001";
  LlStack stack(low_and_high(), 2, {"prefetch.key=\"" + key + "\""}, 0,
                {"prefetch.keys=[\"" + key + "\"]"});
  auto& [dir, origin, node, balancer] = stack;
  const std::string variant = "/hls/ll/low/index.m3u8?cache=venue-a&viewer=ll-prefetch";
  // A player: a blocking reload for the hinted part, then each new part through the node.
  std::map<std::string, std::string> parts;  // origin path → the node link, of the parts played
  std::set<std::string> listed;
  std::string next_query;
  const auto until = Clock::now() + 4s;
  for (int round = 0; round < 100 && Clock::now() < until; ++round) {
    auto media = balancer.get(variant + next_query);
    REQUIRE(media.status == 200);
    const LowLatencyView view = read_view(media.body);
    REQUIRE(!view.hint.empty());
    for (const PartLine& part : view.parts) {
      const std::string path = path_of(part.uri);
      const std::string origin_path = path.substr(path.find("/low/"));
      if (listed.count(origin_path)) continue;
      listed.insert(origin_path);
      if (round == 0) continue;  // the player starts at the live edge
      parts[origin_path] = part.uri;
      CHECK(http_get(part.uri).status == 200);
    }
    auto next = part_number(view.hint);
    REQUIRE(next.has_value());
    next_query =
        "&_HLS_msn=" + std::to_string(next->first) + "&_HLS_part=" + std::to_string(next->second);
  }
  REQUIRE(parts.size() >= 10);
  // Each hint is named once it is new (four a second), not only each new segment (one).
  const double named =
      metric_value(balancer.metrics(), "balancer_prefetch_chunks_total").value_or(0);
  MESSAGE(parts.size() << " parts played, " << named << " chunks named for prefetch");
  CHECK(named >= static_cast<double>(parts.size()));
  CHECK(metric_value(balancer.metrics(), "balancer_prefetch_requests_total{result=\"failed\"}")
            .value_or(0) == 0);
  // The node's prefetch and the player's request for the same part are one origin fetch.
  for (const auto& [path, uri] : parts) CHECK_MESSAGE(origin.count(path) == 1, path);
}

TEST_CASE(
    "LL-HLS: a plain playlist request gets origin's newest part (the balancer follows origin part "
    "by part)") {
  SKIP_WITHOUT_FFMPEG();
  LlStack stack({{"low", 300}}, 2);
  auto& [dir, origin, node, balancer] = stack;
  const std::string variant = "/hls/ll/low/index.m3u8?cache=venue-a&viewer=ll2";
  REQUIRE(balancer.get(variant).status == 200);

  // A player's first request carries no directive: it starts from what the balancer holds.
  // Periodic refreshes (every 250 ms, parts of about 0.25 s) would leave that copy a part
  // behind origin about half the time; followed, only within the moment a part appears.
  // Origin is read first, so a part published between the two reads cannot count as behind:
  // a sample is behind only when the balancer has not yet followed a part origin already had.
  auto newest_part = [](const std::string& playlist) {
    const LowLatencyView view = read_view(playlist);
    return view.parts.empty() ? std::nullopt : part_number(view.parts.back().uri);
  };
  int samples = 0, behind = 0;
  for (int i = 0; i < 30; ++i) {
    auto at_origin = http_get(origin.url("/low/index.m3u8"));
    auto served = balancer.get(variant);
    REQUIRE(served.status == 200);
    REQUIRE(at_origin.status == 200);
    auto ours = newest_part(served.body), theirs = newest_part(at_origin.body);
    REQUIRE(ours.has_value());
    REQUIRE(theirs.has_value());
    ++samples;
    if (*ours < *theirs) ++behind;
    std::this_thread::sleep_for(70ms);  // spreads the samples over the parts' cadence
  }
  MESSAGE("plain requests a part behind origin: " << behind << " of " << samples);
  // Following leaves a sample behind only for the follow's own latency (tens of ms under the
  // sanitizers); periodic refreshes would leave about 15 of 30 behind.
  CHECK(behind <= 6);
  const double follows =
      metric_value(balancer.metrics(),
                   "balancer_origin_fetches_total{resource=\"playlist\",trigger=\"follow\"}")
          .value_or(0);
  CHECK(follows >= 8);  // about four parts a second for two seconds
}

TEST_CASE(
    "LL-HLS: viewers blocked on a part past the one followed wait for the follow to reach it, with "
    "no upstream request of their own") {
  SKIP_WITHOUT_FFMPEG();
  // A channel configured live serves a copy of its own (its runs named), numbered as origin's.
  std::string kind;
  SUBCASE("channel kind automatic") {}
  SUBCASE("channel kind live") {
    kind = "live";
  }
  CAPTURE(kind);
  LlStack stack({{"low", 300}}, 2, {}, 0, {}, kind);
  auto& [dir, origin, node, balancer] = stack;
  const std::string variant = "/hls/ll/low/index.m3u8?cache=venue-a&viewer=ll4";
  REQUIRE(balancer.get(variant).status == 200);
  // Once the follow has brought a few parts, a crowd asks for the second part of the next
  // segment: about a second ahead, several parts past the one the follow waits for.
  auto follows = [&] {
    return metric_value(balancer.metrics(),
                        "balancer_origin_fetches_total{resource=\"playlist\",trigger=\"follow\"}")
        .value_or(0);
  };
  std::optional<std::pair<uint64_t, uint64_t>> hinted;
  REQUIRE(wait_until(
      [&] {
        hinted = part_number(read_view(balancer.get(variant).body).hint);
        return follows() >= 3 && hinted && hinted->second == 1;
      },
      10s, 10ms));
  const uint64_t msn = hinted->first + 1;
  const std::string wait_for = "&_HLS_msn=" + std::to_string(msn) + "&_HLS_part=1";
  HerdOptions herd;
  herd.url = balancer.url(variant + wait_for);
  herd.clients = 20;
  herd.keep_bodies = true;
  const HerdResult waited = run_herd(herd);
  REQUIRE(waited.setup_error.empty());
  CHECK(waited.ok_count() == 20);
  if (!waited.clients.empty() && !waited.clients[0].ok()) CAPTURE_STATUS(waited.clients[0]);
  for (const HerdClient& c : waited.clients) {
    if (!c.ok()) continue;
    const LowLatencyView view = read_view(c.body);
    const bool listed = std::any_of(view.parts.begin(), view.parts.end(), [&](const PartLine& p) {
      return p.uri.find("/seg" + std::to_string(msn) + ".1.m4s") != std::string::npos;
    });
    CHECK(listed);
  }
  // Origin saw that blocking reload once: the follow's, when it got there.
  CHECK(origin.count("/low/index.m3u8?" + wait_for.substr(1)) == 1);
  // They waited on the serving loop, which holds the playlist's slot (the requests above); with
  // two loops, one may not have it yet and ask the fetch loop instead.
  if (test_threads() <= 1)
    CHECK(balancer.metric("balancer_blocking_reloads_total{answered=\"here\"}") >= 1);
}

TEST_CASE(
    "LL-HLS: one viewer holds at most playlists.max_blocking_per_viewer blocking reloads; the "
    "next gets 429, another viewer is served") {
  SKIP_WITHOUT_FFMPEG();
  LlStack stack({{"low", 300}}, 2, {"playlists.max_blocking_per_viewer=5"});
  auto& [dir, origin, node, balancer] = stack;
  const std::string variant = "/hls/ll/low/index.m3u8?cache=venue-a&viewer=";
  std::optional<std::pair<uint64_t, uint64_t>> hinted;
  REQUIRE(wait_until(
      [&] {
        hinted = part_number(read_view(balancer.get(variant + "greedy").body).hint);
        return hinted.has_value();
      },
      10s, 10ms));
  // Five reloads of one viewer per loop wait on the part after the hinted one (about half a
  // second ahead), each on its own connection; the loops that take them count them.
  const std::string wait_for = "&_HLS_msn=" + std::to_string(hinted->first) +
                               "&_HLS_part=" + std::to_string(hinted->second + 1);
  std::vector<int> held;
  for (int i = 0; i < 5 * std::max(1, test_threads()) + 1; ++i) {
    const int fd = connect_local(balancer.port(), 0);
    REQUIRE(fd >= 0);
    held.push_back(fd);
    REQUIRE(send_all(
        fd, "GET " + variant + "greedy" + wait_for + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  }
  // At least one of them was refused at once: with every loop's count at five, the next one
  // cannot wait.
  REQUIRE(wait_until(
      [&] {
        return balancer.metric("balancer_errors_total{code=\"too_many_blocking_reloads\"}") >= 1;
      },
      5s, 10ms));
  // Another viewer's blocking reload is answered as usual.
  const HttpResponse other = balancer.get(variant + "patient" + wait_for);
  INFO(other.body.substr(0, 300));
  CHECK(other.status == 200);
  for (int fd : held) ::close(fd);
  // Once its reloads are answered, the greedy viewer may wait again.
  CHECK(wait_until([&] { return balancer.get(variant + "greedy" + wait_for).status == 200; }, 10s,
                   50ms));
}

TEST_CASE("measurement only (run with --no-skip): 1,000 and 10,000 viewers blocked on one part" *
          doctest::skip()) {
  SKIP_WITHOUT_FFMPEG();
  // One viewer id for the whole crowd: its cap on blocking reloads lifted.
  LlStack stack(
      {{"low", 300}}, 2,
      {"limits.per_address_exempt=[\"127.0.0.0/8\"]", "playlists.max_blocking_per_viewer=100000"});
  auto& [dir, origin, node, balancer] = stack;
  const std::string variant = "/hls/ll/low/index.m3u8?cache=venue-a&viewer=crowd";
  for (const int clients : {1000, 10000}) {
    // Wait for a segment's first part, then block on the first part of the next segment
    // (about a second ahead: time for every client to connect and be waiting).
    std::optional<std::pair<uint64_t, uint64_t>> hinted;
    REQUIRE(wait_until(
        [&] {
          hinted = part_number(read_view(balancer.get(variant).body).hint);
          return hinted && hinted->second == 1;
        },
        10s, 10ms));
    const std::string wait_for = "&_HLS_msn=" + std::to_string(hinted->first + 1) + "&_HLS_part=0";
    HerdOptions herd;
    herd.url = balancer.url(variant + wait_for);
    herd.clients = clients;
    // Players keep their connections: none is closed while the others are still being answered.
    herd.forbid_reuse = false;
    const HerdResult waited = run_herd(herd);
    REQUIRE(waited.setup_error.empty());
    std::vector<double> first_bytes;
    for (const HerdClient& c : waited.clients) {
      if (c.ok()) first_bytes.push_back(c.first_byte_ms);
    }
    std::sort(first_bytes.begin(), first_bytes.end());
    REQUIRE(!first_bytes.empty());
    const double earliest = first_bytes.front();
    auto after_earliest = [&](double q) {
      return first_bytes[std::min(first_bytes.size() - 1,
                                  static_cast<size_t>(q * first_bytes.size()))] -
             earliest;
    };
    MESSAGE(clients << " viewers blocked on the next segment's first part: " << waited.ok_count()
                    << " answered; upstream blocking requests for it: "
                    << origin.count("/low/index.m3u8?" + wait_for.substr(1)) << "; first byte "
                    << earliest << " ms after the herd started, then the rest within +"
                    << after_earliest(0.5) << " ms (p50), +" << after_earliest(0.99)
                    << " ms (p99), +" << first_bytes.back() - earliest << " ms (last)");
    CHECK(waited.ok_count() == static_cast<size_t>(clients));
  }
}

TEST_CASE(
    "LL-HLS: _HLS_skip=YES is answered with a delta update the balancer builds from its copy, "
    "never asked of origin") {
  SKIP_WITHOUT_FFMPEG();
  // CAN-SKIP-UNTIL is six target durations (2 s here): the origin's default window (18
  // one-second segments) is longer, so with 14 listed the oldest end more than 12 s before the
  // end and can be skipped.
  LlStack stack({{"low", 300}}, 14);
  auto& [dir, origin, node, balancer] = stack;
  const std::string variant = "/hls/ll/low/index.m3u8?cache=venue-a&viewer=ll3";
  const HttpResponse full = balancer.get(variant);
  REQUIRE(full.status == 200);
  REQUIRE(full.body.find("CAN-SKIP-UNTIL=") != std::string::npos);

  // A plain delta request: from the copy the balancer holds.
  const HttpResponse delta = balancer.get(variant + "&_HLS_skip=YES");
  REQUIRE(delta.status == 200);
  const int64_t skipped = skipped_segments(delta.body);
  CHECK(skipped > 0);
  CHECK(delta.body.size() < full.body.size());
  // A player merges the delta into the copy it holds: the skipped segments are the oldest of
  // that copy, the listed ones follow them, numbered on; together they are the playlist the
  // balancer serves in full, link for link.
  const int64_t held_first = media_sequence(full.body);
  const int64_t delta_first = media_sequence(delta.body);
  const std::vector<std::string> held = uri_lines(full.body);
  REQUIRE(delta_first >= held_first);
  REQUIRE(delta_first + skipped <= held_first + static_cast<int64_t>(held.size()));
  std::vector<std::string> merged(held.begin() + (delta_first - held_first),
                                  held.begin() + (delta_first - held_first + skipped));
  for (const std::string& uri : uri_lines(delta.body)) merged.push_back(uri);
  const HttpResponse now = balancer.get(variant);
  const int64_t now_first = media_sequence(now.body);
  const std::vector<std::string> now_links = uri_lines(now.body);
  int64_t compared = 0;
  for (int64_t i = 0; i < static_cast<int64_t>(merged.size()); ++i) {
    const int64_t in_now = delta_first + i - now_first;  // a segment may have come meanwhile
    if (in_now < 0 || in_now >= static_cast<int64_t>(now_links.size())) continue;
    CHECK(merged[i] == now_links[in_now]);
    ++compared;
  }
  MESSAGE("delta update: " << skipped << " segments skipped, " << compared
                           << " merged links compared with the full playlist");
  CHECK(compared >= skipped + 3);
  // Every chunk and part it lists has the link the full playlist gave it (when both list it).
  std::map<std::string, std::string> full_links;
  for (const std::string& uri : uri_lines(full.body)) full_links[path_of(uri)] = uri;
  const LowLatencyView full_view = read_view(full.body);
  for (const PartLine& part : full_view.parts) full_links[path_of(part.uri)] = part.uri;
  int shared = 0;
  std::vector<std::string> delta_links = uri_lines(delta.body);
  for (const PartLine& part : read_view(delta.body).parts) delta_links.push_back(part.uri);
  for (const std::string& uri : delta_links) {
    auto it = full_links.find(path_of(uri));
    if (it == full_links.end()) continue;
    ++shared;
    CHECK(uri == it->second);
  }
  CHECK(shared >= 3);

  // A blocking delta request for the next part waits on the balancer's follow of origin.
  auto next = part_number(read_view(delta.body).hint);
  REQUIRE(next.has_value());
  const std::string wait_for =
      "_HLS_msn=" + std::to_string(next->first) + "&_HLS_part=" + std::to_string(next->second);
  HerdOptions herd;
  herd.url = balancer.url(variant + "&" + wait_for + "&_HLS_skip=YES");
  herd.clients = 20;
  herd.keep_bodies = true;
  const HerdResult waited = run_herd(herd);
  REQUIRE(waited.setup_error.empty());
  CHECK(waited.ok_count() == 20);
  REQUIRE(waited.clients[0].ok());
  CHECK(skipped_segments(waited.clients[0].body) > 0);
  const auto listed = read_view(waited.clients[0].body).parts;
  REQUIRE(!listed.empty());
  CHECK(part_number(listed.back().uri) == next);

  // Origin never saw _HLS_skip; the part came by the balancer's follow.
  CHECK(origin.count("/low/index.m3u8?_HLS_skip=YES") == 0);
  CHECK(origin.count("/low/index.m3u8?" + wait_for + "&_HLS_skip=YES") == 0);
  const int64_t upstream = origin.count("/low/index.m3u8?" + wait_for);
  CHECK(upstream >= 1);
  CHECK(upstream <= 2);  // the follow, and one of the viewers' own had they come between two
  CHECK(balancer.metric("balancer_playlist_delta_updates_total") >= 2);
}

TEST_CASE(
    "LL-HLS, one source: an encoder starting over at 0 while its first run's names are still "
    "listed is followed at once: the numbers go on, the new run after a discontinuity") {
  SKIP_WITHOUT_FFMPEG();
  // Six segments of the first run, all still in origin's window when it starts over.
  LlStack stack({{"low", 300}}, 6);
  auto& [dir, origin, node, balancer] = stack;
  const std::string variant = "/hls/ll/low/index.m3u8?cache=venue-a&viewer=ll-restart";
  const HttpResponse before = balancer.get(variant);
  REQUIRE(before.status == 200);
  // EXT-X-MEDIA-SEQUENCE plus the segments listed after it, less one (a plain request: no skip).
  const auto last_msn = [](const std::string& playlist) {
    static const std::regex sequence(R"re(#EXT-X-MEDIA-SEQUENCE:([0-9]+))re");
    std::smatch m;
    REQUIRE(std::regex_search(playlist, m, sequence));
    uint64_t segments = 0;
    for (size_t at = playlist.find("#EXTINF:"); at != std::string::npos;
         at = playlist.find("#EXTINF:", at + 1))
      ++segments;
    REQUIRE(segments > 0);
    return std::stoull(m[1]) + segments - 1;
  };
  const uint64_t before_last = last_msn(before.body);
  REQUIRE(origin.fault("restart=1"));
  const auto restarted = std::chrono::steady_clock::now();
  // The new run's first segment is complete a second later (1 s segments); without this the
  // copy stood still until the new run reached the old numbers (six seconds here).
  std::string shown;
  const bool continued = wait_until(
      [&] {
        const HttpResponse now = balancer.get(variant);
        if (now.status != 200) return false;
        shown = now.body;
        return shown.find("#EXT-X-DISCONTINUITY\n") != std::string::npos;
      },
      5s, 50ms);
  const double after_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - restarted).count();
  MESSAGE("the new run listed " << after_s << " s after the restart");
  REQUIRE_MESSAGE(continued, shown);
  CHECK(after_s < 3.0);
  CHECK(last_msn(shown) > before_last);  // numbers never go back
}

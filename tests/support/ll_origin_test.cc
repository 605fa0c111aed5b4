// ll_origin, the low-latency HLS origin fixture, run for real on CMAF material ffmpeg makes:
// parts published at their cadence with the LL-HLS tags, blocking reloads and delta updates
// as RFC 8216bis §6.2.5 says, a hinted part held until it exists, the fault knobs.
#include <doctest/doctest.h>

#include <cmath>
#include <ctime>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <thread>

#include "support/cmaf_fragments.h"
#include "support/http_client.h"
#include "support/ll_origin_fixture.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

// Two renditions of 4 s of CMAF material in a temp dir.
struct Material {
  TempDir dir;
  std::string low = dir.file("low.mp4");
  std::string high = dir.file("high.mp4");
};

bool make(Material& m) {
  std::string error;
  REQUIRE_MESSAGE(make_cmaf_material(m.low, 4, 300, &error), error);
  REQUIRE_MESSAGE(make_cmaf_material(m.high, 4, 900, &error), error);
  return true;
}

LlOriginOptions two_renditions(const Material& m) {
  LlOriginOptions options;
  options.renditions = {{"low", m.low}, {"high", m.high}};
  return options;
}

// An ll_origin on fresh material, once it has published two segments; null (and the test
// says "skipped") without ffmpeg. `window` 0: ll_origin's default.
std::unique_ptr<LlOrigin> running_origin(Material& m, int window = 0) {
  if (!have_ffmpeg()) {
    MESSAGE("skipped: ffmpeg is not installed");
    return nullptr;
  }
  make(m);
  LlOriginOptions options = two_renditions(m);
  options.window = window;
  auto origin = std::make_unique<LlOrigin>(options);
  REQUIRE(wait_until([&] { return origin->next_msn() >= 2; }, 5s, 20ms));
  return origin;
}

int count_of(const std::string& text, std::string_view needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Seconds between now and the last EXT-X-PROGRAM-DATE-TIME of a playlist.
double pdt_age_s(const std::string& playlist) {
  const size_t at = playlist.rfind("#EXT-X-PROGRAM-DATE-TIME:");
  REQUIRE(at != std::string::npos);
  tm t{};
  const std::string value = playlist.substr(at + 25, 23);
  REQUIRE(strptime(value.c_str(), "%Y-%m-%dT%H:%M:%S", &t) != nullptr);
  const double pdt = static_cast<double>(timegm(&t)) + std::stoi(value.substr(20, 3)) / 1000.0;
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<double>(now.tv_sec) + now.tv_nsec / 1e9 - pdt;
}

// Each EXT-X-PROGRAM-DATE-TIME of a playlist in seconds since the epoch, with the EXTINF
// of the segment it dates.
std::vector<std::pair<double, double>> dated_segments(const std::string& playlist) {
  std::vector<std::pair<double, double>> out;
  for (size_t at = playlist.find("#EXT-X-PROGRAM-DATE-TIME:"); at != std::string::npos;
       at = playlist.find("#EXT-X-PROGRAM-DATE-TIME:", at + 1)) {
    tm t{};
    const std::string value = playlist.substr(at + 25, 23);
    REQUIRE(strptime(value.c_str(), "%Y-%m-%dT%H:%M:%S", &t) != nullptr);
    const size_t extinf = playlist.find("#EXTINF:", at);
    if (extinf == std::string::npos) break;  // the open segment: no duration yet
    out.emplace_back(static_cast<double>(timegm(&t)) + std::stoi(value.substr(20, 3)) / 1000.0,
                     std::stod(playlist.substr(extinf + 8)));
  }
  return out;
}

// A part or a segment a media playlist lists, with the duration it gives it.
struct ListedMedia {
  std::string uri;
  double listed_s = 0;
};

// The parts (EXT-X-PART) and the segments (EXTINF and the URI line after it) of a playlist.
std::pair<std::vector<ListedMedia>, std::vector<ListedMedia>> parts_and_segments(
    const std::string& playlist) {
  std::vector<ListedMedia> parts, segments;
  double extinf = -1;  // the last EXTINF's, until its URI line; -1: none pending
  std::istringstream lines(playlist);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("#EXT-X-PART:DURATION=", 0) == 0) {
      const size_t uri = line.find("URI=\"") + 5;
      parts.push_back({line.substr(uri, line.find('"', uri) - uri), std::stod(line.substr(21))});
    } else if (line.rfind("#EXTINF:", 0) == 0) {
      extinf = std::stod(line.substr(8));
    } else if (!line.empty() && line[0] != '#' && extinf >= 0) {
      segments.push_back({line, extinf});
      extinf = -1;
    }
  }
  return {parts, segments};
}

// Follows each track's timeline over consecutive pieces of media (parts, or segments) and
// writes down every hole or overlap, and every listed duration that is not the media's.
class TimelineCheck {
 public:
  TimelineCheck(std::vector<CmafTrack> tracks, std::map<uint32_t, uint64_t> loop_ticks)
      : tracks_(std::move(tracks)), loop_ticks_(std::move(loop_ticks)) {}

  void add(const ListedMedia& listed, const std::string& bytes) {
    std::string error;
    const auto media = read_cmaf(bytes, error, tracks_);
    if (!media || media->fragments.empty()) {
      problems_.push_back(listed.uri + ": " + (media ? "no fragment" : error));
      return;
    }
    std::map<uint32_t, uint64_t> duration;  // per track
    for (const MovieFragment& f : media->fragments) {
      for (const TrackFragment& t : f.tracks) {
        const auto [end, first] = ends_.try_emplace(t.track_id, t.decode_time);
        const bool known = !first;
        if (known && t.decode_time != end->second) {
          problems_.push_back(listed.uri + " track " + std::to_string(t.track_id) + ": starts at " +
                              std::to_string(t.decode_time) + ", the previous ended at " +
                              std::to_string(end->second));
        }
        // A piece that starts in a later loop of the material than the previous one did.
        const uint64_t loop = loop_ticks_.at(t.track_id);
        uint64_t& start = starts_[t.track_id];
        if (known && t.decode_time / loop > start / loop && t.track_id == first_track()) ++seams_;
        start = t.decode_time;
        end->second = t.decode_time + t.duration;
        duration[t.track_id] += t.duration;
      }
    }
    // The duration listed is the first track's (the one ll_origin times parts by), to the
    // five decimals it is written with.
    const double media_s = static_cast<double>(duration[first_track()]) / tracks_.front().timescale;
    if (std::abs(media_s - listed.listed_s) > 0.000005 + 1e-9) {
      problems_.push_back(listed.uri + ": listed " + std::to_string(listed.listed_s) +
                          " s, its media lasts " + std::to_string(media_s) + " s");
    }
    // A player places each part at its segment's start plus the listed durations before it
    // (Shaka 5.2). Three decimals put a segment's fourth part 1 ms after its media; at 1 ms
    // Shaka resets its timestamp offset, and the browser drops that part's frames up to the
    // next keyframe: a stall at every segment boundary.
    if (listed.uri.find(".0.m4s") != std::string::npos) listed_ahead_s_ = 0;
    if (std::abs(listed_ahead_s_) > 0.0001) {
      problems_.push_back(listed.uri + ": placed " + std::to_string(listed_ahead_s_ * 1000) +
                          " ms off its media by the durations listed before it");
    }
    listed_ahead_s_ += listed.listed_s - media_s;
  }

  const std::vector<std::string>& problems() const { return problems_; }
  int seams_crossed() const { return seams_; }

 private:
  uint32_t first_track() const { return tracks_.front().track_id; }

  std::vector<CmafTrack> tracks_;
  std::map<uint32_t, uint64_t> loop_ticks_;  // one loop of the material, per track
  std::map<uint32_t, uint64_t> starts_;      // where each track's last media started
  std::map<uint32_t, uint64_t> ends_;        // where each track's last media ended
  std::vector<std::string> problems_;
  int seams_ = 0;
  double listed_ahead_s_ = 0;  // listed minus media durations since the segment's first part
};

// One loop of a material file: its media's length in each track's timescale.
std::map<uint32_t, uint64_t> loop_ticks(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string error;
  const auto material = read_cmaf(bytes, error);
  REQUIRE_MESSAGE(material.has_value(), error);
  std::map<uint32_t, uint64_t> ticks;
  for (const MovieFragment& f : material->fragments) {
    for (const TrackFragment& t : f.tracks) ticks[t.track_id] += t.duration;
  }
  return ticks;
}

}  // namespace

TEST_CASE("ll_origin: program dates are exactly as far apart as the media they date") {
  // Shaka places segments by their program dates: dates that drift from the media (the
  // timer's lateness) left a gap after each segment's first part, a stall every second.
  Material m;
  auto running = running_origin(m);
  if (!running) return;
  LlOrigin& origin = *running;
  REQUIRE(wait_until([&] { return origin.next_msn() >= 8; }, 10s, 20ms));
  const auto dated = dated_segments(http_get(origin.url("/high/index.m3u8")).body);
  REQUIRE(dated.size() >= 6);
  const double dates_apart = dated.back().first - dated.front().first;
  double media = 0;
  for (size_t i = 0; i + 1 < dated.size(); ++i) media += dated[i].second;
  MESSAGE("program dates " << dates_apart << " s apart over " << media << " s of media");
  CHECK(std::abs(dates_apart - media) <= 0.002);
}

TEST_CASE("ll_origin: parts at their cadence with the LL-HLS tags, PDT from the wall clock") {
  Material m;
  auto running = running_origin(m);
  if (!running) return;
  LlOrigin& origin = *running;
  const auto started = Clock::now();
  const int64_t before = origin.parts_published();
  REQUIRE(wait_until([&] { return origin.parts_published() >= before + 8; }, 5s, 20ms));
  const double per_part_s = std::chrono::duration<double>(Clock::now() - started).count() / 8;
  CHECK(per_part_s > 0.18);
  CHECK(per_part_s < 0.40);

  // The master names each rendition's size, read from its init section (the material's 640x360).
  const std::string master = http_get(origin.url("/master.m3u8")).body;
  CHECK(count_of(master, ",RESOLUTION=640x360,") == 2);

  const std::string playlist = http_get(origin.url("/low/index.m3u8")).body;
  CHECK(playlist.find("#EXT-X-PART-INF:PART-TARGET=0.26667") != std::string::npos);
  CHECK(playlist.find("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.80001,CAN-SKIP-"
                      "UNTIL=12.000") != std::string::npos);
  CHECK(playlist.find("#EXT-X-MAP:URI=\"init.mp4\"") != std::string::npos);
  CHECK(count_of(playlist, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg") == 1);
  CHECK(playlist.find("#EXT-X-RENDITION-REPORT:URI=\"../high/index.m3u8\",LAST-MSN=") !=
        std::string::npos);
  CHECK(playlist.find(",INDEPENDENT=YES") != std::string::npos);
  CHECK(count_of(playlist, "#EXTINF:1.000,") >= 2);
  // The newest segment's PDT is its capture time: at most a segment (and a part) ago.
  const double age = pdt_age_s(playlist);
  CHECK(age >= 0);
  CHECK(age < 1.6);

  // A part is exactly one fragment: a moof box, then its mdat.
  const auto part = http_get(origin.url("/high/seg1.0.m4s"));
  REQUIRE(part.status == 200);
  REQUIRE(part.body.size() > 16);
  CHECK(part.body.substr(4, 4) == "moof");
  CHECK(part.header("Access-Control-Allow-Origin") == std::optional<std::string>("*"));
  // Init + a segment's parts play: ffprobe reads them as H.264 video.
  const auto init = http_get(origin.url("/high/init.mp4"));
  const auto segment = http_get(origin.url("/high/seg1.m4s"));
  REQUIRE(segment.status == 200);
  CHECK(segment.body.substr(0, part.body.size()) == part.body);
  TempDir out;
  {
    std::ofstream file(out.file("s.mp4"), std::ios::binary);
    file << init.body << segment.body;
  }
  ChildProcess probe;
  REQUIRE(probe.start({"ffprobe", "-v", "error", "-select_streams", "v", "-show_entries",
                       "stream=codec_name", "-of", "csv=p=0", out.file("s.mp4")},
                      {}, {}));
  CHECK(probe.wait_exit(deadline_in(20s)) == 0);
  // Counted per rendition and kind (what the side-by-side benchmark divides by parts).
  CHECK(origin.requests_of_kind("low/playlist") == 1);
  CHECK(origin.requests_of_kind("high/part") == 1);
  CHECK(origin.requests_of_kind("high/init") == 1);
  CHECK(origin.requests_of_kind("high/segment") == 1);
  CHECK(origin.requests_of_kind("low/part") == 0);
}

TEST_CASE("ll_origin: blocking reloads, limits and delta updates as RFC 8216bis 6.2.5 says") {
  Material m;
  auto running = running_origin(m);
  if (!running) return;
  LlOrigin& origin = *running;
  const int64_t next = origin.next_msn();
  // Two segments ahead of the one being written is more than two past the last: 400.
  CHECK(http_get(origin.url("/low/index.m3u8?_HLS_msn=" + std::to_string(next + 2))).status == 400);
  CHECK(http_get(origin.url("/low/index.m3u8?_HLS_part=1")).status == 400);
  // The first part of the next segment: held until it is published, then the playlist lists it.
  const auto started = Clock::now();
  const auto held =
      http_get(origin.url("/low/index.m3u8?_HLS_msn=" + std::to_string(next + 1) + "&_HLS_part=0"));
  const auto waited = Clock::now() - started;
  REQUIRE(held.status == 200);
  CHECK(held.body.find("URI=\"seg" + std::to_string(next + 1) + ".0.m4s\"") != std::string::npos);
  CHECK(waited > 50ms);
  CHECK(waited < 2500ms);
  // The hinted part itself: held, then its bytes.
  const std::string hinted = "/high/seg" + std::to_string(next + 1) + ".1.m4s";
  const auto part = http_get(origin.url(hinted));
  CHECK(part.status == 200);
  CHECK(part.body.substr(4, 4) == "moof");

  // Delta updates: the default window (18 one-second segments) is longer than CAN-SKIP-UNTIL
  // (12 s): with 16 listed, those ending more than 12 s before the end are skipped.
  REQUIRE(wait_until([&] { return origin.next_msn() >= 16; }, 25s, 100ms));
  const std::string full = http_get(origin.url("/low/index.m3u8")).body;
  const std::string delta = http_get(origin.url("/low/index.m3u8?_HLS_skip=YES")).body;
  CHECK(full.find("#EXT-X-SKIP") == std::string::npos);
  CHECK(count_of(full, "#EXTINF:") >= 16);
  const size_t skip = delta.find("#EXT-X-SKIP:SKIPPED-SEGMENTS=");
  REQUIRE(skip != std::string::npos);
  CHECK(std::stoi(delta.substr(skip + 29)) >= 2);
  CHECK(delta.size() < full.size());
  const std::string v2 = http_get(origin.url("/low/index.m3u8?_HLS_skip=v2")).body;
  CHECK(v2.find("RECENTLY-REMOVED-DATERANGES=\"\"") != std::string::npos);
  CHECK(http_get(origin.url("/low/index.m3u8?_HLS_skip=maybe")).status == 400);
}

TEST_CASE("ll_origin: SIGTERM while a blocking reload is held ends it cleanly (exit 0)") {
  Material m;
  auto running = running_origin(m);
  if (!running) return;
  LlOrigin& origin = *running;
  // The last part of the next segment: held for most of a second.
  const std::string far =
      "/low/index.m3u8?_HLS_msn=" + std::to_string(origin.next_msn() + 1) + "&_HLS_part=3";
  std::thread reload([&] { http_get(origin.url(far)); });
  const bool held = wait_until(
      [&] {
        return http_get(origin.url("/__stats")).body.find("\"held\":0,") == std::string::npos;
      },
      5s, 10ms);
  // Its close callback once ran after the list of held requests was gone: SIGSEGV at exit.
  origin.process().terminate();
  CHECK(origin.process().wait_exit(deadline_in(10s)) == std::optional<int>(0));
  reload.join();
  CHECK(held);
}

TEST_CASE(
    "ll_origin: fault knobs: 404 on the hint, a late part, an encoder restart with reused names") {
  Material m;
  auto running = running_origin(m);
  if (!running) return;
  LlOrigin& origin = *running;
  REQUIRE(origin.fault("hint_404=1"));
  const int64_t next = origin.next_msn();
  CHECK(http_get(origin.url("/low/seg" + std::to_string(next + 1) + ".0.m4s")).status == 404);
  REQUIRE(origin.fault("hint_404=0"));
  // A part 800 ms late: the next one is published that much later than its cadence.
  const int64_t parts = origin.parts_published();
  REQUIRE(origin.fault("late_ms=800"));
  REQUIRE(wait_until([&] { return origin.parts_published() >= parts + 1; }, 3s, 10ms));
  const auto after_first = Clock::now();
  REQUIRE(wait_until([&] { return origin.parts_published() >= parts + 2; }, 3s, 10ms));
  CHECK(Clock::now() - after_first > 700ms);
  // Restart: numbering starts again at 0 with the same names. What the old run published
  // stays downloadable (a player may still be loading it), until its name is written again.
  REQUIRE(wait_until([&] { return origin.next_msn() >= 4; }, 10s, 20ms));
  const std::string old_segment = "/low/seg" + std::to_string(origin.next_msn() - 1) + ".m4s";
  const std::string old_part = "/low/seg" + std::to_string(origin.next_msn()) + ".0.m4s";
  const auto old_segment_bytes = http_get(origin.url(old_segment));
  const auto old_part_bytes = http_get(origin.url(old_part));
  REQUIRE(old_segment_bytes.status == 200);
  REQUIRE(old_part_bytes.status == 200);
  REQUIRE(origin.fault("restart=1"));
  REQUIRE(wait_until([&] { return origin.parts_published() >= parts + 4; }, 5s, 10ms));
  const std::string restarted = http_get(origin.url("/low/index.m3u8")).body;
  CHECK(restarted.find("#EXT-X-MEDIA-SEQUENCE:0\n") != std::string::npos);
  CHECK(http_get(origin.url("/low/seg0.0.m4s")).status == 200);
  const auto segment_after = http_get(origin.url(old_segment));
  const auto part_after = http_get(origin.url(old_part));
  CHECK(segment_after.status == 200);
  CHECK(segment_after.body == old_segment_bytes.body);
  CHECK(part_after.status == 200);
  CHECK(part_after.body == old_part_bytes.body);
}

TEST_CASE(
    "ll_origin: one timeline across loop seams: every part and segment starts where the "
    "previous ended, in every track, and lasts what the playlist says") {
  // A hole at each seam (the last fragment given the previous one's duration) made every
  // player skip a gap and stall once a loop.
  if (!have_ffmpeg()) {
    MESSAGE("skipped: ffmpeg is not installed");
    return;
  }
  // Two seconds of material: two seams within the six seconds whose parts are listed.
  Material m;
  std::string error;
  REQUIRE_MESSAGE(make_cmaf_material(m.low, 2, 300, &error), error);
  REQUIRE_MESSAGE(make_cmaf_material(m.high, 2, 900, &error), error);
  LlOrigin origin(two_renditions(m));
  REQUIRE(wait_until([&] { return origin.next_msn() >= 7; }, 15s, 20ms));
  for (const auto& [name, file] : two_renditions(m).renditions) {
    CAPTURE(name);
    const auto init = http_get(origin.url("/" + name + "/init.mp4"));
    REQUIRE(init.status == 200);
    const auto tracks = read_cmaf(init.body, error);
    REQUIRE_MESSAGE(tracks.has_value(), error);
    const auto [parts, segments] =
        parts_and_segments(http_get(origin.url("/" + name + "/index.m3u8")).body);
    for (const auto* listed : {&parts, &segments}) {
      TimelineCheck timeline(tracks->tracks, loop_ticks(file));
      for (const ListedMedia& media : *listed) {
        const auto got = http_get(origin.url("/" + name + "/" + media.uri));
        REQUIRE_MESSAGE(got.status == 200, media.uri);
        timeline.add(media, got.body);
      }
      const std::string kind = listed == &parts ? "parts" : "segments";
      MESSAGE(name << " " << kind << ": " << listed->size() << " listed, "
                   << timeline.seams_crossed() << " loop seams crossed, "
                   << timeline.problems().size() << " problems");
      for (size_t i = 0; i < std::min<size_t>(timeline.problems().size(), 6); ++i)
        MESSAGE("  " << timeline.problems()[i]);
      CHECK(timeline.seams_crossed() >= 2);
      CHECK(timeline.problems().empty());
    }
  }
}
